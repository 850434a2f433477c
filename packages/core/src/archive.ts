/*
 * Archive offload: moving old backups to a destination's archive storage class (tiering), and
 * thawing them again for a restore.
 *
 * Tiering (`runArchive`, `stowage archive run`): at each destination with an `archive` policy, the
 * backups of the policy's types older than `after` are moved in place — the adapter's
 * `setStorageClass`, a server-side copy onto the same key — then checked here, the one place that
 * decides: the copy's size and checksum as the destination reports them against the manifest's
 * (or, where it reports none the manifest records, against the original's just before the move).
 * What moves: the database image or delta and the file-set archive. What stays hot: the manifest
 * (listing and planning read it), the page-hash list and the file-set index (small, and read by
 * the next incremental). A chain moves as a unit, once its newest backup is past `after`, so a
 * restore of a hot incremental never waits for a thaw of its full (unless `splitChains`).
 * A crash between two moves leaves some artifacts archived and the rest hot: a restore thaws what
 * needs it, and the next run moves the rest.
 *
 * Thawing (`thawStates`, `requestThaws`, `waitForThaws`): per artifact of a chain, whether some
 * destination can serve it now (`readable`), or it waits for a thaw under way (`thawing`) or not
 * yet asked for (`archived`), asked of the destinations with archive classes (a HeadObject each).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isStowageError } from '@stowage/errors';
import { crashPoint, StorageError, StorageErrorCode, type LifecycleRule, type ObjectInfo, type ThawTier } from '@stowage/storage';
import { catalogOf, readCatalog, type CatalogEntry } from './catalog.js';
import { findBackup } from './find.js';
import { resolveChain } from './chain.js';
import type { ArchivePolicy } from './config.js';
import { selectDestinations, type Destination, type Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import type { Artifact } from './manifest.js';
import { logOperation } from './oplog.js';
import { durationMs } from './retention.js';
import { FOLDERS } from './layout.js';
import { formatDuration as formatAge } from '@stowage/alerts';

/** Artifact roles that move to an archive class; the rest stay hot. */
export const ARCHIVED_ROLES: ReadonlySet<Artifact['role']> = new Set(['database', 'delta', 'files']);

export interface ArchiveMove {
  destination: string;
  backupId: string;
  key: string;
  storageClass: string;
  bytes: number;
}

export interface ArchiveRunResult {
  dryRun: boolean;
  asOf: string;
  /** Artifacts moved (or, with `dryRun`, to be moved). */
  moved: ArchiveMove[];
  /** Backups past `after` that stay hot, and why (a newer backup of their chain is still young). */
  held: Array<{ destination: string; backupId: string; why: string }>;
  failures: Array<{ destination: string; backupId?: string; key?: string; code?: string; message: string }>;
}

/** Moves the backups each destination's `archive` policy says are old enough to its archive class. */
export async function runArchive(engine: Engine, options: { dryRun?: boolean; asOf?: Date } = {}): Promise<ArchiveRunResult> {
  const started = performance.now();
  const asOf = options.asOf ?? engine.now();
  const result: ArchiveRunResult = { dryRun: options.dryRun ?? false, asOf: asOf.toISOString(), moved: [], held: [], failures: [] };
  const policies = engine.destinations.flatMap((destination) => {
    const policy = engine.config.destinations.find((d) => d.name === destination.name)?.archive;
    return policy ? [{ destination, policy }] : [];
  });
  if (policies.length === 0) {
    throw new CoreError(
      CoreErrorCode.ConfigInvalid,
      'no destination has an archive policy; add e.g. "archive": { "after": "30d", "storageClass": "DEEP_ARCHIVE" } to one in the config',
    );
  }
  const catalog = await readCatalog(policies.map((p) => p.destination));
  for (const { destination, message } of catalog.unlisted) result.failures.push({ destination, message: `could not be listed: ${message}` });
  for (const { destination, policy } of policies) {
    if (catalog.unlisted.some((u) => u.destination === destination.name)) continue;
    const unusable = archiveClassProblem(destination, policy.storageClass);
    if (unusable) {
      result.failures.push({ destination: destination.name, message: unusable });
      continue;
    }
    const here = catalog.entries.filter((e) => e.destinations.includes(destination.name));
    for (const entry of dueForArchive(here, policy, asOf, (held) => result.held.push({ destination: destination.name, ...held }))) {
      for (const artifact of entry.manifest.artifacts.filter((a) => ARCHIVED_ROLES.has(a.role))) {
        if (entry.storageClasses?.[destination.name]?.[artifact.key] === policy.storageClass) continue;
        const move = { destination: destination.name, backupId: entry.manifest.id, key: artifact.key, storageClass: policy.storageClass, bytes: artifact.size };
        try {
          if (!result.dryRun) await moveArtifact(destination, artifact, policy.storageClass);
          result.moved.push(move);
        } catch (error) {
          result.failures.push({
            destination: destination.name,
            backupId: entry.manifest.id,
            key: artifact.key,
            ...(isStowageError(error) ? { code: error.code } : {}),
            message: (error as Error).message,
          });
        }
      }
    }
  }
  if (!result.dryRun) {
    await logOperation(engine.logDir, 'backup.log', {
      operation: 'archive',
      outcome: result.failures.length ? 'failed' : 'ok',
      durationMs: performance.now() - started,
      bytes: result.moved.reduce((sum, m) => sum + m.bytes, 0),
      detail: `moved=${result.moved.map((m) => `${m.destination}:${m.key}>${m.storageClass}`).join(',') || '-'}${result.failures.length ? ` failed=${result.failures.map((f) => `${f.destination}:${f.key ?? '-'}`).join(',')}` : ''}`,
    });
  }
  return result;
}

const DAY_MS = 86_400_000;

/**
 * The bucket lifecycle rules equivalent to `policy` (`stowage destinations lifecycle`): per backup
 * type, its folder moves to the archive class after `after`, rounded up to whole days. A rule ages
 * every object under the folder on its own, manifests included: unlike `runArchive`, it neither
 * keeps a chain together nor keeps the small files hot.
 */
export function lifecycleRulesOf(policy: ArchivePolicy): LifecycleRule[] {
  const days = Math.max(1, Math.ceil(durationMs(policy.after) / DAY_MS));
  return policy.types.map((type) => ({ prefix: `${FOLDERS[type]}/`, days, storageClass: policy.storageClass }));
}

/** Why `destination` cannot move objects to `storageClass`, or undefined when it can. */
function archiveClassProblem(destination: Destination, storageClass: string): string | undefined {
  const { archiveClasses = [] } = destination.adapter.capabilities;
  if (!destination.adapter.setStorageClass || archiveClasses.length === 0)
    return `${destination.name} (${destination.adapter.description}) has no archive storage classes`;
  if (!archiveClasses.includes(storageClass)) return `${destination.name} has no archive class '${storageClass}'; it offers ${archiveClasses.join(', ')}`;
  return undefined;
}

/**
 * The backups at one destination that `policy` moves as of `asOf`, oldest first. A chain (a full
 * or hot backup and the incrementals that replay it) moves when its newest backup is past `after`;
 * with `splitChains` each backup goes by its own age. Backups past `after` held back by a younger
 * link are reported through `onHeld`.
 */
export function dueForArchive(
  entries: readonly CatalogEntry[],
  policy: ArchivePolicy,
  asOf: Date,
  onHeld: (held: { backupId: string; why: string }) => void = () => {},
): CatalogEntry[] {
  const after = durationMs(policy.after);
  const age = (e: CatalogEntry) => asOf.getTime() - Date.parse(e.manifest.createdAt);
  const byId = new Map(entries.map((e) => [e.manifest.id, e]));
  const rootOf = (entry: CatalogEntry): string => {
    let link = entry;
    for (let steps = 0; link.manifest.parent !== null && byId.has(link.manifest.parent) && steps < 10_000; steps++) link = byId.get(link.manifest.parent)!;
    return link.manifest.id;
  };
  const youngestOfChain = new Map<string, CatalogEntry>();
  for (const entry of entries) {
    const root = rootOf(entry);
    const youngest = youngestOfChain.get(root);
    if (!youngest || age(entry) < age(youngest)) youngestOfChain.set(root, entry);
  }
  const due: CatalogEntry[] = [];
  for (const entry of entries) {
    if (!policy.types.includes(entry.manifest.type) || age(entry) < after) continue;
    const youngest = youngestOfChain.get(rootOf(entry))!;
    if (!policy.splitChains && age(youngest) < after) {
      onHeld({
        backupId: entry.manifest.id,
        why: `${youngest.manifest.id} replays it and is younger than ${policy.after}: the chain moves as a unit (splitChains: true moves it now)`,
      });
      continue;
    }
    due.push(entry);
  }
  return due.sort((a, b) => a.manifest.seq - b.manifest.seq);
}

/**
 * `setStorageClass`, then the copy as the destination reports it checked against the manifest
 * (adapters only report: this decides). A copy is accepted when its size is the manifest's and a
 * checksum the destination reports matches: one the manifest records, else the same checksum or
 * single-part ETag (the bytes' MD5) as the original had in a `stat` just before. A copy that
 * neither can vouch for is refused, as is an original that already differs from its manifest.
 * @throws StorageError `checksum_mismatch`, naming the destination, key, class and what differs.
 */
async function moveArtifact(destination: Destination, artifact: Artifact, storageClass: string): Promise<ObjectInfo> {
  const refuse = (what: string) =>
    new StorageError(StorageErrorCode.ChecksumMismatch, `${artifact.key} at ${destination.name} ${what}; \`stowage sync\` replaces it from a good copy`, {
      context: { destination: destination.name, key: artifact.key, storageClass },
    });
  const before = await destination.adapter.stat(artifact.key);
  if (before && serverChecksumMatch(before, artifact) === false) throw refuse(`was not moved to ${storageClass}: its checksum differs from its manifest's`);
  const after = await destination.adapter.setStorageClass!(artifact.key, storageClass);
  crashPoint('archive.artifact-copied');
  const problem = copyProblem(after, artifact, before);
  if (problem) throw refuse(`does not match its manifest after it was moved to ${storageClass} (${problem})`);
  return after;
}

/** What is wrong with the copy `after` of `artifact` (once `before`), or undefined when it is vouched for. */
function copyProblem(after: ObjectInfo, artifact: Artifact, before: ObjectInfo | undefined): string | undefined {
  if (after.size !== artifact.size) return `${after.size} bytes, ${artifact.size} expected`;
  const recorded = serverChecksumMatch(after, artifact);
  if (recorded !== undefined) return recorded ? undefined : 'checksum differs';
  const was = before?.checksums ?? {};
  const algorithm = (['sha256', 'crc64ecma', 'crc64nvme'] as const).find((name) => was[name] !== undefined);
  if (algorithm)
    return after.checksums[algorithm] === was[algorithm]
      ? undefined
      : `${algorithm} ${after.checksums[algorithm] ?? 'not reported'}, the original's ${was[algorithm]}`;
  if (before?.etag !== undefined && !before.etag.includes('-'))
    return after.etag === before.etag ? undefined : `ETag ${after.etag ?? 'not reported'}, the original's ${before.etag}`;
  return 'the destination reports no checksum to check the copy by';
}

/** Whether a checksum the destination reports matches the manifest's; undefined when it reports none the manifest records. */
export function serverChecksumMatch(info: ObjectInfo, artifact: Pick<Artifact, 'sha256' | 'crc64ecma' | 'crc64nvme'>): boolean | undefined {
  if (info.checksums.sha256) return info.checksums.sha256 === artifact.sha256;
  if (info.checksums.crc64ecma && artifact.crc64ecma) return info.checksums.crc64ecma === artifact.crc64ecma;
  if (info.checksums.crc64nvme && artifact.crc64nvme) return info.checksums.crc64nvme === artifact.crc64nvme;
  return undefined;
}

/** Where one artifact of a chain stands: readable somewhere now, or archived / thawing at `destination`. */
export interface ArtifactThawState {
  backupId: string;
  key: string;
  bytes: number;
  /** The destination that serves it (readable), or where it is being or is to be thawed. */
  destination: string;
  /** Its archive class there, when it is in one. */
  storageClass?: string;
  state: 'readable' | 'thawing' | 'archived';
  /** Until when a thawed copy stays readable. */
  thawExpires?: string;
}

/**
 * Each artifact `roles` of `chain` needs, and whether it can be read now from one of
 * `destinations` (in order). A destination without archive classes serves it without a request;
 * at the others a `stat` tells, holder after holder, until one can serve it.
 */
export async function thawStates(
  chain: readonly CatalogEntry[],
  destinations: readonly Destination[],
  roles: ReadonlySet<Artifact['role']> = ARCHIVED_ROLES,
): Promise<ArtifactThawState[]> {
  const states: ArtifactThawState[] = [];
  for (const link of chain) {
    const holders = destinations.filter((d) => link.destinations.includes(d.name));
    for (const artifact of link.manifest.artifacts.filter((a) => roles.has(a.role))) {
      const base = { backupId: link.manifest.id, key: artifact.key, bytes: artifact.size };
      let best: ArtifactThawState | undefined;
      for (const destination of holders) {
        if (!hasArchiveClasses(destination)) {
          best = { ...base, destination: destination.name, state: 'readable' };
          break;
        }
        const info = await destination.adapter.stat(artifact.key);
        if (!info) continue; // missing here: a restore reports it, falling back to the next holder
        const state = info.archive?.state ?? 'readable';
        const here: ArtifactThawState = {
          ...base,
          destination: destination.name,
          ...(info.storageClass && { storageClass: info.storageClass }),
          state,
          ...(info.archive?.thawExpires && { thawExpires: info.archive.thawExpires.toISOString() }),
        };
        if (state === 'readable') {
          best = here;
          break;
        }
        if (!best || (best.state === 'archived' && state === 'thawing')) best = here;
      }
      states.push(best ?? { ...base, destination: holders[0]?.name ?? '-', state: 'readable' });
    }
  }
  return states;
}

const hasArchiveClasses = (destination: Destination) => (destination.adapter.capabilities.archiveClasses?.length ?? 0) > 0;

/** Requests a thaw of every `archived` artifact of `states` where it is archived; returns the states after. */
export async function requestThaws(
  engine: Pick<Engine, 'destinations'>,
  states: readonly ArtifactThawState[],
  options: { tier: ThawTier; days: number },
): Promise<ArtifactThawState[]> {
  const after: ArtifactThawState[] = [];
  for (const state of states) {
    if (state.state !== 'archived') {
      after.push(state);
      continue;
    }
    const destination = engine.destinations.find((d) => d.name === state.destination)!;
    if (!destination.adapter.requestThaw)
      throw new CoreError(CoreErrorCode.ConfigInvalid, `${destination.name} cannot thaw objects (its adapter has no requestThaw)`);
    const info = await destination.adapter.requestThaw(state.key, options);
    crashPoint('thaw.requested');
    after.push({
      ...state,
      state: info.archive?.state ?? 'readable',
      ...(info.archive?.thawExpires && { thawExpires: info.archive.thawExpires.toISOString() }),
    });
  }
  return after;
}

/**
 * Polls until every artifact of `chain` is readable, reporting progress (`thaw`: readable of all),
 * every `pollMs`; gives up after `timeoutMs` (`stowage.restore.thaw_pending`).
 */
export async function waitForThaws(
  engine: Pick<Engine, 'progress' | 'warn'>,
  chain: readonly CatalogEntry[],
  destinations: readonly Destination[],
  roles: ReadonlySet<Artifact['role']>,
  options: { pollMs: number; timeoutMs?: number },
): Promise<number> {
  const started = performance.now();
  let said = -1;
  for (;;) {
    const states = await thawStates(chain, destinations, roles);
    const readable = states.filter((s) => s.state === 'readable').length;
    engine.progress({ phase: 'thaw', done: readable, total: states.length });
    if (readable !== said)
      engine.warn(`thaw of ${chain.at(-1)!.manifest.id}: ${readable} of ${states.length} artifact(s) readable after ${formatAge(performance.now() - started)}`);
    said = readable;
    if (readable === states.length) return performance.now() - started;
    if (options.timeoutMs !== undefined && performance.now() - started >= options.timeoutMs) {
      throw new CoreError(
        CoreErrorCode.ThawPending,
        `${states.length - readable} artifact(s) of ${chain.at(-1)!.manifest.id} are still thawing after ${formatAge(performance.now() - started)}; run the same command again later`,
        {
          context: { pending: states.filter((s) => s.state !== 'readable') },
        },
      );
    }
    await sleep(options.pollMs);
  }
}

/** The slowest thaw per tier of the artifacts in `states` that still need one, from the destinations' documented times. */
export function expectedThawTimes(engine: Pick<Engine, 'destinations'>, states: readonly ArtifactThawState[]): Partial<Record<ThawTier, number>> {
  const times: Partial<Record<ThawTier, number>> = {};
  const tiers: ThawTier[] = ['expedited', 'standard', 'bulk'];
  for (const tier of tiers) {
    let worst = 0;
    for (const state of states.filter((s) => s.state !== 'readable')) {
      const facts = engine.destinations.find((d) => d.name === state.destination)?.adapter.capabilities.archiveClassFacts?.[state.storageClass ?? ''];
      const ms = facts?.thawMs[tier];
      if (facts && ms === undefined) {
        worst = Number.NaN; // a class that does not offer this tier
        break;
      }
      worst = Math.max(worst, ms ?? 0);
    }
    if (!Number.isNaN(worst)) times[tier] = worst;
  }
  return times;
}

/** `expedited ≤ 5m, standard ≤ 5h, bulk ≤ 12h` for a message. */
export function describeThawTimes(times: Partial<Record<ThawTier, number>>): string {
  const parts = Object.entries(times).map(([tier, ms]) => `${tier} ≤ ${formatAge(ms)}`);
  return parts.length ? parts.join(', ') : 'unknown';
}

/** One line per artifact that needs a thaw: `inc_backup_… incremental/…zst at s3 (DEEP_ARCHIVE, archived)`. */
export function describePending(states: readonly ArtifactThawState[]): string {
  return states
    .filter((s) => s.state !== 'readable')
    .map((s) => `${s.key} at ${s.destination} (${s.storageClass ?? 'archive class'}, ${s.state})`)
    .join('; ');
}

/** What a command that reads archived artifacts does about them (`--thaw [--tier] [--days] [--wait]`). */
export interface ThawRequest {
  tier: ThawTier;
  /** How long thawed copies stay readable. */
  days: number;
  /** Wait (polling) until every thaw finished, then go on; else stop once they were requested. */
  wait: boolean;
  /** Poll interval while waiting (default 60 s). */
  pollMs?: number;
  /** Give up waiting after this long (default: wait as long as it takes). */
  timeoutMs?: number;
}

/**
 * Makes sure every artifact `roles` of `chain` needs can be read from `destinations`: without
 * `thaw`, fails (`stowage.restore.thaw_needed`) naming the archived ones, the expected thaw time per
 * tier and the command to run (`command`, to which `--thaw …` is added); with it, requests the
 * thaws and, with `wait`, waits for them (else fails with `stowage.restore.thaw_pending` once they
 * are requested). Returns the time spent waiting for thaws (0 when none was needed). Costs a
 * `stat` per artifact at destinations with archive classes, none elsewhere.
 */
export async function ensureThawed(
  engine: Pick<Engine, 'destinations' | 'progress' | 'warn'>,
  chain: readonly CatalogEntry[],
  destinations: readonly Destination[],
  options: { roles?: ReadonlySet<Artifact['role']>; thaw?: ThawRequest; command: string },
): Promise<number> {
  const roles = options.roles ?? ARCHIVED_ROLES;
  if (!destinations.some(hasArchiveClasses)) return 0;
  const states = await thawStates(chain, destinations, roles);
  const pending = states.filter((s) => s.state !== 'readable');
  if (pending.length === 0) return 0;
  const id = chain.at(-1)!.manifest.id;
  const times = describeThawTimes(expectedThawTimes(engine, pending));
  if (!options.thaw) {
    throw new CoreError(
      CoreErrorCode.ThawNeeded,
      `${id} needs ${pending.length} archived artifact(s) thawed before it can be read: ${describePending(pending)}. ` +
        `Expected thaw time: ${times}. Run: ${options.command} --thaw --tier standard --wait`,
      { context: { backupId: id, pending, expectedThawMs: expectedThawTimes(engine, pending) } },
    );
  }
  const started = performance.now();
  const after = await requestThaws(engine, pending, options.thaw);
  const stillPending = after.filter((s) => s.state !== 'readable');
  if (stillPending.length === 0) return performance.now() - started;
  if (!options.thaw.wait) {
    throw new CoreError(
      CoreErrorCode.ThawPending,
      `thaw requested (${options.thaw.tier}, readable for ${options.thaw.days} d) for ${stillPending.length} artifact(s) of ${id}: ${describePending(stillPending)}; ` +
        `expected: ${describeThawTimes({ [options.thaw.tier]: expectedThawTimes(engine, stillPending)[options.thaw.tier] ?? Number.NaN })}. ` +
        `\`stowage thaw status ${id}\` shows progress; run ${options.command} --thaw --wait to restore once they are done`,
      { context: { backupId: id, pending: stillPending } },
    );
  }
  engine.warn(`waiting for ${stillPending.length} thaw(s) of ${id} (${options.thaw.tier}: ${times})`);
  return waitForThaws(engine, chain, destinations, roles, {
    pollMs: options.thaw.pollMs ?? 60_000,
    ...(options.thaw.timeoutMs !== undefined && { timeoutMs: options.thaw.timeoutMs }),
  });
}

/**
 * Requests a thaw of every archived copy of `entries`' artifacts at `destinations` (each copy is
 * read by `verify --deep`), then, with `wait`, polls until all are readable. Returns the time spent.
 */
export async function thawEveryCopy(
  engine: Pick<Engine, 'progress' | 'warn'>,
  entries: readonly CatalogEntry[],
  destinations: readonly Destination[],
  thaw: ThawRequest,
): Promise<number> {
  const started = performance.now();
  const copies = entries.flatMap((entry) =>
    destinations.flatMap((destination) =>
      entry.manifest.artifacts
        .filter((a) => entry.storageClasses?.[destination.name]?.[a.key] !== undefined)
        .map((artifact) => ({ destination, key: artifact.key })),
    ),
  );
  const pending = new Set<(typeof copies)[number]>();
  for (const copy of copies) {
    const info = await copy.destination.adapter.stat(copy.key);
    if (!info?.archive || info.archive.state === 'readable') continue;
    const after = info.archive.state === 'archived' ? await copy.destination.adapter.requestThaw!(copy.key, thaw) : info;
    if (after.archive && after.archive.state !== 'readable') pending.add(copy);
  }
  if (!thaw.wait || pending.size === 0) return performance.now() - started;
  engine.warn(`waiting for ${pending.size} thaw(s) before reading them back`);
  for (const total = pending.size; ; await sleep(thaw.pollMs ?? 60_000)) {
    for (const copy of [...pending]) if ((await copy.destination.adapter.stat(copy.key))?.archive?.state !== 'thawing') pending.delete(copy);
    engine.progress({ phase: 'thaw', done: total - pending.size, total });
    if (pending.size === 0) return performance.now() - started;
    if (thaw.timeoutMs !== undefined && performance.now() - started >= thaw.timeoutMs) {
      throw new CoreError(
        CoreErrorCode.ThawPending,
        `${pending.size} archived copies are still thawing after ${formatAge(performance.now() - started)}; run the same command again later`,
      );
    }
  }
}

export interface ThawStatus {
  backupId: string;
  /** The chain a restore replays, full first. */
  chain: string[];
  artifacts: ArtifactThawState[];
  /** The slowest expected thaw per tier of the artifacts not readable yet. */
  expectedThawMs: Partial<Record<ThawTier, number>>;
}

/** `stowage thaw status`: per artifact a restore of `reference` reads, archived, thawing or readable. */
export async function thawStatus(engine: Engine, reference: string, from?: string): Promise<ThawStatus> {
  const destinations = selectDestinations(engine, from);
  const catalog = catalogOf(engine);
  const entry = await findBackup(engine, catalog, reference, destinations);
  const chain = await resolveChain(catalog, entry, destinations);
  const artifacts = await thawStates(chain, destinations);
  return { backupId: entry.manifest.id, chain: chain.map((link) => link.manifest.id), artifacts, expectedThawMs: expectedThawTimes(engine, artifacts) };
}
