import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { crashPoint, ownerToken } from '@stowage/storage';
import { readCatalog, type CatalogEntry } from './catalog.js';
import { describeVanished, readHistory, vanishedBackups } from './history.js';
import { fetchArtifact, type ArtifactReader } from './chain.js';
import type { Destination, Engine } from './engine.js';
import type { Artifact, Manifest } from './manifest.js';
import { logOperation } from './oplog.js';
import { ensurePrivateDir } from './private-fs.js';
import { commitManifest, confirmedReplica, confirmStored, stagedBody, withSentChecksums, type VerifiedBy } from './replica.js';

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
 * holds a damaged copy (an artifact missing or different, or an unreadable manifest), from a
 * destination whose copy checks out (verified on both ends), oldest first so that a chain's parents
 * arrive before its incrementals. The manifest goes last. A replica that cleanup removed (by
 * retention at that destination) is not brought back; a manifest unreadable everywhere is a failure.
 */
export async function sync(engine: Engine, options: { dryRun?: boolean; deep?: boolean } = {}): Promise<SyncResult> {
  const started = performance.now();
  const deep = options.deep ?? false;
  const actions: SyncAction[] = [];
  const catalog = await readCatalog(engine.destinations);
  for (const { destination, message } of catalog.unlisted) engine.warn(`destination ${destination} could not be listed: ${message}`);
  const history = await readHistory(engine);
  const { removedByCleanup } = history;
  const unlisted = new Set(catalog.unlisted.map((u) => u.destination));
  for (const entry of catalog.entries) {
    const { id } = entry.manifest;
    const healthy: Destination[] = [];
    const broken: SyncAction[] = [];
    for (const destination of engine.destinations.filter((d) => !unlisted.has(d.name))) {
      const damagedManifest = catalog.damaged.find((d) => d.id === id && d.destination === destination.name);
      if (damagedManifest) {
        broken.push({ backupId: id, destination: destination.name, problem: 'damaged', detail: damagedManifest.problem, outcome: 'planned' });
      } else if (!entry.destinations.includes(destination.name)) {
        if (!removedByCleanup.has(`${destination.name}:${id}`))
          broken.push({ backupId: id, destination: destination.name, problem: 'missing', outcome: 'planned' });
      } else {
        const problem = await firstProblem(destination, entry.manifest, deep);
        if (problem === undefined) healthy.push(destination);
        else broken.push({ backupId: id, destination: destination.name, problem: 'damaged', detail: problem, outcome: 'planned' });
      }
    }
    for (const action of broken) {
      actions.push(action);
      if (options.dryRun) continue;
      if (healthy.length === 0) {
        action.outcome = 'failed';
        action.message = `no destination holds a good copy of ${id}`;
        continue;
      }
      try {
        action.from = await copyReplica(engine, entry, healthy, engine.destinations.find((d) => d.name === action.destination)!, deep);
        action.outcome = 'repaired';
      } catch (error) {
        action.outcome = 'failed';
        action.message = (error as Error).message;
      }
    }
  }
  const readable = new Set(catalog.entries.map((e) => e.manifest.id));
  for (const vanished of vanishedBackups(
    history,
    catalog,
    engine.destinations.map((d) => d.name),
  )) {
    actions.push({
      backupId: vanished.id,
      destination: vanished.expectedAt.join(','),
      problem: 'missing',
      detail: describeVanished(vanished),
      outcome: options.dryRun ? 'planned' : 'failed',
      message: 'no destination holds a copy to repair it from',
    });
  }
  for (const damaged of catalog.damaged.filter((d) => !readable.has(d.id))) {
    actions.push({
      backupId: damaged.id,
      destination: damaged.destination,
      problem: 'damaged',
      detail: damaged.problem,
      outcome: options.dryRun ? 'planned' : 'failed',
      message: `no destination holds a readable manifest of ${damaged.id}`,
    });
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

/** The ones of `destinations` holding `entry` whose every artifact checks out. */
export async function healthyHolders(destinations: readonly Destination[], entry: CatalogEntry, deep = false): Promise<Destination[]> {
  const holders = destinations.filter((d) => entry.destinations.includes(d.name));
  const problems = await Promise.all(holders.map((d) => firstProblem(d, entry.manifest, deep)));
  return holders.filter((_, i) => problems[i] === undefined);
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
 * Copies every artifact of `entry` that `target` lacks or holds damaged (checked as `deep` says:
 * damage only a read-back sees is repaired only by a deep repair) from a healthy destination,
 * verifies it there, then writes the manifest, recording how each artifact was confirmed.
 * Returns where the bytes came from.
 */
export async function copyReplica(
  run: ArtifactReader & Pick<Engine, 'stagingDir'>,
  entry: CatalogEntry,
  healthy: Destination[],
  target: Destination,
  deep = false,
): Promise<string> {
  await ensurePrivateDir(run.stagingDir);
  const sources = new Set<string>();
  const methods = new Map<string, VerifiedBy>();
  const artifacts: Artifact[] = [];
  for (const recorded of entry.manifest.artifacts) {
    let artifact = recorded;
    const present = await confirmStored(target, artifact, { deep }).catch(() => undefined);
    if (present) {
      methods.set(artifact.key, present);
      artifacts.push(artifact);
      continue;
    }
    const path = join(run.stagingDir, `sync-${ownerToken()}`);
    try {
      sources.add(await fetchArtifact(run, { ...entry, destinations: healthy.map((d) => d.name) }, artifact, path, healthy, { decode: false }));
      const stored = await target.adapter.put(artifact.key, stagedBody({ artifact, path }));
      artifact = withSentChecksums(target, artifact, stored);
      methods.set(artifact.key, await confirmStored(target, artifact, { deep: false, stored }));
      artifacts.push(artifact);
      crashPoint('sync.artifact-copied');
    } finally {
      await rm(path, { force: true });
    }
  }
  const manifest: Manifest = { ...entry.manifest, artifacts, replicas: { ...entry.manifest.replicas, [target.name]: confirmedReplica(methods, new Date()) } };
  await commitManifest(target, manifest);
  crashPoint('sync.manifest-written');
  return [...sources].join(',') || entry.destinations.join(','); // only the manifest was rewritten
}
