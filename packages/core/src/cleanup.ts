import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { crashPoint, type ObjectInfo } from '@stowage/storage';
import { readCatalog, type Catalog, type DamagedManifest } from './catalog.js';
import type { ArtifactReader } from './chain.js';
import type { ResolvedConfig } from './config.js';
import type { Destination, Engine } from './engine.js';
import { describeVanished, readHistory, recordRemoval, vanishedBackups, type BackupHistory, type HistorySource } from './history.js';
import { FOLDERS, idFromReference, manifestKey, MANIFEST_SUFFIX, typeOfId } from './layout.js';
import { BACKUP_TYPES } from './manifest.js';
import { logOperation } from './oplog.js';
import { planRetention, type RetentionDecision, type RetentionPolicy } from './retention.js';
import { copyReplica, healthyHolders } from './sync.js';

/** Artifacts without a manifest younger than this may belong to a backup still running. */
export const ORPHAN_GRACE_MS = 3_600_000;

export interface CleanupItem {
  destination: string;
  /** A backup id, or the key of an orphaned artifact. */
  what: string;
  kind: 'backup' | 'orphan';
  bytes: number;
  why: string;
}

export interface CleanupResult {
  dryRun: boolean;
  asOf: string;
  /** What was removed (or, with `dryRun`, would be), with the bytes it actually held. */
  removed: CleanupItem[];
  kept: Array<{ destination: string; id: string; why: string }>;
  /** Damaged manifests rewritten (or, with `dryRun`, to be rewritten) from a destination holding a good copy. */
  repaired: Array<{ destination: string; id: string; from: string }>;
  /** Damaged manifests no good copy could repair: reported, and their backups (and all they may need) kept. */
  damaged: DamagedManifest[];
  /** Bytes the removed objects held (only what was stored and deleted counts). */
  bytesFreed: number;
  /** Destinations that could not be cleaned, with the reason. */
  failures: Array<{ destination: string; message: string }>;
  /**
   * Backups past retention kept because an artifact of theirs (or of a backup that replays them)
   * has been in an archive class for less than the class's minimum storage duration: deleting it
   * now would be charged as if it stayed that long. `--allow-early-delete` deletes them anyway.
   */
  earlyDeleteAvoided: EarlyDelete[];
}

/** An archived object whose deletion now would be charged for the rest of its class's minimum storage duration. */
export interface EarlyDelete {
  destination: string;
  id: string;
  key: string;
  storageClass: string;
  bytes: number;
  /** Days it has been in the class (from its last modification, which the move to the class sets). */
  storedDays: number;
  minimumDays: number;
  /** The charge avoided: bytes × the days left of the minimum. */
  byteDays: number;
}

/**
 * Applies retention at every destination (with its overrides). A backup goes manifest first,
 * artifacts after, and newest first within a chain, so a crash mid-cleanup never leaves a
 * committed backup with missing parts or a committed incremental without its parent; each removal
 * is recorded in the audit log before it starts, so a rerun finishes an interrupted one.
 * Nothing is deleted because it could not be read: a damaged manifest is repaired from a good copy
 * or reported (its backup, and everything it may replay, kept); an artifact is an orphan only when
 * no destination holds any manifest file for its backup, this host has no record of committing it,
 * and it is older than an hour (crashed backups); orphans are left alone while a destination cannot
 * be listed. A backup recorded as committed whose manifest is nowhere is reported and kept.
 * Stale staging files go too.
 */
export async function cleanup(engine: Engine, options: { dryRun?: boolean; asOf?: Date; allowEarlyDelete?: boolean } = {}): Promise<CleanupResult> {
  const started = performance.now();
  const dryRun = options.dryRun ?? false;
  const asOf = options.asOf ?? engine.now();
  const result: CleanupResult = {
    dryRun,
    asOf: asOf.toISOString(),
    removed: [],
    kept: [],
    repaired: [],
    damaged: [],
    bytesFreed: 0,
    failures: [],
    earlyDeleteAvoided: [],
  };
  const catalog = await readCatalog(engine.destinations);
  const history = await readHistory(engine);
  await repairManifests(engine, catalog, dryRun, result);
  for (const vanished of vanishedBackups(
    history,
    catalog,
    engine.destinations.map((d) => d.name),
  )) {
    const key = manifestKey(typeOfId(vanished.id)!, vanished.id);
    result.damaged.push({
      id: vanished.id,
      destination: vanished.expectedAt.join(','),
      key,
      problem: `${describeVanished(vanished)}; whatever is left of it is kept`,
    });
  }
  const unlisted = new Map(catalog.unlisted.map((u) => [u.destination, u.message]));
  if (unlisted.size) engine.warn(`orphaned artifacts are left alone while ${[...unlisted.keys()].join(', ')} cannot be listed (it may hold their manifests)`);
  for (const destination of engine.destinations) {
    const unreachable = unlisted.get(destination.name);
    if (unreachable !== undefined) {
      result.failures.push({ destination: destination.name, message: `could not be listed: ${unreachable}` });
      continue;
    }
    try {
      await cleanDestination(engine, destination, { catalog, history, asOf, dryRun, allowEarlyDelete: options.allowEarlyDelete ?? false }, result);
    } catch (error) {
      result.failures.push({ destination: destination.name, message: (error as Error).message });
    }
  }
  if (!dryRun) await removeStaleStaging(engine.stagingDir, result);
  result.bytesFreed = result.removed.reduce((sum, item) => sum + item.bytes, 0);
  if (!dryRun) {
    const problems = [...result.failures.map((f) => `${f.destination}: ${f.message}`), ...result.damaged.map((d) => d.problem)];
    if (problems.length) await engine.alerts.raise((a, at) => a.cleanupFailed({ ...at, error: problems.join('; ') }));
    else await engine.alerts.resolve('cleanup-failed');
    await logOperation(engine.logDir, 'backup.log', {
      operation: 'cleanup',
      outcome: problems.length ? 'failed' : 'ok',
      durationMs: performance.now() - started,
      bytes: result.bytesFreed,
      detail: [
        `removed=${result.removed.map((r) => `${r.destination}:${r.what}`).join(',') || '-'}`,
        ...(result.repaired.length ? [`repaired=${result.repaired.map((r) => `${r.destination}:${r.id}`).join(',')}`] : []),
        ...(result.damaged.length ? [`damaged=${result.damaged.map((d) => `${d.destination}:${d.key}`).join(',')}`] : []),
        ...(result.failures.length ? [`failed=${result.failures.map((f) => f.destination).join(',')}`] : []),
      ].join(' '),
    });
  }
  return result;
}

/** Rewrites each damaged manifest from a destination whose copy of the backup checks out; the rest go to `result.damaged`. */
async function repairManifests(
  run: ArtifactReader & Pick<Engine, 'destinations' | 'stagingDir'>,
  catalog: Catalog,
  dryRun: boolean,
  result: CleanupResult,
): Promise<void> {
  for (const damaged of catalog.damaged) {
    const entry = catalog.entries.find((e) => e.manifest.id === damaged.id);
    const healthy = entry ? await healthyHolders(run.destinations, entry) : [];
    const target = run.destinations.find((d) => d.name === damaged.destination)!;
    if (!entry || healthy.length === 0) {
      result.damaged.push({
        ...damaged,
        problem: `${damaged.problem}; no destination holds a good copy of ${damaged.id}, so it is kept with everything it may need`,
      });
      continue;
    }
    try {
      const from = dryRun ? healthy.map((d) => d.name).join(',') : await copyReplica(run, entry, healthy, target);
      if (!dryRun) entry.destinations.push(target.name);
      result.repaired.push({ destination: damaged.destination, id: damaged.id, from });
    } catch (error) {
      result.damaged.push({
        ...damaged,
        problem: `${damaged.problem}; repairing it from ${healthy.map((d) => d.name).join(', ')} failed: ${(error as Error).message}`,
      });
    }
  }
}

async function cleanDestination(
  run: Pick<Engine, 'config' | 'logDir' | 'now'>,
  destination: Destination,
  { catalog, history, asOf, dryRun, allowEarlyDelete }: { catalog: Catalog; history: BackupHistory; asOf: Date; dryRun: boolean; allowEarlyDelete: boolean },
  result: CleanupResult,
): Promise<void> {
  const here = catalog.entries.filter((e) => e.destinations.includes(destination.name));
  const unreadableHere = result.damaged.filter((d) => d.destination.split(',').includes(destination.name)).map((d) => d.id);
  const stored = new Map<string, ObjectInfo>();
  for (const type of BACKUP_TYPES) for await (const info of destination.adapter.list(`${FOLDERS[type]}/`)) stored.set(info.key, info);
  const decisions = planRetention(here, retentionPolicyOf(run, destination.name), asOf, unreadableHere);
  if (!allowEarlyDelete) holdEarlyDeletes(destination, decisions, stored, asOf, result);
  for (const decision of decisions.filter((d) => d.keep))
    result.kept.push({ destination: destination.name, id: decision.entry.manifest.id, why: decision.why });
  const storedBytes = (keys: readonly string[]) => keys.reduce((sum, key) => sum + (stored.get(key)?.size ?? 0), 0);
  // Newest first: an incremental goes before the backup it replays.
  for (const decision of decisions.filter((d) => !d.keep).reverse()) {
    const { manifest } = decision.entry;
    const keys = [manifestKey(manifest.type, manifest.id), ...manifest.artifacts.map((a) => a.key)];
    if (!dryRun) {
      await recordRemoval(run, destination.name, manifest.id);
      await destination.adapter.delete(keys.slice(0, 1));
      crashPoint('cleanup.manifest-deleted');
      await destination.adapter.delete(keys.slice(1));
      crashPoint('cleanup.artifacts-deleted');
    }
    result.removed.push({ destination: destination.name, what: manifest.id, kind: 'backup', bytes: storedBytes(keys), why: decision.why });
    for (const key of keys) stored.delete(key);
  }
  // Objects of a backup without a manifest: left by an interrupted removal here, or by a crashed backup.
  const garbage = findOrphans(destination.name, stored.values(), { catalog, history, graceMs: ORPHAN_GRACE_MS });
  for (const { info, why } of garbage) result.removed.push({ destination: destination.name, what: info.key, kind: 'orphan', bytes: info.size, why });
  if (!dryRun && garbage.length) await destination.adapter.delete(garbage.map((o) => o.info.key));
}

/**
 * Deletes, at each of `destinations`, the objects of backups without a manifest there that are
 * garbage by `cleanup`'s rules (left by an interrupted removal, or of a backup with no manifest at
 * any destination and no record of a commit), however young: for a caller holding the exclusive
 * locks of the source and these destinations, under which no backup or sync can be writing
 * (`stowage daemon`'s recovery after a crash). Returns what it removed.
 */
export async function removeOrphans(run: HistorySource, destinations: readonly Destination[]): Promise<CleanupItem[]> {
  if (destinations.length === 0) return [];
  const [catalog, history] = await Promise.all([readCatalog(run.destinations), readHistory(run)]);
  const removed: CleanupItem[] = [];
  for (const destination of destinations) {
    if (catalog.unlisted.some((u) => u.destination === destination.name)) continue;
    const stored: ObjectInfo[] = [];
    for (const type of BACKUP_TYPES) for await (const info of destination.adapter.list(`${FOLDERS[type]}/`)) stored.push(info);
    const garbage = findOrphans(destination.name, stored, { catalog, history, graceMs: 0 });
    if (garbage.length) await destination.adapter.delete(garbage.map((o) => o.info.key));
    removed.push(...garbage.map(({ info, why }) => ({ destination: destination.name, what: info.key, kind: 'orphan' as const, bytes: info.size, why })));
  }
  return removed;
}

/** Why an orphan is garbage: a crashed backup's artifact (committed nowhere), or what an interrupted removal left. */
export const ORPHAN_CRASHED = 'artifact without a manifest at any destination (a crashed backup)';

/**
 * The stored objects at one destination that belong to a backup without a manifest there and are
 * garbage: left by an interrupted removal of it here, or (when every destination could be listed)
 * of a backup with no manifest file anywhere and no record of a commit, older than `graceMs`
 * (measured in real time, whatever `--as-of` says). Nothing is garbage because it could not be
 * read: a damaged manifest counts as present.
 */
function findOrphans(
  destination: string,
  stored: Iterable<ObjectInfo>,
  { catalog, history, graceMs }: { catalog: Catalog; history: BackupHistory; graceMs: number },
): Array<{ info: ObjectInfo; why: string }> {
  const manifestHere = new Set([
    ...catalog.entries.filter((e) => e.destinations.includes(destination)).map((e) => e.manifest.id),
    ...catalog.damaged.filter((d) => d.destination === destination).map((d) => d.id),
  ]);
  const manifestAnywhere = new Set([...catalog.entries.map((e) => e.manifest.id), ...catalog.damaged.map((d) => d.id)]);
  const garbage: Array<{ info: ObjectInfo; why: string }> = [];
  for (const info of stored) {
    const id = idFromReference(info.key);
    if (id === undefined || info.key.endsWith(MANIFEST_SUFFIX) || manifestHere.has(id)) continue;
    if (history.removedByCleanup.has(`${destination}:${id}`)) garbage.push({ info, why: `left by an interrupted removal of ${id}` });
    else if (
      catalog.unlisted.length === 0 &&
      !manifestAnywhere.has(id) &&
      !history.backups.get(id)?.destinations.size &&
      Date.now() - info.modified.getTime() >= graceMs
    ) {
      garbage.push({ info, why: ORPHAN_CRASHED });
    }
  }
  return garbage;
}

/**
 * Keeps (in `decisions`) each backup due for deletion that holds an object in an archive class for
 * less than the class's minimum storage duration, with every link it replays, and records the
 * charge avoided.
 */
function holdEarlyDeletes(
  destination: Destination,
  decisions: RetentionDecision[],
  stored: ReadonlyMap<string, ObjectInfo>,
  asOf: Date,
  result: CleanupResult,
): void {
  const facts = destination.adapter.capabilities.archiveClassFacts;
  if (!facts) return;
  const byId = new Map(decisions.map((d) => [d.entry.manifest.id, d]));
  for (const decision of decisions.filter((d) => !d.keep)) {
    const { manifest } = decision.entry;
    const early = manifest.artifacts.flatMap((artifact): EarlyDelete[] => {
      const info = stored.get(artifact.key);
      const minimumDays = info?.storageClass === undefined ? undefined : facts[info.storageClass]?.minimumStorageDays;
      if (!info || minimumDays === undefined) return [];
      const storedDays = (asOf.getTime() - info.modified.getTime()) / 86_400_000;
      if (storedDays >= minimumDays) return [];
      return [
        {
          destination: destination.name,
          id: manifest.id,
          key: artifact.key,
          storageClass: info.storageClass!,
          bytes: info.size,
          storedDays: Math.floor(storedDays),
          minimumDays,
          byteDays: Math.round(info.size * (minimumDays - storedDays)),
        },
      ];
    });
    if (early.length === 0) continue;
    result.earlyDeleteAvoided.push(...early);
    const [first] = early;
    const why = `in ${first!.storageClass} for ${first!.storedDays} of its ${first!.minimumDays} minimum days: deleting it now is charged as if stored that long (--allow-early-delete deletes it anyway)`;
    for (
      let link: RetentionDecision | undefined = decision;
      link && !link.keep;
      link = link.entry.manifest.parent === null ? undefined : byId.get(link.entry.manifest.parent)
    ) {
      link.keep = true;
      link.why = link === decision ? why : `${manifest.id} replays it and is kept: ${why}`;
    }
  }
}

async function removeStaleStaging(stagingDir: string, result: CleanupResult): Promise<void> {
  const names = await readdir(stagingDir).catch(() => [] as string[]);
  for (const name of names) {
    const path = join(stagingDir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info || Date.now() - info.mtimeMs < ORPHAN_GRACE_MS) continue;
    await rm(path, { force: true });
    result.removed.push({ destination: 'staging', what: path, kind: 'orphan', bytes: info.size, why: 'staging file of a crashed backup' });
  }
}

/** The retention policy of one destination: the config's, with that destination's overrides. */
export function retentionPolicyOf(run: { readonly config: Pick<ResolvedConfig, 'retention' | 'destinations'> }, destination: string): RetentionPolicy {
  return { ...run.config.retention, ...definedOnly(run.config.destinations.find((d) => d.name === destination)?.retention) };
}

function definedOnly<T extends object>(value: T | undefined): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}
