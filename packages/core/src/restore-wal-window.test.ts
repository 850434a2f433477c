import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { CrashPointName } from '@stowage/storage';
import { readFile } from 'node:fs/promises';
import { tableRowCounts } from '@stowage/fixtures';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backup } from './backup.js';
import type { ConfigFile } from './config.js';
import { restore } from './restore.js';
import { recoverInterruptedRestore } from './restore-journal.js';
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';

/** Called before every rename, so a test can act at the instant the restored file goes in. */
const beforeRename = vi.hoisted(() => ({ hook: undefined as ((from: string, to: string) => void) | undefined }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const rename: typeof real.rename = async (from, to) => {
    beforeRename.hook?.(String(from), String(to));
    return real.rename(from, to);
  };
  return { ...real, default: { ...real, rename }, rename };
});

const sqlite = (path: string, sql: string) => execFileSync('sqlite3', [path, sql], { encoding: 'utf8' }).trim();

/**
 * An application process that opens the live database afresh, writes one transaction and dies
 * without checkpointing (its frames stay in the -wal). Resolves with its outcome.
 */
function appWritesAndDies(database: string): string {
  const script = `
    const Database = require('better-sqlite3');
    let db;
    try {
      db = new Database(${JSON.stringify(database)}, { timeout: 200 });
      db.pragma('wal_autocheckpoint = 0');
      db.exec("CREATE TABLE IF NOT EXISTS app_late(x); INSERT INTO app_late VALUES (1)");
      process.stdout.write('wrote');
    } catch (error) {
      process.stdout.write(error.code);
    }
    process.kill(process.pid, 'SIGKILL');
  `;
  return spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: import.meta.dirname }).stdout;
}

let ws: Workspace;
afterEach(async () => {
  beforeRename.hook = undefined;
  await ws?.dispose();
});

describe('a live restore over a database in WAL mode', () => {
  it('leaves exactly the restored database for the next opener, though the old -wal held frames not checkpointed', async () => {
    ws = await makeWorkspace({ journalMode: 'wal' });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const restoredCounts = tableRowCounts(ws.database);
    // The application writes after the backup and dies: its frames are only in the -wal.
    expect(appWritesAndDies(ws.database)).toBe('wrote');
    expect((await readFile(`${ws.database}-wal`)).length).toBeGreaterThan(0);

    const result = await restore(ws.engine, { backup: manifest.id });
    expect(sqlite(ws.database, 'PRAGMA integrity_check')).toBe('ok');
    expect(sqlite(ws.database, "SELECT count(*) FROM sqlite_master WHERE name = 'app_late'")).toBe('0');
    expect(tableRowCounts(ws.database)).toEqual(restoredCounts);
    expect(await sha256File(ws.database)).toBe(manifest.source.snapshotSha256);
    // The kept copy has the application's last transaction.
    const aside = result.movedAside![0]!;
    expect(sqlite(aside, 'PRAGMA integrity_check')).toBe('ok');
    expect(sqlite(aside, 'SELECT count(*) FROM app_late')).toBe('1');
  });

  it('lets no application open and write the old database in the instant before the restored one goes in', async () => {
    ws = await makeWorkspace({ journalMode: 'wal' });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const restoredCounts = tableRowCounts(ws.database);
    const outcomes: string[] = [];
    beforeRename.hook = (_, to) => {
      if (to === ws.database) outcomes.push(appWritesAndDies(ws.database));
    };
    await restore(ws.engine, { backup: manifest.id });
    beforeRename.hook = undefined;
    expect(sqlite(ws.database, 'PRAGMA integrity_check')).toBe('ok');
    expect(sqlite(ws.database, "SELECT count(*) FROM sqlite_master WHERE name = 'app_late'")).toBe('0');
    expect(tableRowCounts(ws.database)).toEqual(restoredCounts);
    expect(outcomes).toEqual(['SQLITE_BUSY']);
  });

  it.each<CrashPointName>([
    'restore.journal-written',
    'restore.db-linked-aside',
    'restore.sidecars-unlinked',
    'restore.db-renamed-in',
    'restore.journal-removed',
  ])('killed right after %s: an opener finds the whole old or the whole restored database, and the next command completes the restore', async (step) => {
    const config: Partial<ConfigFile> = {
      source: { database: 'db.sqlite3', busyTimeoutMs: 5000 },
      destinations: [{ name: 'local', url: 'backups' }],
      compression: { algorithm: 'none' },
    };
    ws = await makeWorkspace({ journalMode: 'wal', config });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const restoredCounts = tableRowCounts(ws.database);
    expect(appWritesAndDies(ws.database)).toBe('wrote');

    const child = spawnSync(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'test', 'restore-child.ts'), JSON.stringify({ dir: ws.dir, config, backup: manifest.id })],
      {
        encoding: 'utf8',
        cwd: import.meta.dirname,
        env: { ...process.env, STOWAGE_CRASH_AT: step },
      },
    );
    expect(child.signal, child.stderr).toBe('SIGKILL');

    // What the application would find if it started now: one database, whole, old or new.
    expect(sqlite(ws.database, 'PRAGMA integrity_check')).toBe('ok');
    const old = sqlite(ws.database, "SELECT count(*) FROM sqlite_master WHERE name = 'app_late'") === '1';
    if (old) expect(sqlite(ws.database, 'SELECT count(*) FROM app_late')).toBe('1');
    else expect(tableRowCounts(ws.database)).toEqual(restoredCounts);

    await recoverInterruptedRestore(ws.engine);
    expect(sqlite(ws.database, 'PRAGMA integrity_check')).toBe('ok');
    expect(sqlite(ws.database, "SELECT count(*) FROM sqlite_master WHERE name = 'app_late'")).toBe('0');
    expect(tableRowCounts(ws.database)).toEqual(restoredCounts);
  });
});
