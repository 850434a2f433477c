import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import type { Recycling } from '@stowage/compression';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { catalogOf } from './catalog.js';
import { materializeChain, resolveChain } from './chain.js';
import { findBackup } from './find.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import type { CatalogEntry } from './catalog.js';

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

describe('recycling the decoded chunks', () => {
  it('the image sink hands a chunk back to zstd only once its bytes are in the file (checked then, and poisoned), the delta receiver once parsed; over a chain and a full alone', async () => {
    process.env.STOWAGE_CHAIN_TEST_PASSPHRASE = 'correct horse battery staple';
    ws = await makeWorkspace({
      config: { compression: { algorithm: 'zstd', level: 3 }, encryption: { mode: 'passphrase', passphraseEnv: 'STOWAGE_CHAIN_TEST_PASSPHRASE' } },
    });
    const full = await backup(ws.engine, { type: 'full' });
    simulateWarehouseActivity(ws.database, { seed: 5, operations: 40 });
    await backup(ws.engine, { type: 'incremental' });
    const codec = ws.engine.codec;
    const decoders = codec.decoders.bind(codec);
    let path = '';
    const early: number[] = [];
    let recycled = 0;
    let deltaChunks = 0;
    codec.decoders = async (artifact, backupId) => {
      const stages = await decoders(artifact, backupId);
      const zstd = stages.at(-1) as Duplex & Recycling;
      const recycle = zstd.recycle.bind(zstd);
      let offset = 0; // chunks come back in the order they were written, from the image's start
      zstd.recycle = (chunk) => {
        if (artifact.role === 'database') {
          const onDisk = Buffer.alloc(chunk.length);
          const fd = openSync(path, 'r');
          readSync(fd, onDisk, 0, chunk.length, offset);
          closeSync(fd);
          if (!onDisk.equals(chunk)) early.push(offset);
          offset += chunk.length;
          recycled++;
        } else deltaChunks++;
        chunk.fill(0xee); // what the file or the spill would get if a write or the parse still read it
        recycle(chunk);
      };
      return stages;
    };
    const catalog = catalogOf(ws.engine);
    for (const id of ['latest', full.manifest.id]) {
      const entry = await findBackup(ws.engine, catalog, id);
      const chain = await resolveChain(catalog, entry, ws.engine.destinations);
      path = join(ws.dir, `image-${chain.length}.sqlite3`);
      recycled = 0;
      await materializeChain(ws.engine, chain, path, ws.engine.destinations);
      const image = await readFile(path);
      expect(createHash('sha256').update(image).digest('hex')).toBe(entry.manifest.source.snapshotSha256);
      expect(recycled).toBeGreaterThan(image.length / (128 * 1024) - 2);
    }
    expect(early).toEqual([]);
    expect(deltaChunks).toBeGreaterThan(0);
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

describe('an encrypted chain of 4 deltas at two destinations, slow or damaged', () => {
  /** One workspace for these tests (the file's `ws` is disposed after each test). */
  let shared: Workspace;
  let chain: CatalogEntry[];
  let snapshot: string;
  /** The stored delta of each link, oldest first; the full's database artifact first. */
  let keys: string[];

  beforeAll(async () => {
    process.env.STOWAGE_CHAIN_TEST_PASSPHRASE = 'correct horse battery staple';
    shared = await makeWorkspace({
      config: {
        compression: { algorithm: 'zstd', level: 3 },
        encryption: { mode: 'passphrase', passphraseEnv: 'STOWAGE_CHAIN_TEST_PASSPHRASE' },
        destinations: [
          { name: 'dest-a', url: 'a' },
          { name: 'dest-b', url: 'b' },
        ],
      },
    });
    await backup(shared.engine, { type: 'full' });
    for (const seed of [1, 2, 3, 4]) {
      simulateWarehouseActivity(shared.database, { seed, operations: 40 });
      await backup(shared.engine, { type: 'incremental' });
    }
    const catalog = catalogOf(shared.engine);
    const entry = await findBackup(shared.engine, catalog, 'latest');
    chain = await resolveChain(catalog, entry, shared.engine.destinations);
    snapshot = entry.manifest.source.snapshotSha256;
    keys = chain.map((link) => link.manifest.artifacts.find((a) => a.role === 'database' || a.role === 'delta')!.key);
  });
  afterAll(() => shared.dispose());
  afterEach(() => void (shared.warnings.length = 0));

  /** Flips a byte in the middle of `key` at the named destinations; returns what heals it. */
  async function damage(key: string, at: readonly string[]): Promise<() => Promise<void>> {
    const original = await readFile(join(shared.dir, 'a', key));
    const bytes = Buffer.from(original);
    bytes[bytes.length >> 1]! ^= 0x01;
    for (const folder of at) await writeFile(join(shared.dir, folder, key), bytes);
    return async () => {
      for (const folder of at) await writeFile(join(shared.dir, folder, key), original);
    };
  }

  /** Restores the chain into a fresh folder: the sources, or the error; and what the folder holds after. */
  async function materialize(): Promise<{ sources?: string[]; error?: unknown; left: string[]; sha256?: string }> {
    const folder = join(shared.dir, `out-${Math.random().toString(36).slice(2)}`);
    await mkdir(folder);
    const path = join(folder, 'image.sqlite3');
    try {
      const sources = await materializeChain(shared.engine, chain, path, shared.engine.destinations);
      const sha256 = createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
      return { sources, left: await readdir(folder), sha256 };
    } catch (error) {
      return { error, left: await readdir(folder) };
    }
  }

  it('restores the snapshot, each link from the first destination', async () => {
    const { sources, sha256, left } = await materialize();
    expect(sources).toEqual(['dest-a', 'dest-a', 'dest-a', 'dest-a', 'dest-a']);
    expect(sha256).toBe(snapshot);
    expect(left).toEqual(['image.sqlite3']);
  });

  it('the newest delta slow to arrive: the same bytes', async () => {
    const adapter = shared.engine.destinations[0]!.adapter;
    const get = adapter.get.bind(adapter);
    adapter.get = async (key, options) => {
      if (key === keys[4]) await new Promise((resolve) => setTimeout(resolve, 300));
      return get(key, options);
    };
    try {
      const { sha256, error } = await materialize();
      expect(error).toBeUndefined();
      expect(sha256).toBe(snapshot);
    } finally {
      adapter.get = get;
    }
  });

  it.each([
    ['the newest delta (received first)', 4],
    ['a middle delta', 2],
    ['the oldest delta', 1],
    ['the full (after every delta was received)', 0],
  ])('%s damaged at every destination: backup_corrupt naming it, no retry of the others, and no image, spill or temp file left', async (_, link) => {
    const heal = await damage(keys[link]!, ['a', 'b']);
    try {
      const { error, left } = await materialize();
      expect(error).toMatchObject({ code: 'stowage.backup.corrupt' });
      expect((error as Error).message).toContain(keys[link]);
      expect(left).toEqual([]);
      // Only the damaged artifact was tried elsewhere; the other links were not read again.
      expect(shared.warnings).toHaveLength(2);
      expect(shared.warnings.every((w) => w.includes(keys[link]!))).toBe(true);
    } finally {
      await heal();
    }
  });

  it.each([4, 2, 1])('delta %i damaged at the first destination only: read from the second, the others from the first; the same bytes', async (link) => {
    const heal = await damage(keys[link]!, ['a']);
    try {
      const { sources, sha256, left } = await materialize();
      expect(sha256).toBe(snapshot);
      expect(sources).toEqual(chain.map((_, i) => (i === link ? 'dest-b' : 'dest-a')));
      expect(left).toEqual(['image.sqlite3']);
      expect(shared.warnings).toEqual([expect.stringContaining(keys[link]!)]);
    } finally {
      await heal();
    }
  });
});
