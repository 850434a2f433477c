/**
 * Fault-injection soak: seeded, reproducible random operations (backups of every type, database
 * activity, restores, verifies, syncs, cleanups) against a local, a second local and an in-memory
 * destination, each behind a chaos wrapper that injects errors, delays, full disks, torn writes,
 * truncated and flipped reads. A model records what each operation claimed (committed replicas,
 * snapshot hashes); a fault-free engine checks the claims after every operation:
 *   - no committed backup lost: every replica the model holds is listed and passes `verify --deep`;
 *   - no undetected corruption: a replica a command called stored/repaired really is intact;
 *   - no wrong bytes: every successful restore hashes to the snapshot recorded when it was taken;
 *   - cleanup never removes the newest backup of a type, or a backup a kept incremental needs.
 * Every `CHECK_EVERY` operations (and at the end) every modelled replica is restored on its own.
 * `SOAK_OPS` (default 100 in CI) and `SOAK_SEED` choose the run; `pnpm soak` runs 1,000.
 */
import { createHash } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Rng, simulateWarehouseActivity } from '@stowage/fixtures';
import { z } from 'zod';
import type { StorageAdapter } from '@stowage/storage';
import { forwarding, MemoryStorage, withChaos, type ChaosPlan } from '@stowage/storage-testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { cleanup } from './cleanup.js';
import { localRegistry, openEngine, type Engine } from './engine.js';
import type { BackupType } from './manifest.js';
import { restore } from './restore.js';
import { sync } from './sync.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

const OPS = Number(process.env.SOAK_OPS ?? 100);
const SEED = Number(process.env.SOAK_SEED ?? 1);
const CHECK_EVERY = 50;
const DESTINATIONS = ['primary', 'region-b', 'memory'] as const;

type Fault = 'none' | 'put-transient' | 'down' | 'disk-full' | 'torn-write' | 'short-read' | 'flipped-read' | 'stat-fails' | 'list-fails' | 'slow';
const FAULTS: readonly Fault[] = ['put-transient', 'down', 'disk-full', 'torn-write', 'short-read', 'flipped-read', 'stat-fails', 'list-fails', 'slow'];

/** What the soak believes is committed: per backup, its type, parent, snapshot hash and replicas. */
interface Modelled {
  type: BackupType;
  parent?: string;
  snapshotSha256: string;
  createdAt: number;
  replicas: Set<string>;
}

/** SOAK_TRACE=<file>: a line per operation (and what cleanup did), written before it runs, so a hang names its operation. */
const trace = (line: string) => process.env.SOAK_TRACE && appendFileSync(process.env.SOAK_TRACE, `${line}\n`);
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A put that reports success for the whole body but leaves only a prefix stored (a lost write). */
function tornWrites(inner: StorageAdapter, rng: Rng): StorageAdapter {
  return forwarding(inner, {
    async put(key, body, options) {
      const info = await inner.put(key, body, options);
      if (body.size > 1 && !key.startsWith('locks/')) {
        const chunks: Buffer[] = [];
        for await (const chunk of body.open() as AsyncIterable<Buffer>) chunks.push(chunk);
        const kept = Buffer.concat(chunks).subarray(0, rng.int(0, body.size - 1));
        await inner.put(key, { open: () => Readable.from([kept]), size: kept.length, sha256: sha256(kept) }, { ...options, ifNoneMatch: false });
      }
      return info;
    },
  });
}

function chaosPlan(fault: Fault, rng: Rng): ChaosPlan {
  switch (fault) {
    case 'put-transient':
      return { put: { fail: [1, rng.int(2, 4)] } };
    case 'down':
      return { put: { fail: 'always' }, get: { fail: 'always' }, stat: { fail: 'always' }, list: { fail: 'always' }, delete: { fail: 'always' } };
    case 'disk-full':
      return { diskFull: true };
    case 'short-read':
      return { get: { truncate: { after: rng.int(0, 20_000) } } };
    case 'flipped-read':
      return { get: { corruptAt: rng.int(0, 20_000) } };
    case 'stat-fails':
      return { stat: { fail: 'always' } };
    case 'list-fails':
      return { list: { fail: 'always' } };
    case 'slow':
      return { delayMs: rng.int(1, 5) };
    default:
      return {};
  }
}

describe('fault-injection soak', () => {
  let ws: Workspace;
  afterAll(async () => ws?.dispose());

  it(`${OPS} seeded operations (seed ${SEED}) under injected faults keep every invariant`, { timeout: Math.max(900_000, OPS * 6_000) }, async () => {
    const rng = new Rng('soak', SEED);
    const memory = new MemoryStorage('soak');
    const registry = localRegistry().register({ scheme: 'memory', optionsSchema: z.object({}).default({}), create: () => memory });
    let clock = Date.UTC(2026, 0, 1, 0, 0, 0);
    const now = () => new Date(clock);
    ws = await makeWorkspace({
      config: {
        destinations: [
          { name: 'primary', url: 'backups' },
          { name: 'region-b', url: 'region-b' },
          { name: 'memory', url: 'memory://soak' },
        ],
        quorum: 1,
      },
      engine: { registry, now },
    });
    // The faulty engine: each operation draws a fault per destination.
    // The faulty engine: before each operation every destination draws its fault, and its adapter is
    // wrapped afresh (chaos counters start over; the torn writer has its own seeded stream), so a run
    // depends on the seed alone, not on the order in which parallel uploads happen to call in.
    const faults = new Map<string, Fault>();
    const inner = new Map<string, StorageAdapter>();
    const active = new Map<string, StorageAdapter>();
    const faulty: Engine = await openEngine(ws.config, {
      registry,
      now,
      retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
      onWarning: () => undefined,
      wrappers: [
        (adapter, name) => {
          inner.set(name, adapter);
          const current = () => active.get(name) ?? adapter;
          return forwarding(adapter, {
            put: (key, body, options) => current().put(key, body, options),
            get: (key, options) => current().get(key, options),
            stat: (key, options) => current().stat(key, options),
            list: (prefix, options) => current().list(prefix, options),
            delete: (keys, options) => current().delete(keys, options),
          });
        },
      ],
    });

    const model = new Map<string, Modelled>();
    const counts: Record<string, number> = {};
    const injected: Record<Fault, number> = Object.fromEntries(['none', ...FAULTS].map((f) => [f, 0])) as Record<Fault, number>;
    const violations: string[] = [];
    const count = (what: string) => (counts[what] = (counts[what] ?? 0) + 1);
    const violate = (op: number, what: string) => violations.push(`op ${op} (seed ${SEED}): ${what}`);

    /** Every modelled replica of `ids` is listed and passes a deep verify on the fault-free engine. */
    async function checkReplicas(op: number, ids: Iterable<string>): Promise<void> {
      const listed = new Map((await listBackups(ws.engine)).map((entry) => [entry.manifest.id, entry]));
      for (const id of ids) {
        const modelled = model.get(id);
        if (!modelled) continue;
        const entry = listed.get(id);
        for (const destination of modelled.replicas) {
          if (!entry?.destinations.includes(destination)) {
            violate(op, `${id} committed at ${destination} is no longer listed there`);
            continue;
          }
          const [result] = await verify(ws.engine, { backup: id, destination, deep: true });
          if (!result?.ok)
            violate(
              op,
              `${id} at ${destination} was reported stored but fails verify --deep: ${result?.artifacts
                .filter((a) => !a.ok)
                .map((a) => a.problem)
                .join('; ')}`,
            );
        }
      }
    }

    /** Every modelled replica restores, on its own, to the bytes recorded when it was taken. */
    async function restoreEverything(op: number): Promise<void> {
      for (const [id, modelled] of model) {
        for (const destination of modelled.replicas) {
          try {
            const restored = await restore(ws.engine, { backup: id, from: destination, testMode: true, only: ['database'] });
            if (sha256(await readFile(restored.target!)) !== modelled.snapshotSha256) violate(op, `restore of ${id} from ${destination} returned wrong bytes`);
          } catch (error) {
            violate(op, `${id} committed at ${destination} does not restore from there: ${(error as Error).message}`);
          }
        }
      }
    }

    /** The newest backup of each type: what cleanup must keep whatever the retention says. */
    function mustKeep(): Set<string> {
      const keep = new Set<string>();
      for (const type of ['full', 'incremental', 'hot'] as const) {
        const newest = [...model].filter(([, m]) => m.type === type).sort((a, b) => b[1].createdAt - a[1].createdAt)[0];
        if (newest) keep.add(newest[0]);
      }
      return keep;
    }

    for (let op = 1; op <= OPS; op++) {
      clock += rng.int(10, 180) * 60_000;
      for (const destination of DESTINATIONS) {
        const fault: Fault = rng.random() < 0.3 ? rng.pick(FAULTS) : 'none';
        const adapter = inner.get(destination)!;
        faults.set(destination, fault);
        active.set(
          destination,
          fault === 'torn-write' ? tornWrites(adapter, new Rng(`torn:${op}:${destination}`, SEED)) : withChaos(adapter, chaosPlan(fault, rng)),
        );
        injected[fault]++;
      }
      const roll = rng.random();
      trace(`op ${op} roll=${roll.toFixed(3)} faults=${[...faults.values()].join(',')}`);
      const touched = new Set<string>();
      if (roll < 0.15) {
        count('activity');
        simulateWarehouseActivity(ws.database, { seed: op, operations: rng.int(5, 40) });
      } else if (roll < 0.5) {
        const type: BackupType = roll < 0.22 ? 'full' : roll < 0.27 ? 'hot' : 'incremental';
        count(`backup-${type}`);
        try {
          const result = await backup(faulty, { type, ...(type === 'hot' ? { reason: `soak op ${op}` } : {}) });
          const { manifest } = result;
          if (result.committed.length > 0) {
            model.set(manifest.id, {
              type: manifest.type,
              ...(manifest.parent ? { parent: manifest.parent } : {}),
              snapshotSha256: manifest.source.snapshotSha256,
              createdAt: clock,
              replicas: new Set(result.committed),
            });
            touched.add(manifest.id);
          }
        } catch {
          count('backup-refused');
        }
      } else if (roll < 0.65) {
        count('restore');
        const ids = [...model.keys()];
        const id = ids.length && rng.random() < 0.7 ? rng.pick(ids) : 'latest';
        const from = rng.random() < 0.5 ? rng.pick(DESTINATIONS) : undefined;
        try {
          const restored = await restore(faulty, { backup: id, ...(from ? { from } : {}), testMode: true, only: ['database'] });
          const expected = model.get(restored.manifest.id)?.snapshotSha256 ?? restored.manifest.source.snapshotSha256;
          if (sha256(await readFile(restored.target!)) !== expected) violate(op, `restore of ${restored.manifest.id} returned wrong bytes`);
          count('restore-ok');
        } catch {
          count('restore-refused');
        }
      } else if (roll < 0.77) {
        count('verify');
        await verify(faulty, { all: true, deep: rng.random() < 0.5 }).catch(() => count('verify-refused'));
      } else if (roll < 0.9) {
        count('sync');
        try {
          const result = await sync(faulty, { deep: rng.random() < 0.3 });
          for (const action of result.actions) {
            if (action.outcome !== 'repaired') continue;
            model.get(action.backupId)?.replicas.add(action.destination);
            touched.add(action.backupId);
          }
        } catch {
          count('sync-refused');
        }
      } else {
        count('cleanup');
        const keep = mustKeep();
        try {
          const result = await cleanup(faulty, {});
          trace(`cleanup ${JSON.stringify({ removed: result.removed, failures: result.failures })}`);
          for (const item of result.removed) {
            if (item.kind !== 'backup') continue;
            if (keep.has(item.what)) violate(op, `cleanup removed ${item.what} at ${item.destination}, the newest of its type`);
            const modelled = model.get(item.what);
            modelled?.replicas.delete(item.destination);
            if (modelled?.replicas.size === 0) model.delete(item.what);
          }
        } catch {
          count('cleanup-refused');
        }
        // Whatever cleanup kept must still have its parent wherever it is kept (a backup may have copied
        // the link there without the model knowing, so this asks the destinations, not the model).
        const listed = new Map((await listBackups(ws.engine)).map((entry) => [entry.manifest.id, entry.destinations]));
        for (const [id, modelled] of model) {
          const lacking = modelled.parent ? [...modelled.replicas].filter((d) => !listed.get(modelled.parent!)?.includes(d)) : [];
          if (lacking.length) violate(op, `cleanup removed ${modelled.parent} at ${lacking.join(', ')}, where the kept ${id} needs it`);
          touched.add(id);
        }
      }
      await checkReplicas(op, touched);
      if (op % CHECK_EVERY === 0 || op === OPS) await restoreEverything(op);
      if (violations.length) break;
    }

    const summary = { seed: SEED, operations: OPS, counts, injectedFaults: injected, backupsAtEnd: model.size, violations: violations.length };
    console.log(`soak: ${JSON.stringify(summary)}`);
    await faulty.close();
    expect(violations).toEqual([]);
    expect(model.size).toBeGreaterThan(0);
  });
});
