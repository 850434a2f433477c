import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { tableRowCounts } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';

const integrity = (path: string) => execFileSync('sqlite3', [path, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim();

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('the live switch of a restore', () => {
  it('keeps a database left with a hot journal (a writer that crashed mid-transaction) whole, under one stamp', async () => {
    const fixed = new Date(2024, 0, 2, 3, 4, 5);
    ws = await makeWorkspace({ engine: { now: () => fixed } });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const committed = tableRowCounts(ws.database);
    const committedSha = await sha256File(ws.database);
    // A transaction whose pages spilled into the file, frozen with its journal: a hot journal.
    const writer = new Database(ws.database);
    writer.pragma('cache_size = 1');
    writer.exec('BEGIN');
    writer.exec(`DELETE FROM ${Object.keys(committed).find((name) => committed[name]! > 20)}`);
    copyFileSync(ws.database, `${ws.dir}/frozen.sqlite3`);
    copyFileSync(`${ws.database}-journal`, `${ws.dir}/frozen.sqlite3-journal`);
    writer.exec('ROLLBACK');
    writer.close();
    expect(await sha256File(`${ws.dir}/frozen.sqlite3`)).not.toBe(committedSha); // the transaction's pages are in the file
    copyFileSync(`${ws.dir}/frozen.sqlite3`, ws.database);
    copyFileSync(`${ws.dir}/frozen.sqlite3-journal`, `${ws.database}-journal`);

    const result = await restore(ws.engine, { backup: manifest.id });
    expect(await sha256File(ws.database)).toBe(manifest.source.snapshotSha256);
    expect(existsSync(`${ws.database}-journal`)).toBe(false);
    const aside = `${ws.database}.damaged_20240102_030405`;
    expect(result.movedAside?.[0]).toBe(aside);
    expect(integrity(aside)).toBe('ok');
    expect(tableRowCounts(aside)).toEqual(committed); // the half-done transaction was rolled back, not kept
    expect((await readdir(ws.dir)).filter((name) => name.includes('damaged_') && !name.startsWith('db.sqlite3.damaged_20240102_030405'))).toEqual([]);
  });

  it('refuses to switch while a writer keeps the live database locked, changing nothing', async () => {
    ws = await makeWorkspace({ config: { source: { database: 'db.sqlite3', busyTimeoutMs: 300 } } });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const app = new Database(ws.database);
    app.exec('BEGIN EXCLUSIVE');
    try {
      const live = await sha256File(ws.database);
      await expect(restore(ws.engine, { backup: manifest.id })).rejects.toMatchObject({
        code: 'stowage.source.locked',
        message: expect.stringMatching(/stayed locked by another program for 300 ms; stop the application/),
      });
      expect(await sha256File(ws.database)).toBe(live);
      expect((await readdir(ws.dir)).filter((name) => name.includes('stowage-') || name.includes('damaged_'))).toEqual([]);
      expect(existsSync(`${ws.config.stateDir}/restore-journal.json`)).toBe(false);
    } finally {
      app.close();
    }
  });

  it('refuses to switch while an application keeps a WAL database open (it would write beside the restored one), changing nothing', async () => {
    ws = await makeWorkspace({ journalMode: 'wal', config: { source: { database: 'db.sqlite3', busyTimeoutMs: 300 } } });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const app = new Database(ws.database);
    try {
      app.pragma('wal_autocheckpoint = 0');
      app.exec('CREATE TABLE after_backup(x); INSERT INTO after_backup VALUES (1), (2)');
      const live = await sha256File(ws.database);
      await expect(restore(ws.engine, { backup: manifest.id })).rejects.toMatchObject({ code: 'stowage.source.locked' });
      expect(await sha256File(ws.database)).toBe(live);
      expect(app.prepare('SELECT count(*) AS n FROM after_backup').get()).toEqual({ n: 2 });
      expect((await readdir(ws.dir)).filter((name) => name.includes('stowage-') || name.includes('damaged_'))).toEqual([]);
    } finally {
      app.close();
    }
    expect(integrity(ws.database)).toBe('ok');
  });
});
