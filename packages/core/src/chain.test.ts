import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { catalogOf } from './catalog.js';
import { materializeChain, resolveChain } from './chain.js';
import { findBackup } from './find.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('materializeChain', () => {
  it('flushing as it writes (every 4 KiB here) or not yields the same checked image, zstd + AES over a full and two incrementals', async () => {
    process.env.STOWAGE_CHAIN_TEST_PASSPHRASE = 'correct horse battery staple';
    ws = await makeWorkspace({
      config: { compression: { algorithm: 'zstd', level: 3 }, encryption: { mode: 'passphrase', passphraseEnv: 'STOWAGE_CHAIN_TEST_PASSPHRASE' } },
    });
    await backup(ws.engine, { type: 'full' });
    for (const seed of [1, 2]) {
      simulateWarehouseActivity(ws.database, { seed, operations: 40 });
      await backup(ws.engine, { type: 'incremental' });
    }
    const catalog = catalogOf(ws.engine);
    const entry = await findBackup(ws.engine, catalog, 'latest');
    const chain = await resolveChain(catalog, entry, ws.engine.destinations);
    expect(chain).toHaveLength(3);
    for (const [n, options] of [{ flushEvery: 4096 }, {}].entries()) {
      const path = join(ws.dir, `image-${n}.sqlite3`);
      expect(await materializeChain(ws.engine, chain, path, ws.engine.destinations, options)).toEqual(['local', 'local', 'local']);
      expect(
        createHash('sha256')
          .update(await readFile(path))
          .digest('hex'),
      ).toBe(entry.manifest.source.snapshotSha256);
    }
  });
});

describe('the image hash', () => {
  it.each([4096, undefined])(
    "flushEvery %s: an image that does not hash to the last link's snapshot fails backup_corrupt and leaves no file",
    async (flushEvery) => {
      ws = await makeWorkspace();
      await backup(ws.engine, { type: 'full' });
      simulateWarehouseActivity(ws.database, { seed: 3, operations: 40 });
      const { manifest } = await backup(ws.engine, { type: 'incremental' });
      const catalog = catalogOf(ws.engine);
      const entry = await findBackup(ws.engine, catalog, manifest.id);
      const chain = await resolveChain(catalog, entry, ws.engine.destinations);
      // The snapshot the image must hash to, as a lying manifest would say it.
      const lying = [
        chain[0]!,
        { ...chain[1]!, manifest: { ...chain[1]!.manifest, source: { ...chain[1]!.manifest.source, snapshotSha256: '1'.repeat(64) } } },
      ];
      const path = join(ws.dir, 'image.sqlite3');
      await expect(materializeChain(ws.engine, lying, path, ws.engine.destinations, flushEvery ? { flushEvery } : {})).rejects.toMatchObject({
        code: 'stowage.backup.corrupt',
      });
      expect(existsSync(path)).toBe(false);
    },
  );
});
