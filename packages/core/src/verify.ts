import { isStowageError } from '@stowage/errors';
import { StorageErrorCode } from '@stowage/storage';
import { thawEveryCopy, type ThawRequest } from './archive.js';
import { catalogOf, type Catalog, type CatalogEntry, type DamagedManifest } from './catalog.js';
import { findBackup } from './find.js';
import { selectDestinations, type Destination, type Engine } from './engine.js';
import { describeVanished, readHistory, vanishedBackups, type BackupHistory } from './history.js';
import { BACKUP_TYPES } from './manifest.js';
import { logOperation } from './oplog.js';
import { writePrivateAtomic } from './private-fs.js';
import { join } from 'node:path';
import { confirmStored, type VerifiedBy } from './replica.js';
import { FOLDERS, idFromReference, manifestKey, typeOfId } from './layout.js';
import { chainIn, mixedKeyProblem } from './key-match.js';
import type { StateFolder } from './config.js';

export interface ArtifactCheck {
  destination: string;
  key: string;
  ok: boolean;
  /** How the artifact was confirmed, when it was. */
  verifiedBy?: VerifiedBy;
  problem?: string;
}

export interface BackupVerification {
  backupId: string;
  ok: boolean;
  artifacts: ArtifactCheck[];
}

/**
 * Checks every artifact of the chosen backups at every destination holding them (or the one
 * named) against the manifest: size and the checksum the destination reports (SHA-256, CRC-64), or with `deep` (and
 * wherever the destination reports no checksum) by reading the bytes back and hashing them.
 * Also reports, whatever backup is chosen: damaged manifests (an unreadable manifest is damage,
 * never an absence), backups this host recorded as committed that no destination holds any more,
 * and a chain that mixes keys this machine cannot restore together.
 * A replica that cleanup set out to remove is not expected; one it left half removed says to rerun cleanup.
 */
export async function verify(
  engine: Engine,
  options: { backup?: string; all?: boolean; destination?: string; deep?: boolean; thaw?: ThawRequest },
): Promise<BackupVerification[]> {
  const started = performance.now();
  const destinations = selectDestinations(engine, options.destination);
  const manifests = catalogOf(engine);
  const catalog = await manifests.read(destinations);
  for (const { destination, message } of catalog.unlisted) engine.warn(`destination ${destination} could not be listed: ${message}`);
  const history = await readHistory(engine);
  const interrupted = await interruptedRemovals(destinations, catalog, history);
  const reference = options.all ? undefined : (options.backup ?? 'latest');
  const wanted = reference === undefined || reference === 'latest' ? undefined : idFromReference(reference);
  if (reference !== undefined && reference !== 'latest' && wanted === undefined) await findBackup(engine, manifests, reference, destinations); // throws: not a backup name
  const entries =
    reference === undefined ? catalog.entries : reference === 'latest' ? catalog.entries.slice(-1) : catalog.entries.filter((e) => e.manifest.id === wanted);
  const chosen = (id: string) => wanted === undefined || id === wanted;
  const byId = new Map(catalog.entries.map((e) => [e.manifest.id, e]));
  const results: BackupVerification[] = [];
  if (options.deep && options.thaw) await thawEveryCopy(engine, entries, destinations, options.thaw);
  const record = async (result: BackupVerification) => {
    results.push(result);
    await logOperation(engine.logDir, 'backup.log', {
      operation: 'verify',
      backupId: result.backupId,
      outcome: result.ok ? 'ok' : 'failed',
      durationMs: performance.now() - started,
      detail: result.artifacts
        .filter((a) => !a.ok)
        .map((a) => a.problem)
        .join('; '),
    });
  };
  for (const entry of entries) {
    const { id, type } = entry.manifest;
    const artifacts: ArtifactCheck[] = [];
    for (const destination of destinations.filter((d) => !entry.destinations.includes(d.name))) {
      const problem = absentReplicaProblem(destination, entry, catalog.damaged, history, interrupted);
      if (problem) artifacts.push({ destination: destination.name, key: manifestKey(type, id), ok: false, problem });
    }
    // Destinations are checked at once (each is a separate server); a destination's artifacts one by one.
    const checked = await Promise.all(
      destinations
        .filter((d) => entry.destinations.includes(d.name))
        .map(async (destination) => {
          const checks: ArtifactCheck[] = [];
          for (const artifact of entry.manifest.artifacts) {
            try {
              const verifiedBy = await confirmStored(destination, artifact, { deep: options.deep ?? false });
              checks.push({ destination: destination.name, key: artifact.key, ok: true, verifiedBy });
            } catch (error) {
              const problem = isStowageError(error, StorageErrorCode.ObjectArchived)
                ? `${artifact.key} at ${destination.name} is archived (${entry.storageClasses?.[destination.name]?.[artifact.key] ?? 'an archive class'}) and ` +
                  `${options.deep ? '--deep reads every byte back, which needs a thaw first' : 'its destination reports no checksum to compare, so only a read could check it'}: run \`stowage verify ${id} --deep --thaw\``
                : isStowageError(error)
                  ? error.message
                  : String(error);
              checks.push({ destination: destination.name, key: artifact.key, ok: false, problem });
            }
          }
          return checks;
        }),
    );
    artifacts.push(...checked.flat());
    const mixedKeys = await mixedKeyProblem(engine, chainIn(byId, entry));
    if (mixedKeys) artifacts.push({ destination: 'this machine', key: manifestKey(type, id), ok: false, problem: mixedKeys });
    await record({ backupId: id, ok: artifacts.every((a) => a.ok), artifacts });
  }
  // Manifests damaged at every destination holding them: no entry above stands for these backups.
  const readable = new Set(catalog.entries.map((e) => e.manifest.id));
  const unreadable = new Map<string, DamagedManifest[]>();
  for (const d of catalog.damaged.filter((c) => !readable.has(c.id) && chosen(c.id))) unreadable.set(d.id, [...(unreadable.get(d.id) ?? []), d]);
  for (const [id, copies] of unreadable) {
    await record({
      backupId: id,
      ok: false,
      artifacts: copies.map((d) => ({
        destination: d.destination,
        key: d.key,
        ok: false,
        problem: `${d.problem}; no destination holds a readable copy of this manifest`,
      })),
    });
  }
  for (const [at, left] of interrupted) {
    const [destination, id] = at.split(/:(?=[^:]*$)/) as [string, string];
    if (readable.has(id) || !chosen(id)) continue; // reported with the backup above
    await record({
      backupId: id,
      ok: false,
      artifacts: [{ destination, key: manifestKey(typeOfId(id)!, id), ok: false, problem: interruptedProblem(destination, id, left) }],
    });
  }
  for (const vanished of vanishedBackups(
    history,
    catalog,
    destinations.map((d) => d.name),
  ).filter((v) => chosen(v.id))) {
    const key = manifestKey(typeOfId(vanished.id)!, vanished.id);
    await record({
      backupId: vanished.id,
      ok: false,
      artifacts: [{ destination: vanished.expectedAt.join(','), key, ok: false, problem: describeVanished(vanished) }],
    });
  }
  if (results.length === 0 && reference !== undefined) await findBackup(engine, manifests, reference, destinations); // throws: not found
  const problems = results.flatMap((r) => r.artifacts.filter((a) => !a.ok).map((a) => `${r.backupId} at ${a.destination}: ${a.problem}`));
  if (problems.length) await engine.alerts.raise((a, at) => a.verifyFailed({ ...at, problems }));
  else await engine.alerts.resolve('verify-failed');
  const lastVerify: VerifyRecord = {
    at: engine.now().toISOString(),
    ok: problems.length === 0,
    backups: results.length,
    problems,
    replicas: results.flatMap((r) =>
      replicaResults(
        r,
        destinations.map((d) => d.name),
      ),
    ),
  };
  await writePrivateAtomic(lastVerifyPath(engine), `${JSON.stringify(lastVerify, null, 2)}\n`);
  return results;
}

/** Why a backup committed elsewhere is not committed at `destination`, or undefined when that is as it should be. */
function absentReplicaProblem(
  destination: Destination,
  entry: CatalogEntry,
  damaged: readonly DamagedManifest[],
  history: BackupHistory,
  interrupted: ReadonlyMap<string, number>,
): string | undefined {
  const { id } = entry.manifest;
  const copy = damaged.find((d) => d.destination === destination.name && d.id === id);
  if (copy) return `${copy.problem}; \`stowage sync\` repairs it from ${entry.destinations.join(', ')}`;
  if (!history.removedByCleanup.has(`${destination.name}:${id}`)) return `no committed replica at ${destination.name}; \`stowage sync\` copies it there`;
  const left = interrupted.get(`${destination.name}:${id}`);
  return left ? interruptedProblem(destination.name, id, left) : undefined;
}

const interruptedProblem = (destination: string, id: string, left: number) =>
  `cleanup was interrupted while removing ${id} at ${destination} (its manifest is gone, ${left} object(s) left); rerun \`stowage cleanup\` to finish it`;

/** `destination:id` → objects left, for each removal cleanup began (manifest deleted) but did not finish. */
async function interruptedRemovals(destinations: readonly Destination[], catalog: Catalog, history: BackupHistory): Promise<Map<string, number>> {
  const left = new Map<string, number>();
  if (history.removedByCleanup.size === 0) return left;
  const unlisted = new Set(catalog.unlisted.map((u) => u.destination));
  const manifests = new Set([
    ...catalog.entries.flatMap((e) => e.destinations.map((d) => `${d}:${e.manifest.id}`)),
    ...catalog.damaged.map((d) => `${d.destination}:${d.id}`),
  ]);
  for (const destination of destinations.filter((d) => !unlisted.has(d.name))) {
    for (const type of BACKUP_TYPES) {
      for await (const info of destination.adapter.list(`${FOLDERS[type]}/`)) {
        const at = `${destination.name}:${info.key.slice(info.key.lastIndexOf('/') + 1).split('.')[0]}`;
        if (history.removedByCleanup.has(at) && !manifests.has(at)) left.set(at, (left.get(at) ?? 0) + 1);
      }
    }
  }
  return left;
}

export interface VerifyRecord {
  at: string;
  ok: boolean;
  backups: number;
  problems: string[];
  /** Per replica checked: intact or not, and how its artifacts were confirmed (absent in records of older versions). */
  replicas?: ReplicaVerification[];
}

export interface ReplicaVerification {
  backupId: string;
  destination: string;
  ok: boolean;
  /** The methods that confirmed its artifacts, e.g. `server-sha256` (absent when none was confirmed). */
  verifiedBy?: string;
  problem?: string;
}

/** One result per destination whose replica of the backup was checked (a chain-wide key problem is no replica's). */
function replicaResults(result: BackupVerification, destinations: readonly string[]): ReplicaVerification[] {
  return destinations.flatMap((destination) => {
    const checks = result.artifacts.filter((a) => a.destination === destination);
    if (checks.length === 0) return [];
    const methods = [...new Set(checks.flatMap((a) => (a.verifiedBy ? [a.verifiedBy] : [])))];
    const failed = checks.find((a) => !a.ok);
    return [
      {
        backupId: result.backupId,
        destination,
        ok: !failed,
        ...(methods.length ? { verifiedBy: methods.join('+') } : {}),
        ...(failed?.problem ? { problem: failed.problem } : {}),
      },
    ];
  });
}

export const lastVerifyPath = (engine: StateFolder) => join(engine.config.stateDir, 'status', 'last-verify.json');
