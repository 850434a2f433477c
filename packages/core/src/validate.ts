import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { catalogOf } from './catalog.js';
import { findBackup } from './find.js';
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
}

/**
 * Data validation: restores the backup into a scratch folder, runs `integrity_check` and
 * `foreign_key_check`, and compares row counts per table and the schema hash with the manifest.
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
    await logOperation(engine.logDir, 'backup.log', { operation: 'validate', backupId: entry.manifest.id, outcome: ok ? 'ok' : 'failed', durationMs: performance.now() - started });
    return { backupId: entry.manifest.id, ok, checks, schemaMatches, rowCountMismatches, source };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
