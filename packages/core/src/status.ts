import { readFile } from 'node:fs/promises';
import { formatDuration } from '@stowage/alerts';
import { catalogOf, catalogWarnings, type CatalogEntry, type DamagedManifest, type ManifestCatalog } from './catalog.js';
import { lastDrill, type DrillResult } from './drill.js';
import type { Engine } from './engine.js';
import { BACKUP_TYPES, type BackupType } from './manifest.js';
import { durationMs } from './retention.js';
import { lastVerifyPath, type VerifyRecord } from './verify.js';

export interface Status {
  healthy: boolean;
  at: string;
  targets: { rpo: string; rto: string };
  /** Age of the newest full or incremental backup against the RPO target. */
  rpo: { newest: string | null; ageMs: number | null; ok: boolean };
  types: Record<BackupType, { newest: string | null; createdAt: string | null; ageMs: number | null }>;
  /** Per destination; `bytesByClass`: bytes of committed backups per storage class (`default`: the destination's own, not archived). */
  destinations: Array<{ name: string; newest: string | null; ageMs: number | null; reachable: boolean; error?: string; bytesByClass: Record<string, number> }>;
  /** The oldest backup whose whole chain some destination can read without a thaw (null: none). */
  oldestWithoutThaw: { id: string; createdAt: string } | null;
  lastVerify: VerifyRecord | null;
  lastDrill: (DrillResult & { withinRto: boolean }) | null;
  /** Why the installation is unhealthy (empty when healthy), then warnings. */
  problems: string[];
  warnings: string[];
}

/** One destination's committed backups, its damaged manifests, and the warnings its listing raised. */
export interface DestinationListing {
  name: string;
  entries: CatalogEntry[];
  damaged: DamagedManifest[];
  errors: string[];
}

/** Every destination's listing on its own (from the run's catalog, read in parallel), with each one's warnings. */
export function listEachDestination(
  engine: Pick<Engine, 'destinations' | 'warn'>,
  catalog: ManifestCatalog = catalogOf(engine),
): Promise<DestinationListing[]> {
  return Promise.all(
    engine.destinations.map(async (destination) => {
      const listing = await catalog.read([destination]);
      return { name: destination.name, entries: listing.entries, damaged: listing.damaged, errors: catalogWarnings(listing) };
    }),
  );
}

/**
 * `stowage status`: the newest committed backup of each type and its age against the RPO target,
 * per destination the newest replica (or why it cannot be listed), the last verify and the last
 * drill with its RTO against the target (from `listings` when the caller has them). Unhealthy when the RPO is breached, a destination is
 * unreachable or behind, the last verify found damage, or the last drill failed or took too long.
 * It only reads: the alert it evaluates is raised by `alertOnStatus`, which watchers call.
 */
export async function status(engine: Engine, listings?: readonly DestinationListing[]): Promise<Status> {
  const now = engine.now();
  const rpoMs = durationMs(engine.config.targets.rpo);
  const rtoMs = durationMs(engine.config.targets.rto);
  const problems: string[] = [];
  const warnings: string[] = [];
  const age = (createdAt: string) => now.getTime() - Date.parse(createdAt);

  const perDestination = (listings ?? (await listEachDestination(engine))).map(({ name, entries, errors }) => {
    const newest = entries.at(-1);
    return {
      name,
      newest: newest?.manifest.id ?? null,
      ageMs: newest ? age(newest.manifest.createdAt) : null,
      // A skipped unreadable manifest is a warning; only a failed listing makes a destination unreachable.
      reachable: !errors.some((message) => message.includes('could not be listed')),
      ...(errors.length ? { error: errors.join('; ') } : {}),
      bytesByClass: bytesByClass(name, entries),
      entries,
    };
  });
  const all = new Map(perDestination.flatMap((d) => d.entries.map((e) => [e.manifest.id, e] as const)));
  const byTime = [...all.values()].sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt));
  const types = Object.fromEntries(
    BACKUP_TYPES.map((type) => {
      const newest = byTime.filter((e) => e.manifest.type === type).at(-1);
      return [
        type,
        { newest: newest?.manifest.id ?? null, createdAt: newest?.manifest.createdAt ?? null, ageMs: newest ? age(newest.manifest.createdAt) : null },
      ];
    }),
  ) as Status['types'];

  for (const type of BACKUP_TYPES) {
    const newest = byTime.filter((e) => e.manifest.type === type).at(-1);
    for (const finding of newest?.manifest.anomalies ?? []) {
      (finding.severity === 'critical' ? problems : warnings).push(`${newest!.manifest.id} looks unusual: ${finding.reason}`);
    }
  }
  const oldest = oldestReadableWithoutThaw(byTime, perDestination);
  const point = byTime.filter((e) => e.manifest.type !== 'hot').at(-1);
  const rpo = {
    newest: point?.manifest.id ?? null,
    ageMs: point ? age(point.manifest.createdAt) : null,
    ok: point !== undefined && age(point.manifest.createdAt) <= rpoMs,
  };
  if (!point) problems.push('there is no full or incremental backup yet');
  else if (!rpo.ok)
    problems.push(`RPO breached: the newest backup ${point.manifest.id} is ${formatDuration(rpo.ageMs!)} old (target ${engine.config.targets.rpo})`);

  for (const d of perDestination) {
    if (!d.reachable) problems.push(`destination ${d.name} cannot be listed: ${d.error}`);
    else if (point && !d.entries.some((e) => e.manifest.id === point.manifest.id))
      problems.push(`destination ${d.name} does not hold the newest backup ${point.manifest.id}; run \`stowage sync\``);
  }

  const verifyText = await readFile(lastVerifyPath(engine), 'utf8').catch(() => undefined);
  const lastVerify = verifyText === undefined ? null : (JSON.parse(verifyText) as VerifyRecord);
  if (!lastVerify) warnings.push('no verify has run on this machine yet');
  else if (!lastVerify.ok) problems.push(`the last verify (${lastVerify.at}) found damage: ${lastVerify.problems.slice(0, 3).join('; ')}`);

  const drill = await lastDrill(engine);
  const lastDrillStatus = drill ? { ...drill, withinRto: drill.ok && drill.rtoMs <= rtoMs } : null;
  if (!drill) warnings.push('no restore drill has run on this machine yet; run `stowage drill`');
  else if (!drill.ok) problems.push(`the last drill (${drill.startedAt}, ${drill.backupId} from ${drill.destination}) failed: ${drill.problems.join('; ')}`);
  else if (drill.rtoMs > rtoMs)
    problems.push(`the last drill took ${formatDuration(drill.rtoMs)} to a usable database, over the RTO target ${engine.config.targets.rto}`);

  return {
    healthy: problems.length === 0,
    at: now.toISOString(),
    targets: engine.config.targets,
    rpo,
    types,
    destinations: perDestination.map(({ entries: _entries, ...d }) => d),
    oldestWithoutThaw: oldest ? { id: oldest.manifest.id, createdAt: oldest.manifest.createdAt } : null,
    lastVerify,
    lastDrill: lastDrillStatus,
    problems,
    warnings,
  };
}

/**
 * The alert side of `status()`, which only reads: raises `rpo-breached` while `evaluated` finds the
 * RPO breached, and resolves it once met. For the paths that watch the installation — the daemon
 * after each job, `stowage status --alert` — never for a page or a command that only looks.
 */
export async function alertOnStatus(engine: Pick<Engine, 'alerts' | 'config'>, evaluated: Pick<Status, 'rpo'>): Promise<void> {
  const { rpo } = evaluated;
  if (rpo.ok) return engine.alerts.resolve('rpo-breached');
  await engine.alerts.raise((a, at) =>
    a.rpoBreached({ ...at, newest: rpo.newest, age: rpo.ageMs === null ? 'never' : formatDuration(rpo.ageMs), target: engine.config.targets.rpo }),
  );
}

/** Bytes of the artifacts of `entries` at destination `name`, per storage class (`default` when not archived). */
function bytesByClass(name: string, entries: readonly CatalogEntry[]): Record<string, number> {
  const bytes: Record<string, number> = {};
  for (const entry of entries) {
    for (const artifact of entry.manifest.artifacts) {
      const storageClass = entry.storageClasses?.[name]?.[artifact.key] ?? 'default';
      bytes[storageClass] = (bytes[storageClass] ?? 0) + artifact.size;
    }
  }
  return bytes;
}

/** The oldest of `byTime` whose every link has each artifact out of any archive class at some destination. */
function oldestReadableWithoutThaw(
  byTime: readonly CatalogEntry[],
  listings: ReadonlyArray<{ name: string; entries: readonly CatalogEntry[] }>,
): CatalogEntry | undefined {
  const hotSomewhere = (id: string, key: string) =>
    listings.some((l) => l.entries.some((e) => e.manifest.id === id && e.storageClasses?.[l.name]?.[key] === undefined));
  const byId = new Map(byTime.map((e) => [e.manifest.id, e]));
  const hot = (entry: CatalogEntry): boolean => entry.manifest.artifacts.every((a) => hotSomewhere(entry.manifest.id, a.key));
  return byTime.find((entry) => {
    for (let link: CatalogEntry | undefined = entry, steps = 0; link && steps < 10_000; steps++) {
      if (!hot(link)) return false;
      if (link.manifest.parent === null) return true;
      link = byId.get(link.manifest.parent);
    }
    return false;
  });
}
