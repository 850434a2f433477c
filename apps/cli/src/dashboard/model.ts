/*
 * What the status page shows, gathered in one pass from what the other commands already compute:
 * `status()` (health, RPO, last verify and drill), the catalog read per destination (each
 * destination's own manifests say how its replica was verified), the last verify's per-replica
 * results, the drill history, the firing alerts and the audit log (runs, including failed ones,
 * which leave no manifest). It reads only: nothing here writes to a destination.
 */
import {
  byRecency,
  drillHistory,
  durationMs,
  listEachDestination,
  planRetention,
  readAuditRecords,
  retentionPolicyOf,
  status,
  TOOL_VERSION,
  type AuditRecord,
  type CatalogEntry,
  type Destination,
  type DestinationListing,
  type DrillResult,
  type Engine,
  type Status,
  type ReplicaVerification,
} from '@stowage/core';
import { StorageErrorCode } from '@stowage/storage';
import { backupSummaries, type BackupSummary } from '../commands.js';

/** Storage classes whose objects must be thawed before they can be read (S3 and OSS). */
const ARCHIVE_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE', 'Archive', 'ColdArchive', 'DeepColdArchive']);
/** How the S3 and OSS adapters say an object is in an archive class (readable only after a thaw). */

/**
 * A replica's state in the matrix: `verified` (checksums confirmed: by the last verify, else when it
 * was committed), `unverified` (committed, no confirmation recorded), `damaged` (the last verify
 * found it bad, or its manifest there cannot be read), `archived` (in an archive storage class:
 * held, readable after a thaw), `missing` (not there but within that destination's retention:
 * `sync` copies it) or `pruned` (past that destination's retention: removed there on purpose).
 */
export type ReplicaState = 'verified' | 'unverified' | 'damaged' | 'archived' | 'missing' | 'pruned';

export interface ReplicaCell {
  backupId: string;
  destination: string;
  state: ReplicaState;
  /** `server-sha256`, `server-crc64ecma`, `sha256-readback` (or several joined by `+`). */
  verifiedBy?: string;
  verifiedAt?: string;
  problem?: string;
}

export interface DashboardBackup extends BackupSummary {
  /** Size anomalies found when it was taken (see `manifest.anomalies`). */
  anomalies: string[];
}

export interface DestinationHealth {
  name: string;
  /** The archive storage class the destination writes to, if any. */
  archiveClass: string | null;
  /** The newest full or incremental backup whose replica here is verified, its age, and whether that meets the RPO target. */
  verifiedRpo: { backupId: string | null; ageMs: number | null; ok: boolean };
}

/** One backup run as the audit log recorded it (failed runs included). */
export interface BackupRun {
  time: string;
  type: string;
  backupId: string | null;
  outcome: string;
  durationMs: number;
  bytes: number | null;
  detail: string | null;
}

/** Everything on the page; `stowage report --json` and `/api/dashboard` return exactly this. */
export interface Dashboard {
  generatedAt: string;
  tool: string;
  /** The timeline and size chart cover this many days back from `generatedAt`. */
  days: number;
  status: Status;
  firing: Array<{ key: string; title: string; since: string }>;
  destinations: DestinationHealth[];
  /** Every committed backup, oldest first. */
  backups: DashboardBackup[];
  /** backup × destination, in the order of `backups` then of the configured destinations. */
  replicas: ReplicaCell[];
  /** Backup runs of the last `days` days, oldest first. */
  runs: BackupRun[];
  drills: Array<DrillResult & { withinRto: boolean }>;
  /** The newest audit records, newest first. */
  audit: AuditRecord[];
}

export interface DashboardOptions {
  days?: number;
  auditRecords?: number;
}

export async function buildDashboard(engine: Engine, options: DashboardOptions = {}): Promise<Dashboard> {
  const days = options.days ?? 30;
  const now = engine.now();
  const listings = await listEachDestination(engine);
  const [s, firing, drills, audit] = await Promise.all([
    status(engine, listings),
    engine.alerts.firing(),
    drillHistory(engine),
    readAuditRecords(engine.logDir),
  ]);
  const perDestination = listings.map((l) => l.entries);
  const unreadable = listings.map((l) => new Map(l.damaged.map((d) => [d.id, d])));
  const backups = mergeListings(engine.destinations, perDestination);
  const lastVerified = new Map((s.lastVerify?.replicas ?? []).map((r) => [`${r.backupId}\u0000${r.destination}`, r]));

  // One pass over backup × destination: each cell from what is already in memory (maps by id).
  const columns = engine.destinations.map((destination, index) => {
    const storageClass = engine.config.destinations.find((d) => d.name === destination.name)?.options?.storageClass;
    return {
      name: destination.name,
      held: new Map(perDestination[index]!.map((e) => [e.manifest.id, e])),
      unreadable: unreadable[index]!,
      kept: new Set(
        planRetention(backups, retentionPolicyOf(engine, destination.name), now)
          .filter((d) => d.keep)
          .map((d) => d.entry.manifest.id),
      ),
      archiveClass: typeof storageClass === 'string' && ARCHIVE_CLASSES.has(storageClass) ? storageClass : null,
      newestVerified: undefined as CatalogEntry | undefined,
    };
  });
  const replicas: ReplicaCell[] = [];
  for (const entry of backups) {
    const id = entry.manifest.id;
    for (const column of columns) {
      const cell = replicaCell(
        id,
        column.name,
        column.held.get(id),
        column.unreadable.get(id),
        column.kept.has(id),
        column.archiveClass,
        lastVerified.get(`${id}\u0000${column.name}`),
        s.lastVerify?.at,
      );
      replicas.push(cell);
      if (entry.manifest.type !== 'hot' && cell.verifiedAt) column.newestVerified = entry;
    }
  }
  const rpoMs = durationMs(engine.config.targets.rpo);
  const destinations: DestinationHealth[] = columns.map(({ name, archiveClass, newestVerified }) => {
    const ageMs = newestVerified ? now.getTime() - Date.parse(newestVerified.manifest.createdAt) : null;
    return { name, archiveClass, verifiedRpo: { backupId: newestVerified?.manifest.id ?? null, ageMs, ok: ageMs !== null && ageMs <= rpoMs } };
  });
  const summaries = backupSummaries(backups);

  const since = now.getTime() - days * 86_400_000;
  const rtoMs = durationMs(engine.config.targets.rto);
  return {
    generatedAt: now.toISOString(),
    tool: TOOL_VERSION,
    days,
    status: s,
    firing: firing.map((a) => ({ key: a.key, title: a.title, since: a.since.toISOString() })),
    destinations,
    backups: backups.map((e, i) => ({
      ...summaries[i]!,
      anomalies: (e.manifest.anomalies ?? []).map((a) => a.reason),
    })),
    replicas,
    runs: audit.filter((r) => r.operation.startsWith('backup-') && Date.parse(r.time) >= since).map(toRun),
    drills: drills.map((d) => ({ ...d, withinRto: d.ok && d.rtoMs <= rtoMs })),
    audit: audit.slice(-(options.auditRecords ?? 50)).reverse(),
  };
}

/** One cell of the matrix (see `ReplicaState`): what the destination's own manifest, its listing and the last verify say. */
function replicaCell(
  backupId: string,
  destination: string,
  own: CatalogEntry | undefined,
  unreadable: DestinationListing['damaged'][number] | undefined,
  kept: boolean,
  archiveClass: string | null,
  checked: ReplicaVerification | undefined,
  verifiedAt: string | undefined,
): ReplicaCell {
  const at = { backupId, destination };
  if (unreadable) return { ...at, state: unreadable.code === StorageErrorCode.ObjectArchived ? 'archived' : 'damaged', problem: unreadable.problem };
  if (!own) return { ...at, state: kept ? 'missing' : 'pruned' };
  if (checked && !checked.ok) return { ...at, state: 'damaged', ...(checked.problem ? { problem: checked.problem } : {}) };
  const state = archiveClass ? 'archived' : 'verified';
  if (checked?.verifiedBy && verifiedAt) return { ...at, state, verifiedBy: checked.verifiedBy, verifiedAt };
  const recorded = own.manifest.replicas[destination];
  if (recorded) return { ...at, state, verifiedBy: recorded.verifiedBy, verifiedAt: recorded.verifiedAt };
  return { ...at, state: 'unverified' };
}

/** The catalog across `destinations`, from their listings (`perDestination`, in the same order; no second read). */
function mergeListings(destinations: readonly Destination[], perDestination: CatalogEntry[][]): CatalogEntry[] {
  const byId = new Map<string, CatalogEntry>();
  perDestination.forEach((entries, index) => {
    for (const entry of entries) {
      const merged = byId.get(entry.manifest.id) ?? { manifest: entry.manifest, destinations: [] };
      merged.destinations.push(destinations[index]!.name);
      byId.set(entry.manifest.id, merged);
    }
  });
  return [...byId.values()].sort(byRecency);
}

function toRun(record: AuditRecord): BackupRun {
  return {
    time: record.time,
    type: record.operation.slice('backup-'.length),
    backupId: record.backupId ?? null,
    outcome: record.outcome,
    durationMs: record.durationMs,
    bytes: record.bytes ?? null,
    detail: record.detail ?? null,
  };
}
