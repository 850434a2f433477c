import { builtinRegistry } from '@stowage/adapters';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { constants as osConstants } from 'node:os';
import { realpath } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDestinationUrl } from '@stowage/storage';
import { configSchedules, hasArchivePolicy, renderSchedule, type ScheduleFormat, type ScheduleOptions } from './schedule.js';
import { CLI_VERSION } from './version.js';
import {
  acquireDestinationLock,
  acquireDestinationLocks,
  acquireSourceLock,
  appendAudit,
  LockErrorCode,
  backup,
  breakLock,
  cleanup,
  describeChecks,
  describeHolder,
  drill,
  verifyAuditTrail,
  type Lock,
  formatAge,
  probeDestinations,
  status,
  alertOnStatus,
  sync,
  listBackups,
  restorableFromEach,
  loadConfig,
  logDirOf,
  openEngine,
  withoutDestinations,
  requireDestinations,
  restore,
  validate,
  verify,
  verifyRestored,
  type CatalogEntry,
  type Engine,
  type EngineOptions,
  type RestoreCheck,
  type RestorePlan,
  type ThawRequest,
  type ResolvedConfig,
} from '@stowage/core';
import { isStowageError } from '@stowage/errors';
import { ExitCode, UsageError, exitCodeFor } from './exit-codes.js';
import { formatBytes, formatDuration, Output } from './output.js';

export interface GlobalOptions {
  config?: string;
  json?: boolean;
  quiet?: boolean;
  /** A duration; bare (`true`) only where a command waits for thaws (see thawRequestOf). */
  wait?: string | true;
}

/** `--wait 30m` in ms (0 without it). */
export function waitMs(wait: string | true | undefined): number {
  if (wait === undefined) return 0;
  if (wait === true) throw new UsageError('--wait needs a duration here (e.g. 30s, 10m); a bare --wait only goes with --thaw');
  if (!/^\d+[smhd]$/.test(wait)) throw new UsageError(`--wait: '${wait}' is not a duration (e.g. 30s, 10m, 1h)`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[wait.at(-1) as 's' | 'm' | 'h' | 'd'];
  return Number(wait.slice(0, -1)) * unit;
}

/** --config, else $STOWAGE_CONFIG, else ./stowage.config.yaml when it exists, else ./stowage.config.json. */
export function configPath(globals: GlobalOptions): string {
  return resolve(globals.config || process.env.STOWAGE_CONFIG || (existsSync('stowage.config.yaml') ? 'stowage.config.yaml' : 'stowage.config.json'));
}

/**
 * Which locks an operation takes: `exclusive` (the source and every destination: backup, cleanup,
 * sync, a live restore) or `readers` (the destinations only, so cleanup cannot delete a chain
 * mid-read: verify, test-mode restores, drills). A destination whose lock cannot be taken (read-only,
 * full, unreachable) is left out of the run with a warning naming it. Cron, the daemon and a person at the console then never
 * run conflicting operations.
 */
export type LockPolicy = { kind: 'exclusive' | 'readers'; operation: string; waitMs?: number };

/** Lock operations that take a backup (`stowage backup`, `db_backup --type`, `guard`). */
export const BACKUP_OPERATIONS: readonly string[] = ['backup', 'guard'];

/**
 * Takes the locks of `policy` on `engine`'s source and destinations (each through `persist`, which
 * may try again while another stowage holds it; default: once, waiting `policy.waitMs`). Returns
 * the locks and the engine without the destinations whose lock cannot be taken (each warned of by
 * the engine); a stale lock taken over is warned of. On failure nothing stays locked.
 */
export async function takeLocks(
  engine: Engine,
  policy: LockPolicy,
  options: { command: string; warn: (message: string) => void; persist?: (take: () => Promise<Lock>) => Promise<Lock> },
): Promise<{ held: Lock[]; engine: Engine }> {
  const request = { operation: policy.operation, command: options.command };
  const lockOptions = { waitMs: policy.waitMs ?? 0, onRenewFailed: (error: unknown) => options.warn(`lost a lock: ${(error as Error).message}`) };
  const persist = options.persist ?? ((take) => take());
  const held: Lock[] = [];
  try {
    if (policy.kind === 'exclusive') held.push(await persist(() => acquireSourceLock(engine.config.stateDir, request, lockOptions)));
    const { locks, unavailable } = await acquireDestinationLocks(engine.destinations, (destination) =>
      persist(() => acquireDestinationLock(destination, request, lockOptions)),
    );
    held.push(...locks);
    for (const lock of held)
      if (lock.broke) options.warn(`took over the stale lock on ${lock.name} (${lock.broke.stale}) of ${describeHolder(lock.broke.holder)}`);
    const usable = withoutDestinations(engine, unavailable);
    // A backup with no destination left fails by itself, so that the failure is logged and alerted.
    if (!BACKUP_OPERATIONS.includes(policy.operation)) requireDestinations(usable);
    return { held, engine: usable };
  } catch (error) {
    await releaseLocks(held, options.warn);
    throw error;
  }
}

/** Releases locks, newest first. One that cannot be released is warned of: it blocks the next run until it is broken as stale. */
export async function releaseLocks(locks: readonly Lock[], warn: (message: string) => void): Promise<void> {
  for (const lock of [...locks].reverse()) {
    await lock.release().catch((cause: unknown) => warn(`could not release the ${lock.kind} lock on ${lock.name}: ${(cause as Error).message}`));
  }
}

/** Runs `fn` with an engine for the config, turning every error into a one-line message and an exit code. */

/** Which command runs: `program` prefixes its messages, `command` names its `--json` envelope. */
export interface CommandName {
  program: string;
  command: string;
}

/**
 * Runs `fn` with the command's `Output`, turning every error into a one-line message and an exit
 * code, then ends the output (with --json: the envelope, the only thing on stdout).
 */
export async function withOutput(name: CommandName, globals: GlobalOptions, fn: (out: Output) => Promise<number>): Promise<number> {
  const out = new Output({ json: globals.json ?? false, quiet: globals.quiet ?? false }, name.program, name.command);
  let code: number;
  try {
    code = await fn(out);
  } catch (error) {
    out.error(error);
    code = exitCodeFor(error);
  }
  out.finish(code);
  return code;
}

/** `withOutput` with an engine for the config (and the locks of `locks`), closed at the end. */
export async function withEngine(
  name: CommandName,
  globals: GlobalOptions,
  fn: (engine: Engine, out: Output) => Promise<number>,
  locks?: LockPolicy,
  engineOptions: EngineOptions = {},
): Promise<number> {
  return withOutput(name, globals, async (out) => {
    let engine: Engine | undefined;
    const held: Lock[] = [];
    try {
      const config = await loadConfig(configPath(globals));
      engine = await openEngine(config, { registry: builtinRegistry(), onProgress: out.progress, onWarning: (m) => out.warn(m), ...engineOptions });
      if (locks) {
        const taken = await takeLocks(engine, locks, { command: `${name.program} ${process.argv.slice(2).join(' ')}`, warn: (m) => out.warn(m) });
        held.push(...taken.held);
        engine = taken.engine;
      }
      return await fn(engine, out);
    } catch (error) {
      if (engine)
        await alertOnLongHeldLock(engine, error).catch((cause: unknown) => out.warn(`could not raise the lock-held alert: ${(cause as Error).message}`));
      throw error;
    } finally {
      await releaseLocks(held, (m) => out.warn(m));
      await engine?.close();
    }
  });
}

export async function runBackup(engine: Engine, out: Output, options: { type: string; reason?: string }): Promise<ExitCode> {
  if (options.type !== 'full' && options.type !== 'hot' && options.type !== 'incremental')
    throw new UsageError(`--type must be full, incremental or hot, not '${options.type}'`);
  const result = await backup(engine, { type: options.type, ...(options.reason === undefined ? {} : { reason: options.reason }) });
  const m = result.manifest;
  out.result({
    outcome: result.outcome,
    id: m.id,
    type: m.type,
    parent: m.parent,
    changedPages: m.delta?.changedPages,
    fullBecause: m.fullBecause,
    bytes: result.bytes,
    durationMs: Math.round(result.durationMs),
    committed: result.committed,
    failures: result.failures,
    snapshotSha256: m.source.snapshotSha256,
  });
  if (m.fullBecause) out.say(`full backup taken instead of an incremental: ${m.fullBecause}`);
  if (m.delta) out.say(`${m.id}: ${m.delta.changedPages} of ${m.source.pageCount} pages changed since ${m.parent}, ${formatBytes(result.bytes)} stored`);
  else
    out.say(
      `${m.id}: ${formatBytes(m.source.size)}, ${m.source.pageCount} pages, ${Object.keys(m.source.tables).length} tables, in ${formatDuration(result.durationMs)} (writers held ${m.source.lockMs} ms)`,
    );
  out.say(`  stored and verified at: ${result.committed.join(', ')}`);
  for (const failure of result.failures) out.warn(`${m.id} is missing at ${failure.destination}: ${failure.message}`);
  return { ok: ExitCode.Ok, degraded: ExitCode.Degraded, failed: ExitCode.Failed }[result.outcome];
}

/** One backup as `stowage list --json` (and the status page's `/api/backups`) show it; `catalog` is every committed backup. */
export function backupSummary(e: CatalogEntry, restorable: ReadonlyMap<string, string[]>) {
  return {
    id: e.manifest.id,
    type: e.manifest.type,
    parent: e.manifest.parent,
    createdAt: e.manifest.createdAt,
    /** The database's size when it was backed up. */
    size: e.manifest.source.size,
    /** Bytes stored per destination copy (every artifact, compressed and encrypted as stored). */
    storedBytes: e.manifest.artifacts.reduce((sum, a) => sum + a.size, 0),
    reason: e.manifest.reason,
    destinations: e.destinations,
    restorableFrom: restorable.get(e.manifest.id) ?? [],
    files: e.manifest.artifacts.map((a) => a.key),
  };
}
export type BackupSummary = ReturnType<typeof backupSummary>;

/** The `list --json` summary of every backup of `catalog`, in its order (restorability judged once for all). */
export function backupSummaries(catalog: readonly CatalogEntry[]): BackupSummary[] {
  const restorable = restorableFromEach(catalog);
  return catalog.map((e) => backupSummary(e, restorable));
}

/**
 * `stowage list`: committed backups under a header, with the time they were taken (this machine's
 * zone, offset shown), the bytes each stores, its parent, the destinations holding it and which of
 * those can restore it alone (they hold its whole chain); a holder lacking a link is marked `name(chain incomplete)`.
 */
export async function runList(engine: Engine, out: Output, options: { type?: string }): Promise<ExitCode> {
  const catalog = await listBackups(engine);
  const restorable = restorableFromEach(catalog);
  const summaries = catalog.filter((e) => !options.type || e.manifest.type === options.type).map((e) => backupSummary(e, restorable));
  out.result({ backups: summaries });
  if (summaries.length === 0) {
    out.say('no backups yet; take one with `stowage backup --type full`');
    return ExitCode.Ok;
  }
  const rows = summaries.map((b) => [
    b.id,
    b.type,
    formatLocalTime(new Date(b.createdAt)),
    formatBytes(b.storedBytes),
    b.parent ?? '-',
    b.destinations.map((name) => (b.restorableFrom.includes(name) ? name : `${name}(chain incomplete)`)).join(',') + (b.reason ? `  "${b.reason}"` : ''),
  ]);
  const header = ['ID', 'TYPE', 'TAKEN', 'STORED', 'PARENT', 'DESTINATIONS'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells.map((cell, column) => (column === 3 ? cell.padStart(widths[column]!) : column === cells.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ');
  out.say(line(header));
  for (const row of rows) out.say(line(row));
  return ExitCode.Ok;
}

/** `2026-12-06 14:03:22 +08:00`: the local time with its UTC offset. */
export function formatLocalTime(time: Date): string {
  const pad = (n: number) => String(Math.abs(n)).padStart(2, '0');
  const offset = -time.getTimezoneOffset();
  return `${time.getFullYear()}-${pad(time.getMonth() + 1)}-${pad(time.getDate())} ${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())} ${offset < 0 ? '-' : '+'}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
}

export async function runVerify(
  engine: Engine,
  out: Output,
  options: { backup?: string; all?: boolean; destination?: string; deep?: boolean; thaw?: ThawRequest },
): Promise<ExitCode> {
  if (!options.backup && !options.all) throw new UsageError('name a backup to verify (an id, a file, or latest) or pass --all');
  const results = await verify(engine, { ...options });
  out.result({ backups: results, skipped: engine.unavailable });
  for (const r of results) {
    out.say(`${r.backupId}: ${r.ok ? 'OK' : 'DAMAGED'} (${r.artifacts.length} artifact copies checked)`);
    for (const a of r.artifacts.filter((x) => !x.ok)) out.say(`  ${a.destination}: ${a.problem}`);
  }
  if (results.length === 0) out.say('no backups to verify');
  return results.every((r) => r.ok) ? ExitCode.Ok : ExitCode.Failed;
}

export async function runValidate(engine: Engine, out: Output, reference: string): Promise<ExitCode> {
  const v = await validate(engine, reference);
  out.result(v);
  out.say(
    `${v.backupId}: ${v.ok ? 'data valid' : 'DATA INVALID'} — integrity ${v.checks.integrity.join('; ')}, foreign key violations ${v.checks.foreignKeyViolations}, schema ${v.schemaMatches ? 'matches' : 'DIFFERS'}, row counts ${Object.keys(v.rowCountMismatches).length === 0 ? 'match' : `DIFFER in ${Object.keys(v.rowCountMismatches).join(', ')}`}`,
  );
  if (v.recorded.length) out.say(`  recorded in the manifest at ${v.recorded.join(', ')}: ${SKIP_WHOLE_FILE_CHECKS}`);
  return v.ok ? ExitCode.Ok : ExitCode.Failed;
}

/** What recording `integrityChecked` in a manifest means for restores. */
const SKIP_WHOLE_FILE_CHECKS = 'restores of this snapshot skip the whole-file checks (restore --check quick|full to run them)';
const RESTORE_CHECKS: readonly string[] = ['auto', 'quick', 'full'] satisfies RestoreCheck[];

export async function runRestore(
  engine: Engine,
  out: Output,
  options: {
    backup?: string;
    at?: string;
    target?: string;
    testMode?: boolean;
    from?: string;
    only?: string;
    yes?: boolean;
    thaw?: ThawRequest;
    check?: string;
  },
): Promise<ExitCode> {
  const { at, only, yes, check, ...rest } = options;
  if (check !== undefined && !RESTORE_CHECKS.includes(check)) throw new UsageError(`--check takes auto, quick or full, not '${check}'`);
  if (at !== undefined && options.backup !== undefined) throw new UsageError('give a backup or --at TIME, not both');
  if (!options.testMode && options.backup === undefined && at === undefined) {
    throw new UsageError('name the backup to restore over the live data: an id, a file, `latest`, or --at TIME (or add --test-mode to restore into scratch)');
  }
  const r = await restore(engine, {
    ...rest,
    ...(yes ? {} : { confirm: confirmOnTerminal }),
    ...(at === undefined ? {} : { at: parseTime(at) }),
    ...(only === undefined
      ? {}
      : {
          only: only
            .split(',')
            .map((name) => name.trim())
            .filter(Boolean),
        }),
    ...(check === undefined ? {} : { check: check as RestoreCheck }),
  });
  out.result({
    id: r.manifest.id,
    chain: r.chain,
    target: r.target,
    files: r.files,
    testMode: r.testMode,
    movedAside: r.movedAside ?? [],
    from: r.source,
    bytes: r.bytes,
    durationMs: Math.round(r.durationMs),
    ...(r.checks ? { checks: r.checks } : {}),
    ...(r.recorded ? { recorded: r.recorded } : {}),
    ...(r.thawMs === undefined ? {} : { thawMs: r.thawMs }),
  });
  if (r.chain.length > 1) out.say(`replayed the chain ${r.chain.join(' → ')}`);
  const where = [r.target && `the database to ${r.target}`, r.files && `file sets ${r.files.sets.join(', ')} to ${r.files.targetDir}`]
    .filter(Boolean)
    .join(' and ');
  out.say(
    `restored ${r.manifest.id}: ${where}${r.testMode ? ' (test mode: the live data was not touched)' : ''} in ${formatDuration(r.durationMs)} from ${r.source}`,
  );
  if (r.movedAside?.length) out.say(`  the previous database was moved aside: ${r.movedAside.join(', ')}`);
  if (r.files?.movedAside) out.say(`  the files it replaced were moved to ${r.files.movedAside}`);
  if (r.checks)
    out.say(
      `  SHA-256 matches the backup; ${describeChecks(r.checks)}${r.checks.kind === 'full' ? '' : ' (--check full for integrity_check and foreign_key_check)'}`,
    );
  if (r.recorded) out.say(`  recorded in the manifest at ${r.recorded.join(', ')}: ${SKIP_WHOLE_FILE_CHECKS}`);
  if (r.thawMs !== undefined) out.say(`  ${formatAge(r.thawMs)} of that waiting for thaws of archived artifacts`);
  return ExitCode.Ok;
}

export async function runRestoreVerify(engine: Engine, out: Output, options: { testMode?: boolean }): Promise<ExitCode> {
  const v = await verifyRestored(engine, options);
  out.result(v);
  out.say(
    `${v.target} (restored from ${v.backupId}): ${v.ok ? 'OK' : 'PROBLEM'} — integrity ${v.checks.integrity.join('; ')}, foreign key violations ${v.checks.foreignKeyViolations}, schema ${v.schemaMatches ? 'as in the backup' : 'DIFFERS from the backup'}, ${v.unchangedSinceRestore ? 'unchanged since the restore' : 'changed since the restore'}`,
  );
  return v.ok ? ExitCode.Ok : ExitCode.Failed;
}

/**
 * Asks on the terminal whether a restore may replace the live data, naming the backup and what
 * it replaces. Without a terminal there is no one to ask: `--yes` is required.
 */
async function confirmOnTerminal(plan: RestorePlan): Promise<boolean> {
  if (plan.sets.length === 0 && !(plan.target && existsSync(plan.target))) return true; // replaces nothing
  const what = [plan.target && `the database ${plan.target}`, plan.sets.length && `the file sets ${plan.sets.join(', ')} in ${plan.targetDir}`]
    .filter(Boolean)
    .join(' and ');
  if (!process.stdin.isTTY) throw new UsageError(`restoring ${plan.backupId} replaces ${what}; pass --yes to confirm (there is no terminal to ask on)`);
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(
      `Replace ${what} with backup ${plan.backupId} (taken ${new Date(plan.createdAt).toLocaleString()})? What is there now is kept aside. [y/N] `,
    );
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    prompt.close();
  }
}

/** Parses `--at`: an ISO time, or `YYYY-MM-DD[ HH:MM[:SS]]` in local time. */
export function parseTime(text: string): Date {
  const local = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text);
  const time = local
    ? new Date(
        Number(local[1]),
        Number(local[2]) - 1,
        Number(local[3]),
        Number(local[4] ?? 23),
        Number(local[5] ?? 59),
        Number(local[6] ?? (local[4] ? 0 : 59)),
      )
    : new Date(text);
  if (Number.isNaN(time.getTime())) throw new UsageError(`--at: '${text}' is not a time (use e.g. 2024-01-01T14:30:00Z or "2024-01-01 14:30")`);
  return time;
}

export async function runCleanup(engine: Engine, out: Output, options: { dryRun?: boolean; asOf?: string; allowEarlyDelete?: boolean }): Promise<ExitCode> {
  const result = await cleanup(engine, {
    dryRun: options.dryRun ?? false,
    allowEarlyDelete: options.allowEarlyDelete ?? false,
    ...(options.asOf === undefined ? {} : { asOf: parseTime(options.asOf) }),
  });
  const ok = result.failures.length === 0 && result.damaged.length === 0;
  out.result({ ...result, skipped: engine.unavailable });
  const verb = result.dryRun ? 'would remove' : 'removed';
  for (const item of result.removed) out.say(`${verb} ${item.destination}: ${item.what} (${formatBytes(item.bytes)}, ${item.why})`);
  for (const r of result.repaired) out.say(`${result.dryRun ? 'would repair' : 'repaired'} the damaged manifest of ${r.id} at ${r.destination} from ${r.from}`);
  out.say(
    `${verb} ${result.removed.length} item(s), ${formatBytes(result.bytesFreed)} ${result.dryRun ? 'would be ' : ''}freed; kept ${result.kept.length} backup replica(s)`,
  );
  for (const e of result.earlyDeleteAvoided) {
    out.say(
      `kept ${e.destination}: ${e.key} (${formatBytes(e.bytes)} in ${e.storageClass} for ${e.storedDays} of its ${e.minimumDays} minimum days): deleting it now would be charged for ${formatBytes(e.bytes)} × ${Math.ceil(e.byteDays / Math.max(1, e.bytes))} more days`,
    );
  }
  if (result.earlyDeleteAvoided.length) {
    const byteDays = result.earlyDeleteAvoided.reduce((sum, e) => sum + e.byteDays, 0);
    out.say(`early-deletion charge avoided: ${(byteDays / 1e9 / 30).toFixed(3)} GB-months of archive storage; --allow-early-delete deletes them anyway`);
  }
  for (const d of result.damaged) out.warn(`damaged manifest ${d.key} at ${d.destination}: ${d.problem}`);
  for (const failure of result.failures) out.warn(`cleanup of ${failure.destination} failed: ${failure.message}`);
  return ok ? ExitCode.Ok : ExitCode.Failed;
}

/**
 * `stowage guard -- CMD…`: a hot backup before a risky operation. The command's exit code is passed
 * through; when it fails, the exact command that restores the hot backup is printed.
 */
export async function runGuard(
  engine: Engine,
  out: Output,
  commandLine: string[],
  options: { reason?: string; config?: string | undefined },
): Promise<ExitCode> {
  const [program, ...args] = commandLine;
  if (!program) throw new UsageError('give the command to guard after --, e.g. stowage guard -- python manage.py migrate');
  const { manifest } = await backup(engine, { type: 'hot', reason: options.reason ?? commandLine.join(' ') });
  out.say(`hot backup ${manifest.id} taken; running: ${commandLine.join(' ')}`);
  const code = await new Promise<number>((resolveExit, reject) => {
    // With --json, stdout holds the envelope only: the command's output goes to stderr.
    const child = spawn(program, args, { stdio: ['inherit', out.options.json ? 2 : 'inherit', 'inherit'] });
    child.once('error', (error) => reject(new UsageError(`cannot run '${program}': ${error.message}`)));
    child.once('exit', (status, signal) => resolveExit(status ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1)));
  });
  out.result({ id: manifest.id, exitCode: code });
  if (code !== 0) {
    const config = options.config ? ` --config ${options.config}` : '';
    out.warn(
      `'${commandLine.join(' ')}' exited ${code}; to go back to the state before it, stop the application and run:\n  stowage restore ${manifest.id}${config}`,
    );
  }
  return code as ExitCode;
}

export async function runSync(engine: Engine, out: Output, options: { dryRun?: boolean; deep?: boolean }): Promise<ExitCode> {
  const result = await sync(engine, options);
  const failed = result.actions.filter((a) => a.outcome === 'failed');
  out.result({ ...result, skipped: engine.unavailable });
  if (result.actions.length === 0) out.say(`every ${engine.unavailable.length ? 'reachable ' : ''}destination holds a good copy of every backup`);
  for (const a of result.actions) {
    const what = a.problem === 'missing' ? 'missing' : `damaged (${a.detail})`;
    const done = { planned: 'would copy it there', repaired: `copied from ${a.from}`, failed: `FAILED: ${a.message}` }[a.outcome];
    out.say(`${a.backupId} at ${a.destination}: ${what} — ${done}`);
  }
  return failed.length ? ExitCode.Failed : ExitCode.Ok;
}

export async function runProbe(engine: Engine, out: Output): Promise<ExitCode> {
  const probes = await probeDestinations(engine);
  out.result({ destinations: probes });
  for (const p of probes) {
    out.say(`${p.destination} (${p.description}): ${p.ok ? `OK, round trip ${p.roundTrip.ms} ms` : `FAILED: ${p.roundTrip.problem}`}`);
    out.say(
      `  checksums reported: ${p.roundTrip.serverChecksums.join(', ') || 'none (verified by read-back)'}; conditional writes: ${p.capabilities.conditionalPut ? 'yes' : 'no'}`,
    );
    if (p.endpoint)
      out.say(`  endpoint: ${p.endpoint.summary}${p.endpoint.recommended ? `; recommended options: ${JSON.stringify(p.endpoint.recommended)}` : ''}`);
    if (p.probeProblem) out.say(`  endpoint probe failed: ${p.probeProblem}`);
  }
  return probes.every((p) => p.ok) ? ExitCode.Ok : ExitCode.Failed;
}

export async function runDrill(engine: Engine, out: Output, options: { backup?: string; destination?: string; thaw?: ThawRequest }): Promise<ExitCode> {
  const result = await drill(engine, options);
  out.result(result);
  const thaw = result.thawMs === undefined ? '' : `, after ${formatAge(result.thawMs)} waiting for thaws (not counted in the RTO)`;
  out.say(
    `drill of ${result.backupId} from ${result.destination} (chain of ${result.chainLength}): ${result.ok ? 'OK' : 'FAILED'} — usable database after ${formatDuration(result.rtoMs)} (RTO target ${engine.config.targets.rto})${thaw}, ${formatDuration(result.durationMs)} in all`,
  );
  for (const problem of result.problems) out.say(`  ${problem}`);
  return result.ok ? ExitCode.Ok : ExitCode.Failed;
}

/**
 * `stowage status`: exit 0 when healthy, 1 when not — usable by monitoring and compose healthchecks.
 * It only reads; with `alert` (a monitoring cron without the daemon) it also raises or resolves the
 * alert it evaluates, as the daemon does after each job.
 */
export async function runStatus(engine: Engine, out: Output, options: { alert?: boolean } = {}): Promise<ExitCode> {
  const s = await status(engine);
  if (options.alert) await alertOnStatus(engine, s);
  out.result(s);
  out.say(`${s.healthy ? 'HEALTHY' : 'UNHEALTHY'} (RPO target ${s.targets.rpo}, RTO target ${s.targets.rto})`);
  for (const [type, t] of Object.entries(s.types))
    out.say(`  ${type.padEnd(11)} ${t.newest ?? '(none)'}${t.ageMs === null ? '' : `, ${formatAge(t.ageMs)} old`}`);
  for (const d of s.destinations) {
    const classes = Object.entries(d.bytesByClass).filter(([name]) => name !== 'default');
    const archived = classes.length ? `; archived: ${classes.map(([name, bytes]) => `${formatBytes(bytes)} ${name}`).join(', ')}` : '';
    out.say(`  ${d.name.padEnd(20)} ${d.reachable ? `newest ${d.newest ?? '(none)'}${archived}` : `UNREACHABLE: ${d.error}`}`);
  }
  if (s.destinations.some((d) => Object.keys(d.bytesByClass).some((name) => name !== 'default')))
    out.say(`  oldest backup restorable without a thaw: ${s.oldestWithoutThaw?.id ?? '(none)'}`);
  out.say(`  last verify: ${s.lastVerify ? `${s.lastVerify.at} ${s.lastVerify.ok ? 'ok' : 'DAMAGE FOUND'}` : 'never'}`);
  out.say(`  last drill:  ${s.lastDrill ? `${s.lastDrill.startedAt} ${s.lastDrill.ok ? 'ok' : 'FAILED'}, RTO ${formatDuration(s.lastDrill.rtoMs)}` : 'never'}`);
  for (const problem of s.problems) out.warn(problem);
  for (const warning of s.warnings) out.say(`  note: ${warning}`);
  return s.healthy ? ExitCode.Ok : ExitCode.Failed;
}

/** `stowage audit verify`: checks the hash chain of the audit log, and the log against the manifests' anchors and the destination copies. */
export async function runAuditVerify(engine: Engine, out: Output): Promise<ExitCode> {
  const result = await verifyAuditTrail(engine);
  out.result({ ...result, logDir: engine.logDir });
  out.say(
    `${engine.logDir}/audit.jsonl: ${result.records} record(s), ${result.ok ? 'chain intact' : 'TAMPERED'}; checked against ${result.anchors.manifests} manifest(s) and ${result.anchors.copies} destination copy(ies)`,
  );
  for (const problem of result.problems) out.say(`  ${problem}`);
  return result.ok ? ExitCode.Ok : ExitCode.Failed;
}

/** `stowage unlock`: removes locks whose holder is gone (or, with --force, any). */
export async function runUnlock(engine: Engine, out: Output, options: { source?: boolean; destination?: string[]; force?: boolean }): Promise<ExitCode> {
  const removed = await breakLock(engine.config.stateDir, engine.destinations, {
    ...(options.source ? { source: true } : {}),
    ...(options.destination?.length ? { destinations: options.destination } : {}),
    ...(options.force ? { force: true } : {}),
  });
  out.result({ removed });
  for (const lock of removed) {
    await appendAudit(engine.logDir, {
      operation: 'lock-break',
      outcome: 'ok',
      durationMs: 0,
      detail: `${lock.kind}:${lock.name}${lock.holder ? ` held by ${describeHolder(lock.holder)}` : ''}${options.force ? ' (forced)' : ''}`,
    });
  }
  if (removed.length === 0) out.say('no locks were held');
  for (const lock of removed)
    out.say(
      `removed the ${lock.kind} lock on ${lock.name}${lock.holder ? ` held by ${describeHolder(lock.holder)}` : ''}${lock.stale ? ` (${lock.stale})` : ''}`,
    );
  return ExitCode.Ok;
}

/**
 * `stowage schedule print`: the config's schedules and time zone with this installation's absolute
 * paths (node and the installed bin: cron's PATH may not hold node), or `npx -y @stowage/cli@<version>`.
 */
export async function runSchedulePrint(
  config: ResolvedConfig,
  out: Output,
  options: { format: ScheduleFormat; timeZone?: string; log?: string; npx?: boolean },
): Promise<ExitCode> {
  const script = await realpath(process.argv[1] ?? '');
  const nodeDir = dirname(process.execPath);
  const stowageCommand = options.npx
    ? [join(nodeDir, 'npx'), '-y', `@stowage/cli@${CLI_VERSION}`]
    : script.endsWith('.ts')
      ? [process.execPath, '--import', 'tsx', script]
      : [process.execPath, script];
  const { schedules, timeZone } = configSchedules(config.schedules, { timeZone: options.timeZone }, hasArchivePolicy(config));
  const localFolders = config.destinations
    .map((d) => parseDestinationUrl(d.url, config.baseDir))
    .filter((url) => url.protocol === 'file:')
    .map((url) => fileURLToPath(url));
  const text = renderSchedule(options.format, {
    schedules,
    timeZone: timeZone ?? Intl.DateTimeFormat().resolvedOptions().timeZone,
    stowageCommand,
    // npx and the bins it runs start with `#!/usr/bin/env node`.
    ...(options.npx ? { searchPath: [nodeDir, '/usr/bin', '/bin'] } : {}),
    configPath: config.configPath,
    workingDir: config.baseDir,
    ...(options.log ? { logFile: resolve(options.log) } : {}),
    mounts: [...new Set([dirname(config.source.database), ...localFolders, config.stateDir, logDirOf(config)])],
    ...(options.format === 'compose' ? composeInputs(config) : {}),
  });
  out.result({ format: options.format, text });
  if (!out.options.json) process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  return ExitCode.Ok;
}

/** Environment variables the S3 and OSS adapters read when a destination names none of its own. */
const DEFAULT_CREDENTIALS_ENV: Readonly<Record<string, readonly string[]>> = {
  's3:': ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION'],
  'oss:': ['OSS_ACCESS_KEY_ID', 'OSS_ACCESS_KEY_SECRET'],
};

/**
 * What the compose service needs beyond folders: every environment variable the config names (its
 * `…Env` fields, and the adapters' default credential variables), the key files (`…File` fields and
 * public-key `recipients`, mounted read-only), and the repository's Dockerfile when this CLI runs from a clone.
 */
function composeInputs(config: ResolvedConfig): Pick<ScheduleOptions, 'environment' | 'keyFiles' | 'buildContext'> {
  const environment = new Set<string>();
  const keyFiles = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value !== null && typeof value === 'object') {
      for (const [key, field] of Object.entries(value)) {
        if (typeof field === 'string' && key.endsWith('Env')) environment.add(field);
        else walk(field);
      }
    }
  };
  walk([config.destinations, config.encryption, config.alerts]);
  for (const destination of config.destinations) {
    const names = DEFAULT_CREDENTIALS_ENV[parseDestinationUrl(destination.url, config.baseDir).protocol];
    if (names && !Object.keys(destination.options ?? {}).some((key) => key.endsWith('Env'))) for (const name of names) environment.add(name);
  }
  const encryption = (config.encryption ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(encryption)) if (key.endsWith('File') && typeof value === 'string') keyFiles.add(resolve(config.baseDir, value));
  for (const recipient of (encryption.recipients as string[] | undefined) ?? []) keyFiles.add(resolve(config.baseDir, recipient));
  const repository = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
  return { environment: [...environment], keyFiles: [...keyFiles], ...(existsSync(join(repository, 'Dockerfile')) ? { buildContext: repository } : {}) };
}

/** `stowage alert test`: a test message through every configured channel. */
export async function runAlertTest(engine: Engine, out: Output): Promise<ExitCode> {
  if (!engine.config.alerts) throw new UsageError('there is no alerts section in the config; add channels first');
  const results = await engine.alerts.test();
  out.result({ channels: results });
  for (const r of results) out.say(`${r.channel}: ${r.ok ? 'sent' : `FAILED — ${r.error}`}`);
  return results.every((r) => r.ok) ? ExitCode.Ok : ExitCode.Failed;
}

/** A lock that has been held longer than `alerts.lockHeldMinutes` (a hung or forgotten run) raises an alert. */
async function alertOnLongHeldLock(engine: Engine, error: unknown): Promise<void> {
  if (!isStowageError(error, LockErrorCode.Held) || !engine.config.alerts) return;
  const { lock, holder } = error.context as { lock?: string; holder?: { startedAt?: string } & Parameters<typeof describeHolder>[0] };
  const startedAt = holder?.startedAt ? Date.parse(holder.startedAt) : Number.NaN;
  const heldMs = Date.now() - startedAt;
  if (!lock || !holder || !(heldMs > engine.config.alerts.lockHeldMinutes * 60_000)) return;
  await engine.alerts.raise((a, at) => a.lockHeld({ ...at, since: new Date(startedAt), lock, holder: describeHolder(holder), heldFor: formatAge(heldMs) }));
}
