import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { formatDuration } from '@stowage/alerts';
import { catalogOf, type CatalogEntry, type ManifestCatalog } from './catalog.js';
import { materializeChain, resolveChain } from './chain.js';
import type { StateFolder } from './config.js';
import type { Destination, Engine } from './engine.js';
import { selectDestinations } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { checksPassed, readFacts, runChecks, withPrivateDatabase } from './facts.js';
import { readJsonLines } from './json-lines.js';
import { logOperation } from './oplog.js';
import { appendPrivate, ownedScratchDir, writePrivateAtomic } from './private-fs.js';
import { restoreFilesOfChain } from './restore-files.js';
import { durationMs } from './retention.js';
import { findBackup } from './find.js';
import type { HistorySource } from './history.js';
import { ensureThawed, type ThawRequest } from './archive.js';

export interface DrillResult {
  backupId: string;
  destination: string;
  startedAt: string;
  ok: boolean;
  /** Time from the start to a usable, checked database: the recovery time actually achieved (thaws not included). */
  rtoMs: number;
  /** Time spent waiting for thaws of archived artifacts, reported apart from the RTO (absent when none was needed). */
  thawMs?: number;
  /** The whole drill, file sets and cleanup included. */
  durationMs: number;
  chainLength: number;
  problems: string[];
}

/**
 * A disaster-recovery drill: restore a backup into a scratch folder from one destination (default
 * the last configured, usually the remote or archival one), replaying its chain; check integrity,
 * foreign keys, row counts, schema hash and the file sets; measure the time to a usable database
 * (the RTO); clean up; and record the result for `stowage status`, the audit of restore.log.
 */
export async function drill(
  engine: Engine,
  options: { backup?: string; destination?: string; random?: () => number; thaw?: ThawRequest } = {},
): Promise<DrillResult> {
  const started = performance.now();
  const startedAt = engine.now().toISOString();
  const destination: Destination = options.destination ? selectDestinations(engine, options.destination)[0]! : engine.destinations.at(-1)!;
  const catalog = catalogOf(engine);
  const entry = await chooseBackup(engine, catalog, destination, options.backup ?? 'latest', options.random ?? Math.random);
  const scratch = await ownedScratchDir(engine.config.stateDir, 'drill');
  const problems: string[] = [];
  let rtoMs = 0;
  let thawMs = 0;
  let chainLength = 0;
  try {
    const chain = await resolveChain(catalog, entry, [destination]);
    chainLength = chain.length;
    const command = `stowage drill --backup ${entry.manifest.id} --destination ${destination.name}`;
    thawMs = await ensureThawed(engine, chain, [destination], { command, ...(options.thaw && { thaw: options.thaw }) });
    const path = join(scratch, 'db.sqlite3');
    await materializeChain(engine, chain, path, [destination]);
    const { checks, facts } = await withPrivateDatabase(path, (db) => ({ checks: runChecks(db), facts: readFacts(db) }));
    rtoMs = performance.now() - started - thawMs;
    if (!checksPassed(checks)) problems.push(`integrity: ${checks.integrity.slice(0, 2).join('; ')}, foreign key violations: ${checks.foreignKeyViolations}`);
    if (facts.schemaHash !== entry.manifest.source.schemaHash) problems.push('the schema differs from the manifest');
    for (const [table, rows] of Object.entries(entry.manifest.source.tables)) {
      if (facts.tables[table] !== rows) problems.push(`table ${table}: ${facts.tables[table] ?? 'missing'} rows, ${rows} expected`);
    }
    if (entry.manifest.files) {
      const restored = await restoreFilesOfChain(engine, chain, [destination], join(scratch, 'files'), undefined);
      for (const [name, expected] of Object.entries(entry.manifest.files.sets)) {
        const got = restored.sets.find((set) => set.name === name);
        if (!got || got.files !== expected.files || got.bytes !== expected.bytes)
          problems.push(
            `file set ${name}: ${got ? `${got.files} files, ${got.bytes} bytes` : 'missing'}, expected ${expected.files} files, ${expected.bytes} bytes`,
          );
      }
    }
  } catch (error) {
    problems.push((error as Error).message);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  const result: DrillResult = {
    backupId: entry.manifest.id,
    destination: destination.name,
    startedAt,
    ok: problems.length === 0,
    rtoMs: Math.round(rtoMs),
    ...(thawMs > 0 ? { thawMs: Math.round(thawMs) } : {}),
    durationMs: Math.round(performance.now() - started),
    chainLength,
    problems,
  };
  await writePrivateAtomic(lastDrillPath(engine), `${JSON.stringify(result, null, 2)}\n`);
  await appendPrivate(drillHistoryPath(engine), `${JSON.stringify(result)}\n`);
  const target = engine.config.targets.rto;
  if (!result.ok) await engine.alerts.raise((a, at) => a.drillFailed({ ...at, backupId: result.backupId, destination: result.destination, problems }));
  else await engine.alerts.resolve('drill-failed');
  if (result.ok && result.rtoMs > durationMs(target))
    await engine.alerts.raise((a, at) => a.rtoExceeded({ ...at, backupId: result.backupId, took: formatDuration(result.rtoMs), target }));
  else if (result.ok) await engine.alerts.resolve('rto-exceeded');
  await logOperation(engine.logDir, 'restore.log', {
    operation: 'drill',
    backupId: result.backupId,
    outcome: result.ok ? 'ok' : 'failed',
    durationMs: result.durationMs,
    bytes: entry.manifest.source.size,
    detail: `from=${destination.name} rto=${(result.rtoMs / 1000).toFixed(1)}s${result.thawMs ? ` thaw=${(result.thawMs / 1000).toFixed(1)}s` : ''} chain=${chainLength}${problems.length ? ` problems="${problems.join('; ')}"` : ''}`,
  });
  return result;
}

async function chooseBackup(
  run: HistorySource,
  catalog: ManifestCatalog,
  destination: Destination,
  reference: string,
  random: () => number,
): Promise<CatalogEntry> {
  if (reference !== 'random') return findBackup(run, catalog, reference, [destination]);
  const all = await catalog.list([destination]);
  const pick = all[Math.floor(random() * all.length)];
  if (!pick)
    throw new CoreError(CoreErrorCode.BackupNotFound, `there are no backups at ${destination.name} to drill; take one with \`stowage backup --type full\``);
  return pick;
}

export const lastDrillPath = (engine: StateFolder) => join(engine.config.stateDir, 'status', 'last-drill.json');

/** Every drill run on this machine, one JSON line each (for the status page's drill history). */
export const drillHistoryPath = (engine: StateFolder) => join(engine.config.stateDir, 'status', 'drills.jsonl');

/** The drills recorded on this machine, oldest first; a damaged line is skipped. */
export const drillHistory = (engine: StateFolder) => readJsonLines<DrillResult>(drillHistoryPath(engine));

/** The last drill recorded on this machine, if any. */
export async function lastDrill(engine: StateFolder): Promise<DrillResult | undefined> {
  const text = await readFile(lastDrillPath(engine), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as DrillResult);
}
