import { cp, mkdtemp, readdir, readFile, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { simulateWarehouseActivity, writeSampleMedia } from '@stowage/fixtures';
import type { StorageAdapter } from '@stowage/storage';
import { withChaos } from '@stowage/storage-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { restorableFrom } from './chain.js';
import { resolveConfig, type ConfigFile } from './config.js';
import { openEngine, type Engine, type EngineOptions } from './engine.js';
import type { Artifact, Manifest } from './manifest.js';
import { restore } from './restore.js';
import { makeWorkspace, sha256File } from './test/harness.js';

/*
 * An incremental is built only on a parent whose whole chain is restorable, and committed at a
 * destination only when that destination holds the whole chain. The matrix damages each kind of
 * stored file of the chain (the full's database image, the parent's delta, its page-hash list, its
 * file-set archive and index) by flipping a byte, truncating or deleting it, at every destination or at one.
 */

const DESTINATIONS = { a: 'backups', b: 'region-b' } as const;
const CONFIG: Partial<ConfigFile> = {
  source: { database: 'db.sqlite3', busyTimeoutMs: 5000, files: { media: { path: 'media' } } },
  destinations: Object.entries(DESTINATIONS).map(([name, url]) => ({ name, url })),
};

let template: string;
let full: Manifest;
let inc1: Manifest;
const scratch: string[] = [];

beforeAll(async () => {
  const ws = await makeWorkspace({ config: CONFIG });
  writeSampleMedia(join(ws.dir, 'media'), { seed: 1, count: 4 });
  full = (await backup(ws.engine, { type: 'full' })).manifest;
  simulateWarehouseActivity(ws.database, { seed: 2, operations: 20 });
  await writeFile(join(ws.dir, 'media', 'new.txt'), 'a new upload\n');
  inc1 = (await backup(ws.engine, { type: 'incremental' })).manifest;
  expect(inc1.parent).toBe(full.id);
  simulateWarehouseActivity(ws.database, { seed: 3, operations: 20 });
  await ws.engine.close();
  template = ws.dir;
});
afterAll(async () => Promise.all([template, ...scratch].map((dir) => rm(dir, { recursive: true, force: true }))));

/** A copy of the template workspace (database, file sets, both destinations, state folder) with its own engine. */
async function copyOfTemplate(options: EngineOptions = {}): Promise<{ dir: string; engine: Engine; warnings: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-chain-'));
  scratch.push(dir);
  await cp(template, dir, { recursive: true });
  const warnings: string[] = [];
  const config = resolveConfig(
    { ...CONFIG, source: CONFIG.source!, destinations: CONFIG.destinations!, compression: { algorithm: 'none' } },
    join(dir, 'stowage.config.json'),
  );
  return { dir, engine: await openEngine(config, { retry: false, onWarning: (m) => warnings.push(m), ...options }), warnings };
}

const artifact = (manifest: Manifest, role: Artifact['role']) => manifest.artifacts.find((a) => a.role === role)!;
const KINDS: Array<[string, () => Artifact]> = [
  ["the full's database image", () => artifact(full, 'database')],
  ["the parent's delta", () => artifact(inc1, 'delta')],
  ["the parent's page-hash list", () => artifact(inc1, 'page-hashes')],
  ["the parent's file-set archive", () => artifact(inc1, 'files')],
  ["the parent's file-set index", () => artifact(inc1, 'files-index')],
];
const DAMAGES: Record<string, (path: string) => Promise<void>> = {
  flipped: async (path) => {
    const bytes = await readFile(path);
    bytes[bytes.length >> 1]! ^= 0x01;
    await writeFile(path, bytes);
  },
  truncated: async (path) => truncate(path, (await readFile(path)).length >> 1),
  deleted: (path) => unlink(path),
};

describe('an incremental is built only on a restorable parent', () => {
  for (const [kind, pick] of KINDS) {
    for (const [damage, apply] of Object.entries(DAMAGES)) {
      it(`${kind} ${damage} at every destination → a full, saying why, and latest restores`, async () => {
        const { dir, engine, warnings } = await copyOfTemplate();
        try {
          const key = pick().key;
          for (const root of Object.values(DESTINATIONS)) await apply(join(dir, root, key));
          const next = await backup(engine, { type: 'incremental' });
          expect(next.outcome).toBe('ok');
          expect(next.manifest).toMatchObject({ type: 'full', parent: null, fullBecause: expect.stringContaining(key) });
          expect(next.manifest.fullBecause).toMatch(/has no intact copy at any destination \(a: .*; b: /);
          expect(warnings).toContainEqual(expect.stringContaining('taking a full backup instead of an incremental'));
          const restored = await restore(engine, { testMode: true });
          expect(restored.manifest.id).toBe(next.manifest.id);
          expect(await sha256File(restored.target!)).toBe(next.manifest.source.snapshotSha256);
        } finally {
          await engine.close();
        }
      });
    }
  }

  it('a damaged chain found while the pages are read from a copy (WAL mode) → the copy and delta are dropped, a full is taken through the same staging path', async () => {
    const { dir, engine } = await copyOfTemplate();
    try {
      const db = new Database(join(dir, 'db.sqlite3'));
      expect(db.pragma('journal_mode = WAL', { simple: true })).toBe('wal');
      db.close();
      for (const root of Object.values(DESTINATIONS)) await DAMAGES.flipped!(join(dir, root, artifact(full, 'database').key));
      const next = await backup(engine, { type: 'incremental' });
      expect(next.manifest).toMatchObject({ type: 'full', source: { journalMode: 'wal' }, fullBecause: expect.stringContaining('has no intact copy') });
      expect(await readdir(engine.stagingDir)).toEqual([]);
      const restored = await restore(engine, { testMode: true });
      expect(await sha256File(restored.target!)).toBe(next.manifest.source.snapshotSha256);
    } finally {
      await engine.close();
    }
  });

  it.each(KINDS.map(([kind, pick], i) => [kind, pick, Object.keys(DAMAGES)[i % 3]!] as const))(
    '%s damaged at one destination → the link is copied there first and the incremental is restorable from each destination alone',
    async (_kind, pick, damage) => {
      const { dir, engine, warnings } = await copyOfTemplate();
      try {
        await DAMAGES[damage]!(join(dir, DESTINATIONS.b, pick().key));
        const next = await backup(engine, { type: 'incremental' });
        expect(next).toMatchObject({ outcome: 'ok', committed: expect.arrayContaining(['a', 'b']), manifest: { type: 'incremental', parent: inc1.id } });
        expect(warnings).toContainEqual(expect.stringMatching(/^copied \S+ to b from a \(.+\) to complete the chain there$/));
        for (const from of ['a', 'b']) {
          const restored = await restore(engine, { testMode: true, from });
          expect(restored.manifest.id).toBe(next.manifest.id);
          expect(await sha256File(restored.target!)).toBe(next.manifest.source.snapshotSha256);
        }
      } finally {
        await engine.close();
      }
    },
  );
});

describe('at destinations that report no checksum', () => {
  /** The adapter as an S3-compatible endpoint without checksums shows it: sizes only. */
  const noChecksums = (inner: StorageAdapter): StorageAdapter => ({
    ...inner,
    capabilities: { ...inner.capabilities, serverChecksums: [] },
    put: (key, body, options) => inner.put(key, body, options).then((info) => ({ ...info, checksums: {} })),
    get: (key, options) => inner.get(key, options),
    stat: async (key, options) => {
      const info = await inner.stat(key, options);
      return info && { ...info, checksums: {} };
    },
    list: (prefix, options) => inner.list(prefix, options),
    delete: (keys, options) => inner.delete(keys, options),
  });

  it('a small artifact of the chain is read back: a flipped byte in the parent delta at every destination → a full', async () => {
    const { dir, engine } = await copyOfTemplate({ wrappers: [noChecksums] });
    try {
      const key = artifact(inc1, 'delta').key;
      for (const root of Object.values(DESTINATIONS)) await DAMAGES.flipped!(join(dir, root, key));
      const next = await backup(engine, { type: 'incremental' });
      expect(next.manifest).toMatchObject({ type: 'full', fullBecause: expect.stringMatching(/SHA-256 of the bytes read back differs/) });
    } finally {
      await engine.close();
    }
  });
});

describe('an incremental is committed at a destination only with its whole chain', () => {
  it('after a full failed at a destination, the next incremental is not claimed there while it stays full, and is once the chain could be copied there', async () => {
    const { dir, engine } = await copyOfTemplate();
    const fullDisk = await openEngine(engine.config, {
      retry: false,
      onWarning: () => undefined,
      wrappers: [(a, name) => (name === 'b' ? withChaos(a, { diskFull: true }) : a)],
    });
    try {
      const engineQuorum1 = { ...fullDisk, config: { ...fullDisk.config, quorum: 1 } };
      const newFull = await backup(engineQuorum1, { type: 'full' });
      expect(newFull).toMatchObject({ outcome: 'degraded', committed: ['a'] });

      simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: 4, operations: 10 });
      const stillFull = await backup(engineQuorum1, { type: 'incremental' });
      expect(stillFull).toMatchObject({ outcome: 'degraded', committed: ['a'], manifest: { type: 'incremental', parent: newFull.manifest.id } });
      expect(stillFull.failures).toEqual([
        {
          destination: 'b',
          code: 'stowage.backup.chain_broken',
          message: expect.stringMatching(/^the chain is incomplete there: .*not committed there; copying \S+ there failed: .*no_space/),
        },
      ]);
      let catalog = await listBackups(engine);
      const entry = catalog.find((e) => e.manifest.id === stillFull.manifest.id)!;
      expect(restorableFrom(entry, catalog)).toEqual(['a']);
      await expect(restore(engine, { testMode: true, from: 'b' })).resolves.toMatchObject({ manifest: { id: inc1.id } });

      // The disk has room again: the next incremental first copies the missing links there.
      simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: 5, operations: 10 });
      const next = await backup(engine, { type: 'incremental' });
      expect(next).toMatchObject({ outcome: 'ok', committed: expect.arrayContaining(['a', 'b']), manifest: { parent: stillFull.manifest.id } });
      catalog = await listBackups(engine);
      expect(restorableFrom(catalog.at(-1)!, catalog)).toEqual(['a', 'b']);
      const restored = await restore(engine, { testMode: true, from: 'b' });
      expect(restored.manifest.id).toBe(next.manifest.id);
      expect(await sha256File(restored.target!)).toBe(next.manifest.source.snapshotSha256);
    } finally {
      await fullDisk.close();
      await engine.close();
    }
  });
});
