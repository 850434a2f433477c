import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups, type CatalogEntry } from './catalog.js';
import { fetchArtifact } from './chain.js';
import type { Destination, Engine } from './engine.js';
import type { Manifest } from './manifest.js';
import { logOperation } from './oplog.js';
import { ensurePrivateDir } from './private-fs.js';
import { commitManifest, confirmedReplica, confirmStored, stagedBody, type VerifiedBy } from './replica.js';

export interface SyncAction {
  backupId: string;
  destination: string;
  /** `missing`: no committed replica there; `damaged`: an artifact is missing or differs. */
  problem: 'missing' | 'damaged';
  detail?: string;
  outcome: 'planned' | 'repaired' | 'failed';
  /** Where the good bytes came from. */
  from?: string;
  message?: string;
}

export interface SyncResult {
  dryRun: boolean;
  actions: SyncAction[];
}

/**
 * Repairs replication: every committed backup is brought to every destination that lacks it or
 * holds a damaged copy, from a destination whose copy checks out (verified on both ends), oldest
 * first so that a chain's parents arrive before its incrementals. The manifest goes last.
 */
export async function sync(engine: Engine, options: { dryRun?: boolean; deep?: boolean } = {}): Promise<SyncResult> {
  const started = performance.now();
  const deep = options.deep ?? false;
  const actions: SyncAction[] = [];
  for (const entry of await listBackups(engine)) {
    const healthy: Destination[] = [];
    const broken: SyncAction[] = [];
    for (const destination of engine.destinations) {
      if (!entry.destinations.includes(destination.name)) {
        broken.push({ backupId: entry.manifest.id, destination: destination.name, problem: 'missing', outcome: 'planned' });
        continue;
      }
      const problem = await firstProblem(destination, entry.manifest, deep);
      if (problem === undefined) healthy.push(destination);
      else broken.push({ backupId: entry.manifest.id, destination: destination.name, problem: 'damaged', detail: problem, outcome: 'planned' });
    }
    for (const action of broken) {
      actions.push(action);
      if (options.dryRun) continue;
      if (healthy.length === 0) {
        action.outcome = 'failed';
        action.message = `no destination holds a good copy of ${entry.manifest.id}`;
        continue;
      }
      try {
        action.from = await copyReplica(engine, entry, healthy, engine.destinations.find((d) => d.name === action.destination)!);
        action.outcome = 'repaired';
      } catch (error) {
        action.outcome = 'failed';
        action.message = (error as Error).message;
      }
    }
  }
  if (!options.dryRun) {
    await logOperation(engine.logDir, 'backup.log', {
      operation: 'sync',
      outcome: actions.some((a) => a.outcome === 'failed') ? 'failed' : 'ok',
      durationMs: performance.now() - started,
      detail: actions.map((a) => `${a.destination}:${a.backupId}:${a.outcome}`).join(',') || 'nothing to do',
    });
  }
  return { dryRun: options.dryRun ?? false, actions };
}

async function firstProblem(destination: Destination, manifest: Manifest, deep: boolean): Promise<string | undefined> {
  for (const artifact of manifest.artifacts) {
    try {
      await confirmStored(destination, artifact, { deep });
    } catch (error) {
      return (error as Error).message;
    }
  }
  return undefined;
}

/**
 * Copies every artifact of `entry` from a healthy destination to `target`, verifies it there, then
 * writes the manifest. Returns the destination(s) the bytes came from.
 */
export async function copyReplica(engine: Engine, entry: CatalogEntry, healthy: Destination[], target: Destination): Promise<string> {
  await ensurePrivateDir(engine.stagingDir);
  const sources = new Set<string>();
  const methods = new Map<string, VerifiedBy>();
  for (const artifact of entry.manifest.artifacts) {
    const path = join(engine.stagingDir, `sync-${randomBytes(6).toString('hex')}`);
    try {
      sources.add(await fetchArtifact(engine, { ...entry, destinations: healthy.map((d) => d.name) }, artifact, path, healthy, { decode: false }));
      const stored = await target.adapter.put(artifact.key, stagedBody({ artifact, path }));
      methods.set(artifact.key, await confirmStored(target, artifact, { deep: false, stored }));
    } finally {
      await rm(path, { force: true });
    }
  }
  const manifest: Manifest = { ...entry.manifest, replicas: { ...entry.manifest.replicas, [target.name]: confirmedReplica(methods, new Date()) } };
  await commitManifest(target, manifest);
  return [...sources].join(',');
}
