import { isStowageError } from '@stowage/errors';
import { findBackup, listBackups, type CatalogEntry } from './catalog.js';
import { selectDestinations, type Engine } from './engine.js';
import { logOperation } from './oplog.js';
import { writePrivateAtomic } from './private-fs.js';
import { join } from 'node:path';
import { confirmStored } from './replica.js';
import { manifestKey } from './layout.js';
import { resolveChain } from './chain.js';
import { chainIn, mixedKeyProblem } from './key-match.js';

export interface ArtifactCheck {
  destination: string;
  key: string;
  ok: boolean;
  problem?: string;
}

export interface BackupVerification {
  backupId: string;
  ok: boolean;
  artifacts: ArtifactCheck[];
}

/**
 * Checks every artifact of the chosen backups at every destination holding them (or the one
 * named) against the manifest: size and the SHA-256 the destination reports, or with `deep` (and
 * wherever the destination reports no checksum) by reading the bytes back and hashing them.
 * A chain that mixes keys this machine cannot restore together is reported too.
 */
export async function verify(engine: Engine, options: { backup?: string; all?: boolean; destination?: string; deep?: boolean }): Promise<BackupVerification[]> {
  const started = performance.now();
  const destinations = selectDestinations(engine, options.destination);
  const entries: CatalogEntry[] = options.all ? await listBackups(engine, destinations) : [await findBackup(engine, options.backup ?? 'latest', destinations)];
  const catalog = new Map(entries.map((e) => [e.manifest.id, e]));
  const results: BackupVerification[] = [];
  for (const entry of entries) {
    const artifacts: ArtifactCheck[] = [];
    for (const destination of destinations.filter((d) => !entry.destinations.includes(d.name))) {
      artifacts.push({ destination: destination.name, key: manifestKey(entry.manifest.type, entry.manifest.id), ok: false, problem: `no committed replica at ${destination.name}; \`stowage sync\` copies it there` });
    }
    for (const destination of destinations.filter((d) => entry.destinations.includes(d.name))) {
      for (const artifact of entry.manifest.artifacts) {
        try {
          await confirmStored(destination, artifact, { deep: options.deep ?? false });
          artifacts.push({ destination: destination.name, key: artifact.key, ok: true });
        } catch (error) {
          artifacts.push({ destination: destination.name, key: artifact.key, ok: false, problem: isStowageError(error) ? error.message : String(error) });
        }
      }
    }
    const mixedKeys = await mixedKeyProblem(engine, options.all ? chainIn(catalog, entry) : await resolveChain(engine, entry, destinations).catch(() => [entry]));
    if (mixedKeys) artifacts.push({ destination: 'this machine', key: manifestKey(entry.manifest.type, entry.manifest.id), ok: false, problem: mixedKeys });
    const result = { backupId: entry.manifest.id, ok: artifacts.every((a) => a.ok), artifacts };
    results.push(result);
    await logOperation(engine.logDir, 'backup.log', {
      operation: 'verify',
      backupId: result.backupId,
      outcome: result.ok ? 'ok' : 'failed',
      durationMs: performance.now() - started,
      detail: artifacts.filter((a) => !a.ok).map((a) => a.problem).join('; '),
    });
  }
  const problems = results.flatMap((r) => r.artifacts.filter((a) => !a.ok).map((a) => `${r.backupId} at ${a.destination}: ${a.problem}`));
  if (problems.length) await engine.alerts.raise((a, at) => a.verifyFailed({ ...at, problems }));
  else await engine.alerts.resolve('verify-failed');
  await writePrivateAtomic(lastVerifyPath(engine), `${JSON.stringify({ at: engine.now().toISOString(), ok: problems.length === 0, backups: results.length, problems }, null, 2)}\n`);
  return results;
}

export interface VerifyRecord {
  at: string;
  ok: boolean;
  backups: number;
  problems: string[];
}

export const lastVerifyPath = (engine: Engine) => join(engine.config.stateDir, 'status', 'last-verify.json');
