import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bufferBody, type StorageAdapter } from '@stowage/storage';
import { forwarding, withChaos } from '@stowage/storage-testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { openEngine } from './engine.js';
import { restore } from './restore.js';
import { sync } from './sync.js';
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';
import { verify } from './verify.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

const destinations = [
  { name: 'primary', url: 'backups' },
  { name: 'region-b', url: 'region-b' },
  { name: 'region-c', url: 'region-c' },
];

describe('replication to several destinations', () => {
  it('is degraded (not failed) when a destination is down but the quorum committed, and sync catches it up', async () => {
    ws = await makeWorkspace({ config: { destinations, quorum: 2 } });
    const down = await openEngine(ws.config, {
      retry: false,
      onWarning: () => undefined,
      wrappers: [(a, name) => (name === 'region-c' ? withChaos(a, { put: { fail: 'always' }, stat: { fail: 'always' } }) : a)],
    });
    const result = await backup(down, { type: 'full' });
    expect(result.outcome).toBe('degraded');
    expect(result.committed.sort()).toEqual(['primary', 'region-b']);
    expect(result.failures).toMatchObject([{ destination: 'region-c', code: 'stowage.storage.transient' }]);
    expect((await listBackups(ws.engine))[0]?.destinations).toEqual(['primary', 'region-b']);
    expect((await verify(ws.engine, { all: true }))[0]?.artifacts.filter((a) => !a.ok).map((a) => a.destination)).toEqual(['region-c']);

    const plan = await sync(ws.engine, { dryRun: true });
    expect(plan.actions).toMatchObject([{ destination: 'region-c', problem: 'missing', outcome: 'planned' }]);
    const repaired = await sync(ws.engine);
    expect(repaired.actions).toMatchObject([{ destination: 'region-c', outcome: 'repaired', from: 'primary' }]);
    expect((await verify(ws.engine, { all: true, deep: true }))[0]?.ok).toBe(true);
    // region-c alone is enough to restore.
    const restored = await restore(ws.engine, { from: 'region-c', testMode: true });
    expect(await sha256File(restored.target!)).toBe(result.manifest.source.snapshotSha256);
  });

  it('fails below the quorum and says where', async () => {
    ws = await makeWorkspace({ config: { destinations } });
    const down = await openEngine(ws.config, {
      retry: false,
      onWarning: () => undefined,
      wrappers: [(a, name) => (name === 'primary' ? a : withChaos(a, { diskFull: true }))],
    });
    const result = await backup(down, { type: 'full' });
    expect(result).toMatchObject({ outcome: 'failed', committed: ['primary'] });
    expect(result.failures.map((f) => f.destination).sort()).toEqual(['region-b', 'region-c']);
  });

  it('restores through another destination when a replica is altered, verify names it, and sync repairs it', async () => {
    ws = await makeWorkspace({ config: { destinations } });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const damaged = join(ws.dir, 'backups', 'full', `${manifest.id}.sqlite3`);
    const bytes = await readFile(damaged);
    bytes[4096]! ^= 0x20;
    await writeFile(damaged, bytes);

    const restored = await restore(ws.engine, { backup: manifest.id, testMode: true });
    expect(restored.source).toBe('region-b');
    expect(ws.warnings.join('\n')).toMatch(/could not use full\/\S+ from primary .*trying the next destination/);
    expect(await sha256File(restored.target!)).toBe(manifest.source.snapshotSha256);

    const checked = (await verify(ws.engine, { backup: 'latest' }))[0]!;
    expect(checked.artifacts.filter((a) => !a.ok)).toMatchObject([{ destination: 'primary', key: `full/${manifest.id}.sqlite3` }]);
    const repaired = await sync(ws.engine);
    expect(repaired.actions).toMatchObject([{ destination: 'primary', problem: 'damaged', outcome: 'repaired' }]);
    expect(await sha256File(damaged)).toBe(manifest.source.snapshotSha256);
    expect((await verify(ws.engine, { all: true, deep: true })).every((v) => v.ok)).toBe(true);
  });

  it('does not count a destination whose manifest write was lost as committed, and withdraws what it wrote there', async () => {
    ws = await makeWorkspace({ config: { destinations, quorum: 2 } });
    // region-c acknowledges the manifest but keeps only half of it (a torn write).
    const torn = (adapter: StorageAdapter): StorageAdapter =>
      forwarding(adapter, {
        put: async (key, body, options) => {
          const info = await adapter.put(key, body, options);
          if (key.endsWith('.manifest.json')) await adapter.put(key, bufferBody('{"format":'), { ...options, ifNoneMatch: false });
          return info;
        },
      });
    const lossy = await openEngine(ws.config, { retry: false, onWarning: () => undefined, wrappers: [(a, name) => (name === 'region-c' ? torn(a) : a)] });
    const result = await backup(lossy, { type: 'full' });
    expect(result.outcome).toBe('degraded');
    expect(result.committed.sort()).toEqual(['primary', 'region-b']);
    expect(result.failures).toMatchObject([{ destination: 'region-c', code: 'stowage.storage.checksum_mismatch' }]);
    expect(await readdir(join(ws.dir, 'region-c', 'full'))).toEqual([]);
    const repaired = await sync(ws.engine);
    expect(repaired.actions).toMatchObject([{ destination: 'region-c', problem: 'missing', outcome: 'repaired' }]);
    expect(await sha256File((await restore(ws.engine, { from: 'region-c', testMode: true })).target!)).toBe(result.manifest.source.snapshotSha256);
  });

  it('rejects a quorum larger than the destinations', async () => {
    await expect(makeWorkspace({ config: { destinations, quorum: 4 } })).rejects.toThrow(/quorum: quorum 4 is more than the 3 configured/);
  });
});

describe('custom adapters named in the config', () => {
  it('are loaded from a module and used like the built-in ones', async () => {
    const template = fileURLToPath(new URL('../../../templates/storage-adapter/src/index.ts', import.meta.url));
    ws = await makeWorkspace({ config: { adapters: [template], destinations: [{ name: 'offsite', url: 'example:offsite' }] } });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    expect((await verify(ws.engine, { backup: manifest.id, deep: true }))[0]?.ok).toBe(true);
    const restored = await restore(ws.engine, { testMode: true });
    expect(await sha256File(restored.target!)).toBe(manifest.source.snapshotSha256);
  });

  it('are found by package name beside Stowage when the config folder does not have them', async () => {
    ws = await makeWorkspace({ config: { adapters: ['@stowage/storage-adapter-template'], destinations: [{ name: 'offsite', url: 'example:offsite' }] } });
    expect(ws.engine.destinations.map((d) => d.name)).toEqual(['offsite']);
    await expect(makeWorkspace({ config: { adapters: ['stowage-adapter-not-installed'] } })).rejects.toThrow(
      /adapters\.0: cannot load 'stowage-adapter-not-installed': not installed in .*, beside Stowage or in the global modules \(.*\); install it with npm there/,
    );
  });

  it('name the module when it exports no factory', async () => {
    const notAdapter = fileURLToPath(new URL('./layout.ts', import.meta.url));
    await expect(makeWorkspace({ config: { adapters: [notAdapter] } })).rejects.toThrow(/adapters\.0: .*exports no storage adapter factory/);
  });
});

describe('two backups racing to the same destinations', () => {
  it('both commit, under different names, each restorable', async () => {
    const fixed = new Date(2024, 0, 1, 2, 0, 0);
    ws = await makeWorkspace({ config: { destinations: destinations.slice(0, 2) }, engine: { now: () => fixed } });
    const results = await Promise.all([1, 2, 3].map(() => backup(ws.engine, { type: 'full' })));
    const ids = results.map((r) => r.manifest.id);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^full_backup_20240101_020000(_\d+)?$/);
    expect(results.every((r) => r.outcome === 'ok')).toBe(true);
    expect((await listBackups(ws.engine)).map((e) => e.destinations.length)).toEqual([2, 2, 2]);
    for (const id of ids) expect((await verify(ws.engine, { backup: id, deep: true }))[0]?.ok).toBe(true);
  });
});
