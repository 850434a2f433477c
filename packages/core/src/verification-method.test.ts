import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { StorageAdapter } from '@stowage/storage';
import { withChaos } from '@stowage/storage-testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { openEngine } from './engine.js';
import type { Manifest } from './manifest.js';
import { sync } from './sync.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { listBackups } from './catalog.js';
import { manifestKey } from './layout.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

/** Every `get` each destination served, by key. */
type Reads = Map<string, string[]>;

/** The artifacts read back at one destination (manifests are read and confirmed too: not artifacts). */
const artifactReads = (reads: Reads, name: string) =>
  reads
    .get(name)!
    .filter((key) => !key.endsWith('.manifest.json'))
    .sort();

/**
 * Records the reads at each destination, and makes the ones named in `blind` report no checksum
 * for the keys `hides` matches (put and stat), as a backend without server checksums would.
 */
function observed(reads: Reads, blind: Record<string, (key: string) => boolean>) {
  return (adapter: StorageAdapter, name: string): StorageAdapter => {
    reads.set(name, []);
    const hides = blind[name] ?? (() => false);
    return {
      description: adapter.description,
      capabilities: adapter.capabilities,
      put: async (key, body, options) => {
        const info = await adapter.put(key, body, options);
        return hides(key) ? { ...info, checksums: {} } : info;
      },
      get: async (key, options) => (reads.get(name)!.push(key), adapter.get(key, options)),
      stat: async (key, options) => {
        const info = await adapter.stat(key, options);
        return info && hides(key) ? { ...info, checksums: {} } : info;
      },
      list: (prefix, options) => adapter.list(prefix, options),
      delete: (keys, options) => adapter.delete(keys, options),
    };
  };
}

const artifactKeys = (manifest: Manifest) => manifest.artifacts.map((a) => a.key);
const destinations = ['local', 'blind', 'mixed'].map((name) => ({ name, url: name }));
const blind = { blind: () => true, mixed: (key: string) => key.endsWith('.pagehash') };

describe('the verification method a manifest records is the one that ran', () => {
  it('backup: a reported checksum without a read, a read-back where none is reported, each artifact named when they differ', async () => {
    ws = await makeWorkspace({ config: { destinations } });
    const reads: Reads = new Map();
    const engine = await openEngine(ws.config, { retry: false, wrappers: [observed(reads, blind)] });
    const { manifest } = await backup(engine, { type: 'full' });
    await engine.close();
    const keys = artifactKeys(manifest);
    const pageHashes = keys.find((k) => k.endsWith('.pagehash'))!;

    expect(manifest.replicas.local).toMatchObject({ verifiedBy: 'server-sha256' });
    expect(manifest.replicas.local?.verifiedByArtifact).toBeUndefined();
    expect(artifactReads(reads, 'local')).toEqual([]);

    expect(manifest.replicas.blind).toMatchObject({ verifiedBy: 'sha256-readback' });
    expect(artifactReads(reads, 'blind')).toEqual([...keys].sort());

    expect(manifest.replicas.mixed?.verifiedBy).toBe('server-sha256');
    expect(manifest.replicas.mixed?.verifiedByArtifact).toEqual(
      Object.fromEntries(keys.map((k) => [k, k === pageHashes ? 'sha256-readback' : 'server-sha256'])),
    );
    expect(artifactReads(reads, 'mixed')).toEqual([pageHashes]);
  });

  it('sync: records how the copy it wrote was confirmed, not always a read-back', async () => {
    ws = await makeWorkspace({ config: { destinations, quorum: 1 } });
    const down = await openEngine(ws.config, {
      retry: false,
      onWarning: () => undefined,
      wrappers: [(a, name) => (name === 'local' ? a : withChaos(a, { put: { fail: 'always' } }))],
    });
    const { manifest } = await backup(down, { type: 'full' });
    await down.close();
    expect(Object.keys(manifest.replicas)).toEqual(['local']);

    // Now only `local` holds it: sync copies to `blind` and `mixed`, and `local` is read as the source.
    const reads: Reads = new Map();
    const engine = await openEngine(ws.config, { retry: false, wrappers: [observed(reads, blind)] });
    const result = await sync(engine);
    expect(result.actions.map((a) => [a.destination, a.outcome])).toEqual([
      ['blind', 'repaired'],
      ['mixed', 'repaired'],
    ]);
    const [entry] = await listBackups(
      ws.engine,
      ws.engine.destinations.filter((d) => d.name === 'blind'),
    );
    await engine.close();
    const keys = artifactKeys(manifest);
    expect(entry?.manifest.replicas.blind).toMatchObject({ verifiedBy: 'sha256-readback' });
    expect(entry?.manifest.replicas.local).toEqual(manifest.replicas.local);
    expect(entry?.manifest.replicas.mixed).toBeUndefined(); // each copy's manifest records its own replica
    expect(artifactReads(reads, 'blind')).toEqual([...keys].sort());

    const [atMixed] = await listBackups(
      ws.engine,
      ws.engine.destinations.filter((d) => d.name === 'mixed'),
    );
    expect(atMixed?.manifest.replicas.mixed?.verifiedBy).toBe('server-sha256');
    expect(atMixed?.manifest.replicas.mixed?.verifiedByArtifact?.[keys.find((k) => k.endsWith('.pagehash'))!]).toBe('sha256-readback');
    expect(artifactReads(reads, 'mixed')).toEqual([keys.find((k) => k.endsWith('.pagehash'))]);

    // Only the manifest lost at `blind`: sync rewrites it and records how the artifacts already there were confirmed.
    await rm(join(ws.dir, 'blind', manifestKey(manifest.type, manifest.id)));
    const again = await openEngine(ws.config, { retry: false, wrappers: [observed(reads, blind)] });
    expect((await sync(again)).actions.map((a) => [a.destination, a.outcome])).toEqual([['blind', 'repaired']]);
    await again.close();
    expect(artifactReads(reads, 'blind')).toEqual([...keys].sort());
    const [rewritten] = await listBackups(
      ws.engine,
      ws.engine.destinations.filter((d) => d.name === 'blind'),
    );
    expect(rewritten?.manifest.replicas.blind).toMatchObject({ verifiedBy: 'sha256-readback' });
  });
});
