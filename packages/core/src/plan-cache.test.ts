import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerToken, sha256Hex, TOKEN_HOST } from '@stowage/storage';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { cacheForNextBackup } from './plan.js';
import { readSnapshot } from './read-pass.js';
import { restore } from './restore.js';
import { makeWorkspace, sha256File, type Workspace } from './test/harness.js';

let stateDir: string;
afterEach(() => rm(stateDir, { recursive: true, force: true }));

describe('cacheForNextBackup', () => {
  it("replaces the previous backup's cache and dead writers' temp files, never a cache write still under way", async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'stowage-cache-'));
    const cache = join(stateDir, 'cache');
    await mkdir(cache, { recursive: true });
    // Another backup of this process (or of a live one) is writing its cache; a killed one left a temp file.
    const underWay = `.full_backup_20240101_020000_1.pagehash.stowage-tmp-${ownerToken()}`;
    const dead = `.full_backup_20231231_020000.pagehash.stowage-tmp-${TOKEN_HOST}_999999999_1_0123abcd`;
    for (const name of ['full_backup_20231231_020000.pagehash', underWay, dead]) await writeFile(join(cache, name), 'x');
    await cacheForNextBackup({ config: { stateDir } }, 'full_backup_20240101_020000', Buffer.from('hashes'), undefined);
    expect((await readdir(cache)).sort()).toEqual([underWay, 'full_backup_20240101_020000.pagehash'].sort());
    expect(await readFile(join(cache, 'full_backup_20240101_020000.pagehash'), 'utf8')).toBe('hashes');
  });
});

/*
 * The cache is written without fsync (`durable: false`): a power cut can leave it torn or holding
 * other bytes. A SIGKILL cannot (the crash matrix's `backup.cache-written` kills right after the
 * write; one during it leaves only a temp file the next command removes), so the damage is made here.
 */
describe('a damaged page-hash cache', () => {
  let ws: Workspace | undefined;
  afterEach(async () => ws?.dispose());

  // Both hold hashes of the database as it is now: a next incremental trusting them would see no changed page.
  for (const [damage, cut] of [
    ['torn (the first half)', 0.5],
    ['whole but of other bytes', 1],
  ] as const) {
    it(`${damage} is not trusted: the next incremental rebuilds the list from the destination and restores byte-exact`, async () => {
      ws = await makeWorkspace();
      const full = (await backup(ws.engine, { type: 'full' })).manifest;
      const cached = join(ws.config.stateDir, 'cache', `${full.id}.pagehash`);
      expect(sha256Hex(await readFile(cached))).toBe(full.source.pageHashesSha256);
      simulateWarehouseActivity(ws.database, { seed: 3, operations: 30 });
      const { pageSize } = full.source;
      const now = (await readSnapshot(ws.database, ws.database, { pageSize, pageCount: (await stat(ws.database)).size / pageSize })).digest.pageHashes;
      await writeFile(cached, now.subarray(0, Math.floor((now.length * cut) / 20) * 20));

      const incremental = (await backup(ws.engine, { type: 'incremental' })).manifest;
      expect(incremental).toMatchObject({ type: 'incremental', parent: full.id });
      expect(incremental.delta!.changedPages).toBeGreaterThan(0);
      const target = join(ws.dir, 'restored.sqlite3');
      await restore(ws.engine, { backup: incremental.id, target });
      expect(await sha256File(target)).toBe(await sha256File(ws.database));
      // The cache now holds the incremental's whole list, as its manifest pins it.
      expect(await readdir(join(ws.config.stateDir, 'cache'))).toEqual([`${incremental.id}.pagehash`]);
      expect(sha256Hex(await readFile(join(ws.config.stateDir, 'cache', `${incremental.id}.pagehash`)))).toBe(incremental.source.pageHashesSha256);
    });
  }
});
