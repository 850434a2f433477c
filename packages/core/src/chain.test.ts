import { createHash } from 'node:crypto';
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
  it('flushing as it writes (every 4 KiB here, many flushes per chunk) yields the same checked image, zstd + AES over a full and two incrementals', async () => {
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
    for (const flushEvery of [4096, undefined]) {
      const path = join(ws.dir, `image-${flushEvery}.sqlite3`);
      expect(await materializeChain(ws.engine, chain, path, ws.engine.destinations, flushEvery ? { flushEvery } : {})).toEqual(['local', 'local', 'local']);
      expect(createHash('sha256').update(await readFile(path)).digest('hex')).toBe(entry.manifest.source.snapshotSha256);
    }
  });
});
