import { once } from 'node:events';
import { builtinRegistry } from '@stowage/adapters';
import { formatAge, loadConfig, openEngine, TOOL_VERSION, type Engine, type EngineOptions } from '@stowage/core';
import { configPath, waitMs, type GlobalOptions } from '../commands.js';
import { ExitCode, exitCodeFor, UsageError } from '../exit-codes.js';
import { Output } from '../output.js';
import { configSchedules, hasArchivePolicy, type ScheduledJob } from '../schedule.js';
import { startDaemonHttp, type DaemonHttpOptions } from './http.js';
import { DEFAULT_LOCK_WAIT_MS, newestBackups, runJob, type JobRunOptions } from './jobs.js';
import { acquireDaemonLock, type DaemonLock } from './lock.js';
import { recover } from './recovery.js';
import { Daemon, isoSeconds } from './scheduler.js';

/*
 * `stowage daemon`: runs the config's schedules in one long-lived process (the scheduler), each
 * job under the locks of the command run by hand (jobs), one daemon per state folder (lock).
 *
 * - On start: leftovers of a daemon or command killed mid-run are cleared under the locks
 *   (recovery), then the scheduler takes a missed full or incremental at once.
 * - SIGTERM/SIGINT: no new work; the job under way gets a grace period. Core operations cannot be
 *   cancelled, so past it the process exits non-zero; a backup commits by writing its manifest
 *   last, so this never leaves a half-committed backup, and the next start recovers the rest.
 */

/** How long SIGTERM waits for the job under way: within the 2 min `stop_grace_period` of `schedule print --format compose`. */
export const DEFAULT_GRACE_MS = 100_000;

export interface DaemonCommandOptions extends DaemonHttpOptions {
  /** Cron expressions by job over the config's `schedules` (`false` turns one off). */
  schedules?: Partial<Record<ScheduledJob, string | false>>;
  /** Time zone of the expressions, over the config's `schedules.timeZone`. */
  timeZone?: string;
  /** `--grace`: how long SIGTERM/SIGINT waits for the job under way, e.g. `100s` (the default), `5m`. */
  grace?: string;
  /** Engine options (tests inject faults). */
  engineOptions?: EngineOptions;
}

/**
 * `stowage daemon`: runs the schedules of the config (`schedules`, else `DEFAULT_SCHEDULES`) until
 * SIGTERM or SIGINT, one log line per event on stdout (JSON lines with `--json`). `--wait` bounds
 * how long a job waits for a lock (default 30 min). Exit 0 after a clean stop; 1 when the job under
 * way outlived `--grace` or a second daemon already runs for the config; 2 for a bad config.
 */
export async function runDaemon(globals: GlobalOptions, options: DaemonCommandOptions = {}): Promise<number> {
  const log = (message: string) => {
    const at = isoSeconds(new Date());
    process.stdout.write(`${globals.json ? JSON.stringify({ at, message }) : `${at} ${message}`}\n`);
  };
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stop.signal.aborted) return stop.abort(signal);
    log(`${signal} again: exiting at once; the next start recovers what the job under way leaves`);
    process.exit(ExitCode.Failed);
  };
  let lock: DaemonLock | undefined;
  let closeHttp: (() => Promise<void>) | undefined;
  let engine: Engine | undefined;
  try {
    if (options.authTokenEnv && !options.http) throw new UsageError('--auth-token-env goes with --http HOST:PORT (the status page)');
    const config = await loadConfig(configPath(globals));
    const { schedules, timeZone } = configSchedules(config.schedules, options, hasArchivePolicy(config));
    const graceMs = options.grace === undefined ? DEFAULT_GRACE_MS : duration('--grace', options.grace);
    const jobOptions: JobRunOptions = {
      log,
      signal: stop.signal,
      lockWaitMs: globals.wait === undefined ? DEFAULT_LOCK_WAIT_MS : waitMs(globals.wait),
    };
    const open = await openEngine(config, { registry: builtinRegistry(), onWarning: (message) => log(`warning: ${message}`), ...options.engineOptions });
    engine = open;
    const daemon = new Daemon({ schedules, timeZone, log, run: (job) => runJob(open, job, jobOptions), newest: () => newestBackups(open) });
    lock = await acquireDaemonLock(config.stateDir);
    closeHttp = await startDaemonHttp(open, options, log);
    process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
    log(
      `stowage daemon ${TOOL_VERSION} started for ${config.configPath}, pid ${process.pid}, time zone ${timeZone ?? `${Intl.DateTimeFormat().resolvedOptions().timeZone} (this machine's)`}`,
    );
    if (lock.tookOver) log(`took over the daemon lock of a daemon that is gone (${lock.tookOver})`);
    await recover(open, jobOptions).catch((error: unknown) => log(`recovery: skipped: ${(error as Error).message}`));
    if (!stop.signal.aborted) await daemon.start();
    if (!stop.signal.aborted) await once(stop.signal, 'abort');
    log(`${String(stop.signal.reason)}: stopping`);
    if (!(await daemon.stop(graceMs))) {
      log(`the job under way did not finish within ${formatAge(graceMs)}: exiting; the next start takes over its locks and clears its leftovers`);
      await lock.release();
      process.exit(ExitCode.Failed);
    }
    log('stopped');
    return ExitCode.Ok;
  } catch (error) {
    new Output({ json: false, quiet: false }, 'stowage').error(error);
    return exitCodeFor(error);
  } finally {
    process.off('SIGTERM', onSignal).off('SIGINT', onSignal);
    await closeHttp?.();
    await lock?.release();
    await engine?.close();
  }
}

/** A duration option (`30s`, `10m`, `1h`) in ms. */
function duration(option: string, text: string): number {
  try {
    return waitMs(text);
  } catch {
    throw new UsageError(`${option}: '${text}' is not a duration (e.g. 30s, 10m, 1h)`);
  }
}
