import { isStowageError } from '@stowage/errors';
import { findBackup, listBackups, type CatalogEntry } from './catalog.js';
import { selectDestinations, type Engine } from './engine.js';
import { logOperation } from './oplog.js';
import { confirmStored } from './replica.js';

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
 * Re-reads every artifact of the chosen backups at every destination holding them (or the one
 * named) and compares size and SHA-256 with the manifest.
 */
export async function verify(engine: Engine, options: { backup?: string; all?: boolean; destination?: string }): Promise<BackupVerification[]> {
  const started = performance.now();
  const destinations = selectDestinations(engine, options.destination);
  const entries: CatalogEntry[] = options.all ? await listBackups(engine, destinations) : [await findBackup(engine, options.backup ?? 'latest', destinations)];
  const results: BackupVerification[] = [];
  for (const entry of entries) {
    const artifacts: ArtifactCheck[] = [];
    for (const destination of destinations.filter((d) => entry.destinations.includes(d.name))) {
      for (const artifact of entry.manifest.artifacts) {
        try {
          await confirmStored(destination, artifact, { deep: true });
          artifacts.push({ destination: destination.name, key: artifact.key, ok: true });
        } catch (error) {
          artifacts.push({ destination: destination.name, key: artifact.key, ok: false, problem: isStowageError(error) ? error.message : String(error) });
        }
      }
    }
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
  return results;
}
