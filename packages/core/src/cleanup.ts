import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { listBackups, type CatalogEntry } from './catalog.js';
import type { Destination, Engine } from './engine.js';
import { FOLDERS, manifestKey, MANIFEST_SUFFIX } from './layout.js';
import { BACKUP_TYPES } from './manifest.js';
import { logOperation } from './oplog.js';
import { planRetention, type RetentionPolicy } from './retention.js';

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
  removed: CleanupItem[];
  kept: Array<{ destination: string; id: string; why: string }>;
  bytesFreed: number;
  /** Destinations that could not be cleaned, with the reason. */
  failures: Array<{ destination: string; message: string }>;
}

/**
 * Applies retention at every destination (with its overrides). A backup goes manifest first,
 * artifacts after, and newest first within a chain, so a crash mid-cleanup never leaves a
 * committed backup with missing parts or a committed incremental without its parent.
 * Also removes orphans: artifacts without a manifest older than an hour (crashed backups) and
 * stale staging files.
 */
export async function cleanup(engine: Engine, options: { dryRun?: boolean; asOf?: Date } = {}): Promise<CleanupResult> {
  const started = performance.now();
  const dryRun = options.dryRun ?? false;
  const asOf = options.asOf ?? engine.now();
  const result: CleanupResult = { dryRun, asOf: asOf.toISOString(), removed: [], kept: [], bytesFreed: 0, failures: [] };
  for (const destination of engine.destinations) {
    try {
      await cleanDestination(engine, destination, asOf, dryRun, result);
    } catch (error) {
      result.failures.push({ destination: destination.name, message: (error as Error).message });
    }
  }
  if (!dryRun) await removeStaleStaging(engine, result);
  result.bytesFreed = result.removed.reduce((sum, item) => sum + item.bytes, 0);
  if (!dryRun) {
    if (result.failures.length) await engine.alerts.raise((a, at) => a.cleanupFailed({ ...at, error: result.failures.map((f) => `${f.destination}: ${f.message}`).join('; ') }));
    else await engine.alerts.resolve('cleanup-failed');
    await logOperation(engine.logDir, 'backup.log', {
      operation: 'cleanup',
      outcome: result.failures.length ? 'failed' : 'ok',
      durationMs: performance.now() - started,
      bytes: result.bytesFreed,
      detail: `removed=${result.removed.map((r) => `${r.destination}:${r.what}`).join(',') || '-'}${result.failures.length ? ` failed=${result.failures.map((f) => f.destination).join(',')}` : ''}`,
    });
  }
  return result;
}

async function cleanDestination(engine: Engine, destination: Destination, asOf: Date, dryRun: boolean, result: CleanupResult): Promise<void> {
  const entries = await listBackups(engine, [destination]);
  const policy: RetentionPolicy = { ...engine.config.retention, ...definedOnly(engine.config.destinations.find((d) => d.name === destination.name)?.retention) };
  const decisions = planRetention(entries, policy, asOf);
  for (const decision of decisions.filter((d) => d.keep)) result.kept.push({ destination: destination.name, id: decision.entry.manifest.id, why: decision.why });
  // Newest first: an incremental goes before the backup it replays.
  for (const decision of decisions.filter((d) => !d.keep).reverse()) {
    const { manifest } = decision.entry;
    result.removed.push({ destination: destination.name, what: manifest.id, kind: 'backup', bytes: backupBytes(decision.entry), why: decision.why });
    if (dryRun) continue;
    await destination.adapter.delete([manifestKey(manifest.type, manifest.id)]);
    await destination.adapter.delete(manifest.artifacts.map((a) => a.key));
  }
  const committed = new Set(entries.map((e) => e.manifest.id));
  const doomed = new Set(decisions.filter((d) => !d.keep).map((d) => d.entry.manifest.id));
  for (const type of BACKUP_TYPES) {
    const orphans = [];
    for await (const info of destination.adapter.list(`${FOLDERS[type]}/`)) {
      const id = info.key.slice(info.key.lastIndexOf('/') + 1).split('.')[0] ?? '';
      if (committed.has(id) || doomed.has(id) || info.key.endsWith(MANIFEST_SUFFIX)) continue;
      if (Date.now() - info.modified.getTime() < ORPHAN_GRACE_MS) continue; // real time, whatever --as-of says
      orphans.push(info);
      result.removed.push({ destination: destination.name, what: info.key, kind: 'orphan', bytes: info.size, why: 'artifact without a manifest (a crashed backup)' });
    }
    if (!dryRun && orphans.length) await destination.adapter.delete(orphans.map((o) => o.key));
  }
}

async function removeStaleStaging(engine: Engine, result: CleanupResult): Promise<void> {
  const names = await readdir(engine.stagingDir).catch(() => [] as string[]);
  for (const name of names) {
    const path = join(engine.stagingDir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info || Date.now() - info.mtimeMs < ORPHAN_GRACE_MS) continue;
    await rm(path, { force: true });
    result.removed.push({ destination: 'staging', what: path, kind: 'orphan', bytes: info.size, why: 'staging file of a crashed backup' });
  }
}

const backupBytes = (entry: CatalogEntry) => entry.manifest.artifacts.reduce((sum, a) => sum + a.size, 0);

function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}
