import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { catalogOf, type ManifestCatalog } from './catalog.js';
import { findBackup } from './find.js';
import type { Manifest } from './manifest.js';
import { commitManifest } from './replica.js';
import type { Engine } from './engine.js';
import { checksPassed, readFacts, runChecks, withPrivateDatabase, type DatabaseChecks } from './facts.js';
import { logOperation } from './oplog.js';
import { ownedScratchDir } from './private-fs.js';
import { materializeChain, resolveChain } from './chain.js';

export interface Validation {
  backupId: string;
  ok: boolean;
  checks: DatabaseChecks;
  schemaMatches: boolean;
  /** Tables whose row count differs from the manifest: name → [expected, found]. */
  rowCountMismatches: Record<string, [number | null, number | null]>;
  source: string;
  /** Destinations whose manifest now records that this snapshot passed the full checks (restores of it then skip the whole-file checks). */
  recorded: string[];
}

/**
 * Data validation: restores the backup into a scratch folder, runs `integrity_check` and
 * `foreign_key_check`, and compares row counts per table and the schema hash with the manifest.
 * When all pass, each destination's manifest records it (`integrityChecked`). Callers hold the
 * readers lock: no cleanup or sync rewrites or removes a manifest meanwhile.
 */
export async function validate(engine: Engine, reference: string): Promise<Validation> {
  const started = performance.now();
  const catalog = catalogOf(engine);
  const entry = await findBackup(engine, catalog, reference);
  const scratch = await ownedScratchDir(engine.config.stateDir, 'validate');
  try {
    const path = join(scratch, 'db.sqlite3');
    const chain = await resolveChain(catalog, entry, engine.destinations);
    const source = [...new Set(await materializeChain(engine, chain, path, engine.destinations))].join(',');
    const { checks, facts } = await withPrivateDatabase(path, (db) => ({ checks: runChecks(db), facts: readFacts(db) }));
    const expected = entry.manifest.source.tables;
    const rowCountMismatches: Validation['rowCountMismatches'] = {};
    for (const name of new Set([...Object.keys(expected), ...Object.keys(facts.tables)])) {
      if (expected[name] !== facts.tables[name]) rowCountMismatches[name] = [expected[name] ?? null, facts.tables[name] ?? null];
    }
    const schemaMatches = facts.schemaHash === entry.manifest.source.schemaHash;
    const ok = checksPassed(checks) && schemaMatches && Object.keys(rowCountMismatches).length === 0;
    const recorded = ok ? await recordIntegrityChecked(engine, catalog, entry.manifest, 'validate') : [];
    await logOperation(engine.logDir, 'backup.log', {
      operation: 'validate',
      backupId: entry.manifest.id,
      outcome: ok ? 'ok' : 'failed',
      durationMs: performance.now() - started,
      ...(recorded.length ? { detail: `integrity-recorded=${recorded.join(',')}` } : {}),
    });
    return { backupId: entry.manifest.id, ok, checks, schemaMatches, rowCountMismatches, source, recorded };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * Adds `integrityChecked` (`by`: the operation whose full checks passed) to the manifest of
 * `checked` at every destination whose manifest is of the same snapshot and lacks it; a
 * destination that cannot be written is warned about and skipped (its restores keep running the
 * full checks). Callers hold at least the readers lock. Returns the destinations that record it.
 */
export async function recordIntegrityChecked(
  run: Pick<Engine, 'destinations' | 'now' | 'warn'>,
  catalog: ManifestCatalog,
  checked: Manifest,
  by: string,
): Promise<string[]> {
  const recorded: string[] = [];
  const at = run.now().toISOString();
  for (const destination of run.destinations) {
    try {
      const manifest = await catalog.manifestAt(destination, checked.id);
      if (!manifest || manifest.source.snapshotSha256 !== checked.source.snapshotSha256) continue;
      if (!manifest.integrityChecked) await commitManifest(destination, { ...manifest, integrityChecked: { at, by } });
      recorded.push(destination.name);
    } catch (error) {
      run.warn(
        `could not record the passed checks of ${checked.id} at ${destination.name} (${(error as Error).message}); its restores will run the full checks`,
      );
    }
  }
  return recorded;
}
