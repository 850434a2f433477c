import { execFileSync } from 'node:child_process';
import { readdir, rm, writeFile, mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { withChaos } from '@stowage/storage-testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { resolveConfig } from './config.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('bad input: one clear error, nothing lost', () => {
  it('a missing database', async () => {
    ws = await makeWorkspace();
    await rm(ws.database);
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({
      code: 'stowage.source.not_found',
      message: expect.stringMatching(/does not exist; check source\.database/),
    });
  });

  it('a file that is not a SQLite database, and an empty one', async () => {
    ws = await makeWorkspace();
    await writeFile(ws.database, 'hello, this is a text file and certainly not a database file at all'.repeat(3));
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({ code: 'stowage.source.not_sqlite' });
    await writeFile(ws.database, '');
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({ code: 'stowage.source.empty' });
    expect(await readdir(join(ws.config.stateDir, 'staging'))).toEqual([]);
  });

  it('a named pipe, a device or a folder as the database: refused at once, no wait for a writer', async () => {
    ws = await makeWorkspace();
    await rm(ws.database);
    execFileSync('mkfifo', [ws.database]);
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({
      code: 'stowage.source.not_sqlite',
      message: expect.stringMatching(/not a regular file/),
    });
    await rm(ws.database);
    await symlink('/dev/zero', ws.database);
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({
      code: 'stowage.source.not_sqlite',
      message: expect.stringMatching(/not a regular file/),
    });
    await rm(ws.database);
    await mkdir(ws.database);
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({
      code: 'stowage.source.not_sqlite',
      message: expect.stringMatching(/is a folder/),
    });
    expect(await readdir(join(ws.config.stateDir, 'staging'))).toEqual([]);
  }, 10_000);

  it('a database held by an exclusive writer past the timeout', async () => {
    ws = await makeWorkspace({ config: { source: { database: 'db.sqlite3', busyTimeoutMs: 300 } } });
    const writer = new Database(ws.database);
    writer.prepare('BEGIN EXCLUSIVE').run();
    try {
      const started = Date.now();
      await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({
        code: 'stowage.source.locked',
        message: expect.stringMatching(/locked by another process for 300 ms/),
      });
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      writer.prepare('ROLLBACK').run();
      writer.close();
    }
  });

  it('an unknown backup id and a reference that is not a backup name', async () => {
    ws = await makeWorkspace();
    await backup(ws.engine, { type: 'full' });
    await expect(restore(ws.engine, { backup: 'full_backup_19990101_000000', testMode: true })).rejects.toMatchObject({ code: 'stowage.backup.not_found' });
    await expect(restore(ws.engine, { backup: '/etc/passwd', testMode: true })).rejects.toMatchObject({ code: 'stowage.backup.not_a_backup' });
  });

  it('a manifest that is not a Stowage manifest', async () => {
    ws = await makeWorkspace();
    const { manifest } = await backup(ws.engine, { type: 'full' });
    await writeFile(join(ws.backups, 'full', `${manifest.id}.manifest.json`), '{"hello": "world"}');
    await expect(restore(ws.engine, { backup: manifest.id, testMode: true })).rejects.toMatchObject({ code: 'stowage.backup.not_a_backup' });
  });

  it('a restore target folder that does not exist or is a file', async () => {
    ws = await makeWorkspace();
    await backup(ws.engine, { type: 'full' });
    const live = await sha256File(ws.database);
    await expect(restore(ws.engine, { backup: 'latest', target: join(ws.dir, 'nope', 'db.sqlite3') })).rejects.toMatchObject({
      code: 'stowage.restore.target_missing',
    });
    await writeFile(join(ws.dir, 'plainfile'), 'x');
    await expect(restore(ws.engine, { backup: 'latest', target: join(ws.dir, 'plainfile', 'db.sqlite3') })).rejects.toMatchObject({
      code: 'stowage.restore.target_missing',
    });
    expect(await sha256File(ws.database)).toBe(live);
  });

  it('disk full at the destination: the backup fails clearly and commits nothing', async () => {
    ws = await makeWorkspace({
      engine: { wrappers: [(adapter) => withChaos(adapter, { diskFull: true })] },
    });
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({
      code: 'stowage.backup.replication_failed',
      message: expect.stringMatching(/could not be stored at any destination: local: .*no_space|space/i),
    });
    await mkdir(ws.backups, { recursive: true });
    const files = await readdir(ws.backups, { recursive: true });
    expect(files.filter((f) => String(f).endsWith('.manifest.json'))).toEqual([]);
    expect(await readdir(join(ws.config.stateDir, 'staging'))).toEqual([]);
  });

  it('an invalid config names every bad key', () => {
    expect(() =>
      resolveConfig({ source: {}, destinations: [{ name: 'a b', url: '' }], retention: { full: 'forever' }, extra: 1 }, '/tmp/stowage.config.json'),
    ).toThrow(/source\.database: .*\n(.|\n)*destinations\.0\.name: use letters(.|\n)*retention\.full: expected a duration/);
  });
});
