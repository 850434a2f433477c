import { builtinRegistry } from '@stowage/adapters';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { once } from 'node:events';
import type { Server } from 'node:http';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cron } from 'croner';
import {
  acquireDestinationLock,
  acquireDestinationLocks,
  acquireSourceLock,
  backup,
  cleanup,
  describeHolder,
  drill,
  formatAge,
  idFromReference,
  listBackups,
  loadConfig,
  LockError,
  LockErrorCode,
  openEngine,
  withoutDestinations,
  requireDestinations,
  TOOL_VERSION,
  verify,
  type Engine,
  type EngineOptions,
  type Lock,
} from '@stowage/core';
import { systemErrorCode } from '@stowage/errors';
import { BACKUP_OPERATIONS, configPath, waitMs, type GlobalOptions } from './commands.js';
import { ExitCode, exitCodeFor, UsageError } from './exit-codes.js';
import { formatBytes, formatDuration, Output } from './output.js';
import { serveMetrics } from './metrics.js';
import { serveDashboard } from './dashboard/server.js';
import { configSchedules, type ScheduledJob } from './schedule.js';

/*
 * `stowage daemon`: runs the config's schedules in one long-lived process.
 *
 * - One job at a time. A job that comes due while another runs is queued once (a duplicate is
 *   skipped, and an incremental is skipped when a full is already waiting); each case is logged.
 * - Every job takes the same locks as the command run by hand, so cron, a person at the console
 *   and the daemon never run conflicting operations; a lock held elsewhere is waited for (logged).
 * - Wall-clock steps: the daemon wakes at least every `checkEveryMs` and plans each job's next run
 *   from the time it finds. A forward step runs a missed job once, not once per missed slot; a
 *   backward step does not repeat runs already taken, unless it is larger than `CLOCK_RESET_MS`
 *   (a clock that was set wrong), when the schedule is planned afresh as cron does.
 * - On start: leftovers of a daemon or command killed mid-run are cleared under the locks, and a
 *   full or incremental backup is taken at once if the newest is older than its schedule's interval.
 * - SIGTERM/SIGINT: no new work; the job under way gets a grace period. Core operations cannot be
 *   cancelled, so past it the process exits non-zero; a backup commits by writing its manifest
 *   last, so this never leaves a half-committed backup, and the next start recovers the rest.
 */

/** What the daemon runs, in the order jobs due at the same moment are queued. */
const JOBS: readonly ScheduledJob[] = ['full', 'incremental', 'cleanup', 'verify', 'drill'];

const TITLES: Readonly<Record<ScheduledJob, string>> = {
  full: 'full backup',
  incremental: 'incremental backup',
  cleanup: 'cleanup',
  verify: 'verify',
  drill: 'drill',
};

/** Cron expressions of five fields, or six with seconds first. */
const CRON_MODE = '5-or-6-parts';

/** A backward clock step larger than this is a reset: the schedule is planned afresh from the new time. */
export const CLOCK_RESET_MS = 3 * 3600_000;
/** How long a job waits for a lock held by another stowage before it is skipped (as `schedule print`'s `--wait 30m`). */
export const DEFAULT_LOCK_WAIT_MS = 30 * 60_000;
/** How long SIGTERM waits for the job under way: within the 2 min `stop_grace_period` of `schedule print --format compose`. */
export const DEFAULT_GRACE_MS = 100_000;

/** Wall-clock time and elapsed-time timers; tests pass one they control. */
export interface Clock {
  now(): Date;
  /** Calls `fn` once `ms` of elapsed time has passed (unaffected by wall-clock steps); returns a cancel function. */
  setTimer(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => new Date(),
  setTimer(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
};

/** When the newest backups were taken: a full, and a full or incremental (either is a recovery point). */
export interface NewestBackups {
  full?: Date | undefined;
  fullOrIncremental?: Date | undefined;
}

export interface DaemonOptions {
  /** Cron expressions by job; a job left out does not run. */
  schedules: Partial<Record<ScheduledJob, string>>;
  /** IANA time zone of the expressions, e.g. `Asia/Shanghai` (default: the machine's). */
  timeZone?: string | undefined;
  /** Runs one job and returns a line about it (`full_backup_… ok`); a throw is logged as FAILED. */
  run: (job: ScheduledJob, signal: AbortSignal) => Promise<string>;
  /** The newest backups, for the runs missed while the daemon was down (none checked without it). */
  newest?: () => Promise<NewestBackups>;
  log: (message: string) => void;
  clock?: Clock;
  /** The longest the daemon sleeps before it reads the clock again (default 60 s). */
  checkEveryMs?: number;
}

/** Checks the expressions and the time zone; a `UsageError` names the problem as `schedules.<key>`. */
export function parseSchedules(schedules: Partial<Record<ScheduledJob, string>>, timeZone?: string): Map<ScheduledJob, Cron> {
  if (timeZone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone });
    } catch {
      throw new UsageError(`schedules.timeZone: unknown time zone '${timeZone}'; use an IANA name such as Asia/Shanghai`);
    }
  }
  const crons = new Map<ScheduledJob, Cron>();
  for (const job of JOBS) {
    const expression = schedules[job];
    if (expression === undefined) continue;
    try {
      crons.set(job, new Cron(expression.trim(), { ...(timeZone !== undefined && { timezone: timeZone }), mode: CRON_MODE }));
    } catch (error) {
      throw new UsageError(`schedules.${job}: '${expression}' is not a cron expression: ${(error as Error).message.replace(/^CronPattern: /, '')}`);
    }
  }
  if (crons.size === 0) throw new UsageError('schedules: every job is turned off, so the daemon has nothing to do');
  return crons;
}

/** Each scheduled job's first run after `from` (null: the expression matches no later time). */
export function nextRuns(schedules: Partial<Record<ScheduledJob, string>>, timeZone: string | undefined, from: Date): Partial<Record<ScheduledJob, Date | null>> {
  return Object.fromEntries([...parseSchedules(schedules, timeZone)].map(([job, cron]) => [job, cron.nextRun(from)]));
}

/**
 * The backup to take at once on start: a full when the newest full is older than the interval of
 * its schedule around `now` (or there is none), else an incremental on the same terms (a full
 * counts as its recovery point too). Undefined when neither was missed.
 */
export function missedOnStart(newest: NewestBackups, schedules: Partial<Record<ScheduledJob, string>>, now: Date, timeZone?: string): { job: 'full' | 'incremental'; why: string } | undefined {
  const crons = parseSchedules(schedules, timeZone);
  const candidates = [
    ['full', newest.full, 'full backup'],
    ['incremental', newest.fullOrIncremental, 'full or incremental backup'],
  ] as const;
  for (const [job, taken, what] of candidates) {
    const cron = crons.get(job);
    const previous = cron?.previousRuns(1, now)[0];
    const next = cron?.nextRun(now);
    if (!previous || !next) continue;
    const intervalMs = next.getTime() - previous.getTime();
    if (taken === undefined) return { job, why: `there is no ${what} yet: running the ${TITLES[job]} now` };
    const ageMs = now.getTime() - taken.getTime();
    if (ageMs > intervalMs) return { job, why: `missed: the newest ${what} is ${formatAge(ageMs)} old, more than the ${formatAge(intervalMs)} between runs of '${cron.getPattern()}'; running the ${TITLES[job]} now` };
  }
  return undefined;
}

/** Runs the jobs of a schedule, one at a time, on a clock. */
export class Daemon {
  readonly #options: DaemonOptions;
  readonly #clock: Clock;
  readonly #crons: ReadonlyMap<ScheduledJob, Cron>;
  readonly #next = new Map<ScheduledJob, Date>();
  readonly #queue: ScheduledJob[] = [];
  readonly #stopping = new AbortController();
  #running: { job: ScheduledJob; done: Promise<void> } | undefined;
  #lastTick = 0;
  #cancelTimer: (() => void) | undefined;

  /** Validates the schedules (a `UsageError` when one is invalid); nothing runs before `start`. */
  constructor(options: DaemonOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#crons = parseSchedules(options.schedules, options.timeZone);
  }

  /** Plans every job, queues a backup missed while the daemon was down, and starts the clock. */
  async start(): Promise<void> {
    const now = this.#clock.now();
    this.#lastTick = now.getTime();
    for (const [job, cron] of this.#crons) {
      this.#plan(job, cron, now);
      const next = this.#next.get(job);
      if (next) this.#log(`${TITLES[job]}: '${cron.getPattern()}', next at ${isoSeconds(next)}`);
    }
    const newest = await this.#options.newest?.().catch((error: unknown) => {
      this.#log(`cannot tell whether a backup was missed: ${(error as Error).message}`);
      return undefined;
    });
    const missed = newest && missedOnStart(newest, this.#options.schedules, this.#clock.now(), this.#options.timeZone);
    if (missed) {
      this.#log(missed.why);
      this.#enqueue(missed.job);
    }
    this.#pump();
    this.#arm();
  }

  /**
   * Stops taking work: queued jobs are dropped, a job waiting for a lock gives up, and the job
   * under way gets `graceMs` to finish. True when nothing runs any more.
   */
  async stop(graceMs: number): Promise<boolean> {
    this.#stopping.abort();
    this.#cancelTimer?.();
    const dropped = this.#queue.splice(0);
    if (dropped.length) this.#log(`dropped the queued ${dropped.map((job) => TITLES[job]).join(', ')}`);
    const running = this.#running;
    if (!running) return true;
    this.#log(`waiting up to ${formatAge(graceMs)} for the ${TITLES[running.job]} under way to finish`);
    let cancel = () => {};
    const expired = new Promise<false>((resolve) => (cancel = this.#clock.setTimer(graceMs, () => resolve(false))));
    const finished = await Promise.race([running.done.then(() => true), expired]);
    cancel();
    return finished;
  }

  #log(message: string): void {
    this.#options.log(message);
  }

  /** Reads the clock, queues the jobs that came due (each once, however many runs a clock step skipped). */
  #tick(): void {
    const now = this.#clock.now();
    const back = this.#lastTick - now.getTime();
    this.#lastTick = now.getTime();
    if (back > CLOCK_RESET_MS) {
      this.#log(`the clock went back ${formatAge(back)}: planning every job afresh from ${isoSeconds(now)}`);
      for (const [job, cron] of this.#crons) this.#plan(job, cron, now);
    } else if (back > 1000) {
      this.#log(`the clock went back ${formatAge(back)}: runs already taken are not repeated`);
    }
    const checkEveryMs = this.#options.checkEveryMs ?? 60_000;
    for (const [job, cron] of this.#crons) {
      const due = this.#next.get(job);
      if (due === undefined || due > now) continue;
      const lateMs = now.getTime() - due.getTime();
      if (lateMs > checkEveryMs) this.#log(`${TITLES[job]} was due at ${isoSeconds(due)}, ${formatAge(lateMs)} ago (a clock step or a sleeping machine): running it once`);
      this.#enqueue(job);
      this.#plan(job, cron, now);
    }
    this.#pump();
    this.#arm();
  }

  #plan(job: ScheduledJob, cron: Cron, from: Date): void {
    const next = cron.nextRun(from);
    if (next) {
      this.#next.set(job, next);
    } else {
      this.#next.delete(job);
      this.#log(`${TITLES[job]}: '${cron.getPattern()}' matches no later time; it will not run again`);
    }
  }

  /** Sleeps until the next run is due, or `checkEveryMs` at most. */
  #arm(): void {
    this.#cancelTimer?.();
    if (this.#stopping.signal.aborted) return;
    const soonest = Math.min(...[...this.#next.values()].map((date) => date.getTime()));
    const delay = Math.max(0, Math.min(soonest - this.#clock.now().getTime(), this.#options.checkEveryMs ?? 60_000));
    this.#cancelTimer = this.#clock.setTimer(delay, () => this.#tick());
  }

  #enqueue(job: ScheduledJob): void {
    if (this.#stopping.signal.aborted) return;
    if (this.#queue.includes(job)) return this.#log(`${TITLES[job]} due again while still waiting to run: skipped`);
    if (job === 'incremental' && this.#queue.includes('full')) return this.#log('incremental backup skipped: the full backup waiting to run covers it');
    this.#queue.push(job);
    if (this.#running) this.#log(`${TITLES[job]} due while the ${TITLES[this.#running.job]} runs: queued`);
  }

  /** Starts the next queued job unless one runs. */
  #pump(): void {
    if (this.#running || this.#stopping.signal.aborted) return;
    const job = this.#queue.shift();
    if (!job) return;
    const started = performance.now();
    const took = () => formatDuration(performance.now() - started);
    const done = Promise.resolve()
      .then(() => this.#options.run(job, this.#stopping.signal))
      .then(
        (summary) => this.#log(`${TITLES[job]} ${summary} ${took()}`),
        (error: unknown) => this.#log(`${TITLES[job]} FAILED: ${error instanceof Error ? error.message : String(error)} ${took()}`),
      )
      .finally(() => {
        this.#running = undefined;
        this.#pump();
      });
    this.#running = { job, done };
  }
}

// ——— jobs on an engine ———

/** The locks of each job, as the same command takes them when run by hand (see `LockPolicy`). */
const LOCKS: Readonly<Record<ScheduledJob | 'recovery', { kind: 'exclusive' | 'readers'; operation: string }>> = {
  full: { kind: 'exclusive', operation: 'backup' },
  incremental: { kind: 'exclusive', operation: 'backup' },
  cleanup: { kind: 'exclusive', operation: 'cleanup' },
  verify: { kind: 'readers', operation: 'verify' },
  drill: { kind: 'readers', operation: 'drill' },
  recovery: { kind: 'exclusive', operation: 'daemon-recovery' },
};

async function backupJob(engine: Engine, type: 'full' | 'incremental'): Promise<string> {
  const { manifest, outcome } = await backup(engine, { type });
  return `${manifest.id} ${outcome}${manifest.fullBecause ? ` (a full: ${manifest.fullBecause})` : ''}`;
}

/** The core operation behind each job, and the line it logs. */
const OPERATIONS: Readonly<Record<ScheduledJob, (engine: Engine) => Promise<string>>> = {
  full: (engine) => backupJob(engine, 'full'),
  incremental: (engine) => backupJob(engine, 'incremental'),
  async cleanup(engine) {
    const r = await cleanup(engine);
    const failed = r.failures.map((f) => `${f.destination}: ${f.message}`).join('; ');
    return `${failed ? `FAILED at ${failed};` : 'ok:'} removed ${r.removed.length} item(s), ${formatBytes(r.bytesFreed)} freed`;
  },
  async verify(engine) {
    const results = await verify(engine, { all: true });
    const damaged = results.filter((r) => !r.ok).map((r) => r.backupId);
    return damaged.length ? `FAILED: damage in ${damaged.join(', ')}` : `ok: ${results.length} backup(s) intact`;
  },
  async drill(engine) {
    const r = await drill(engine);
    return `of ${r.backupId} from ${r.destination} ${r.ok ? 'ok' : `FAILED: ${r.problems.join('; ')}`}, RTO ${formatDuration(r.rtoMs)}`;
  },
};

export interface JobRunOptions {
  log: (message: string) => void;
  /** Aborts waiting for a lock (the daemon is stopping); a job whose locks are not all taken does not start. */
  signal?: AbortSignal;
  /** How long to wait for a lock held by another stowage (default 30 min). */
  lockWaitMs?: number;
  /** How often a held lock is tried again (default 1 s). */
  pollMs?: number;
}

/**
 * Runs a job on `engine` under its locks and returns its line. A lock held by another stowage is
 * waited for (logged once) up to `lockWaitMs`, then the run is skipped; a stale one is taken over.
 */
export async function runJob(engine: Engine, job: ScheduledJob, options: JobRunOptions): Promise<string> {
  let held: Lock[];
  let usable: Engine;
  try {
    ({ held, engine: usable } = await takeLocks(engine, job, { ...options, log: (message) => options.log(`${TITLES[job]} ${message}`) }));
  } catch (error) {
    if (options.signal?.aborted) return 'not started: the daemon is stopping';
    if (error instanceof LockError && error.code === LockErrorCode.Held) return `skipped after waiting ${formatAge(options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS)}: ${error.message}`;
    throw error;
  }
  try {
    return await OPERATIONS[job](usable);
  } finally {
    await releaseAll(held);
  }
}

/**
 * Clears what a daemon or command killed mid-run left behind. Under the exclusive locks (no
 * backup, cleanup, sync, restore or drill runs meanwhile; locks of a dead pid are taken over):
 * the staging folder and drill scratch folders are emptied, and at each destination whose lock is
 * exclusive, artifacts without a manifest are deleted — a partial upload, never committed, so
 * never part of a backup. (Elsewhere `stowage cleanup` removes them once an hour old.)
 */
export async function recover(engine: Engine, options: JobRunOptions): Promise<void> {
  const log = (message: string) => options.log(`recovery: ${message}`);
  const { held, engine: usable } = await takeLocks(engine, 'recovery', { ...options, log });
  try {
    const { stagingDir, config } = usable;
    const staged = (await readdir(stagingDir).catch(() => [] as string[])).map((name) => join(stagingDir, name));
    const scratch = (await readdir(config.stateDir)).filter((name) => name.startsWith('drill-')).map((name) => join(config.stateDir, name));
    await Promise.all([...staged, ...scratch].map((path) => rm(path, { recursive: true, force: true })));
    const orphans: string[] = [];
    for (const destination of usable.destinations) {
      if (!held.some((lock) => lock.kind === 'destination' && lock.name === destination.name && lock.exclusive)) continue;
      const keys: string[] = [];
      const committed = new Set<string>();
      for await (const { key } of destination.adapter.list('')) {
        const id = idFromReference(key);
        if (id === undefined) continue;
        keys.push(key);
        if (key.endsWith('.manifest.json')) committed.add(id);
      }
      const doomed = keys.filter((key) => !committed.has(idFromReference(key)!));
      if (doomed.length) await destination.adapter.delete(doomed);
      orphans.push(...doomed.map((key) => `${destination.name}:${key}`));
    }
    if (staged.length + scratch.length) log(`removed ${staged.length} staging and ${scratch.length} scratch leftover(s) of an interrupted run`);
    if (orphans.length) log(`deleted ${orphans.length} artifact(s) of an interrupted backup that was never committed: ${orphans.join(', ')}`);
  } finally {
    await releaseAll(held);
  }
}

/**
 * Takes a job's locks; a destination whose lock cannot be taken (read-only, full, unreachable) is
 * left out of the run (`engine` is the engine without it), so one region down stops no job.
 */
async function takeLocks(engine: Engine, job: ScheduledJob | 'recovery', options: JobRunOptions): Promise<{ held: Lock[]; engine: Engine }> {
  const { kind, operation } = LOCKS[job];
  const request = { operation, command: `stowage daemon (${job})` };
  const lockOptions = { onRenewFailed: (error: unknown) => options.log(`lost a lock: ${(error as Error).message}`) };
  const held: Lock[] = [];
  try {
    if (kind === 'exclusive') held.push(await patiently(() => acquireSourceLock(engine.config.stateDir, request, lockOptions), options));
    const { locks, unavailable } = await acquireDestinationLocks(engine.destinations, (destination) => patiently(() => acquireDestinationLock(destination, request, lockOptions), options));
    held.push(...locks);
    for (const lock of held) if (lock.broke) options.log(`took over the stale lock on ${lock.name} (${lock.broke.stale}) of ${describeHolder(lock.broke.holder)}`);
    const usable = withoutDestinations(engine, unavailable);
    if (!BACKUP_OPERATIONS.includes(operation)) requireDestinations(usable);
    return { held, engine: usable };
  } catch (error) {
    await releaseAll(held);
    throw error;
  }
}

/** Takes a lock, trying again while another stowage holds it (logged once) for up to `lockWaitMs`. */
async function patiently(take: () => Promise<Lock>, options: JobRunOptions): Promise<Lock> {
  const waitMs = options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
  const deadline = performance.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    if (options.signal?.aborted) throw new Error('the daemon is stopping');
    try {
      return await take();
    } catch (error) {
      if (!(error instanceof LockError && error.code === LockErrorCode.Held) || performance.now() >= deadline) throw error;
      if (attempt === 0) options.log(`waits up to ${formatAge(waitMs)} for a lock: ${error.message}`);
    }
    const pause = Math.min(options.pollMs ?? 1000, Math.max(0, deadline - performance.now()));
    await sleep(pause, undefined, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
  }
}

async function releaseAll(locks: Lock[]): Promise<void> {
  for (const lock of [...locks].reverse()) await lock.release().catch(() => undefined);
}

async function newestBackups(engine: Engine): Promise<NewestBackups> {
  const entries = await listBackups(engine);
  const newest = (types: readonly string[]) => {
    const times = entries.filter((e) => types.includes(e.manifest.type)).map((e) => Date.parse(e.manifest.createdAt));
    return times.length ? new Date(Math.max(...times)) : undefined;
  };
  return { full: newest(['full']), fullOrIncremental: newest(['full', 'incremental']) };
}

// ——— one daemon per state folder ———

/** The daemon's own lock, `<stateDir>/locks/daemon.lock`. */
export interface DaemonLock {
  readonly path: string;
  /** Why the lock found in place was stale, when one was taken over. */
  readonly tookOver?: string;
  /** Removes the lock if it is still ours. */
  release(): Promise<void>;
}

/** Tokens of the daemon locks this process holds (a second daemon in the same process is refused too). */
const ownTokens = new Set<string>();

/**
 * Takes the daemon lock of a state folder (so of a config): a file holding pid, host, boot id and
 * start time, created exclusively (written aside, then linked into place). A lock whose daemon
 * is gone (a dead pid on this host, a reboot since) is taken over; a live one fails with
 * `stowage.lock.held` naming it.
 */
export async function acquireDaemonLock(stateDir: string): Promise<DaemonLock> {
  const path = join(stateDir, 'locks', 'daemon.lock');
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const token = randomBytes(8).toString('hex');
  const text = `${JSON.stringify({ token, pid: process.pid, host: hostname(), bootId: bootId(), startedAt: isoSeconds(new Date()) })}\n`;
  let tookOver: string | undefined;
  for (;;) {
    const temp = `${path}.${token}`;
    await writeFile(temp, text, { mode: 0o600 });
    try {
      await link(temp, path);
      break;
    } catch (error) {
      if (systemErrorCode(error) !== 'EEXIST') throw error;
    } finally {
      await unlink(temp);
    }
    const current = await readFile(path, 'utf8').catch(() => undefined);
    if (current === undefined) continue;
    const stale = staleReason(current);
    if (stale === undefined) {
      throw new LockError(LockErrorCode.Held, `another stowage daemon (${describeDaemon(current)}) runs with the state folder ${stateDir}; stop it first, or delete ${path} if it is gone`, { context: { lock: path } });
    }
    // Set aside and compare: another daemon starting at this moment may have replaced it.
    const aside = `${path}.stale-${token}`;
    try {
      await rename(path, aside);
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') continue;
      throw error;
    }
    if ((await readFile(aside, 'utf8')) === current) tookOver = `${describeDaemon(current)}: ${stale}`;
    else await link(aside, path).catch(() => undefined);
    await unlink(aside);
  }
  ownTokens.add(token);
  return {
    path,
    ...(tookOver === undefined ? {} : { tookOver }),
    async release() {
      ownTokens.delete(token);
      if ((await readFile(path, 'utf8').catch(() => undefined)) === text) await unlink(path).catch(() => undefined);
    },
  };
}

interface DaemonHolder {
  token: string;
  pid: number;
  host: string;
  bootId?: string;
  startedAt: string;
}

function parseDaemonHolder(text: string): DaemonHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<DaemonHolder> | null;
    return typeof value?.token === 'string' && Number.isInteger(value.pid) && typeof value.host === 'string' ? (value as DaemonHolder) : undefined;
  } catch {
    return undefined;
  }
}

function describeDaemon(text: string): string {
  const holder = parseDaemonHolder(text);
  return holder ? `pid ${holder.pid} on host ${holder.host}, since ${holder.startedAt}` : 'an unreadable lock';
}

/** Why a daemon lock is stale, or undefined while its daemon may run (another host's is never judged). */
function staleReason(text: string): string | undefined {
  const holder = parseDaemonHolder(text);
  if (!holder) return 'the lock cannot be read';
  if (holder.host !== hostname()) return undefined;
  const boot = bootId();
  if (holder.bootId && boot && holder.bootId !== boot) return 'the host has restarted since';
  if (holder.pid === process.pid) return ownTokens.has(holder.token) ? undefined : 'its pid is now this process';
  try {
    process.kill(holder.pid, 0);
    return undefined;
  } catch (error) {
    return systemErrorCode(error) === 'ESRCH' ? `pid ${holder.pid} no longer runs` : undefined;
  }
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
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

function isoSeconds(time: Date): string {
  return time.toISOString().replace(/\.\d+Z$/, 'Z');
}

// ——— the command ———

export interface DaemonCommandOptions {
  /** Cron expressions by job over the config's `schedules` (`false` turns one off). */
  schedules?: Partial<Record<ScheduledJob, string | false>>;
  /** Time zone of the expressions, over the config's `schedules.timeZone`. */
  timeZone?: string;
  /** `--grace`: how long SIGTERM/SIGINT waits for the job under way, e.g. `100s` (the default), `5m`. */
  grace?: string;
  /** `--metrics-listen HOST:PORT`: serve Prometheus metrics at /metrics while the daemon runs. */
  metricsListen?: string;
  /** `--http HOST:PORT`: serve the status page while the daemon runs. */
  http?: string;
  /** `--auth-token-env NAME`: the status page's bearer token (needed for an address beyond loopback). */
  authTokenEnv?: string;
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
  let metrics: Server | undefined;
  let page: Server | undefined;
  let engine: Engine | undefined;
  try {
    if (options.authTokenEnv && !options.http) throw new UsageError('--auth-token-env goes with --http HOST:PORT (the status page)');
    const config = await loadConfig(configPath(globals));
    const { schedules, timeZone } = configSchedules(config.schedules, options);
    const graceMs = options.grace === undefined ? DEFAULT_GRACE_MS : duration('--grace', options.grace);
    const jobOptions: JobRunOptions = { log, signal: stop.signal, lockWaitMs: globals.wait === undefined ? DEFAULT_LOCK_WAIT_MS : duration('--wait', globals.wait) };
    const open = await openEngine(config, { registry: builtinRegistry(), onWarning: (message) => log(`warning: ${message}`), ...options.engineOptions });
    engine = open;
    const daemon = new Daemon({ schedules, timeZone, log, run: (job) => runJob(open, job, jobOptions), newest: () => newestBackups(open) });
    lock = await acquireDaemonLock(config.stateDir);
    if (options.metricsListen) {
      metrics = await serveMetrics(open, options.metricsListen);
      log(`metrics at http://${options.metricsListen}/metrics`);
    }
    if (options.http) {
      page = await serveDashboard(open, { listen: options.http, flag: '--http', ...(options.authTokenEnv ? { authTokenEnv: options.authTokenEnv } : {}) });
      log(`status page at http://${options.http}/`);
    }
    process.on('SIGTERM', onSignal).on('SIGINT', onSignal);
    log(`stowage daemon ${TOOL_VERSION} started for ${config.configPath}, pid ${process.pid}, time zone ${timeZone ?? `${Intl.DateTimeFormat().resolvedOptions().timeZone} (this machine's)`}`);
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
    await new Promise((resolve) => (metrics ? metrics.close(resolve) : resolve(undefined)));
    page?.closeAllConnections();
    await new Promise((resolve) => (page ? page.close(resolve) : resolve(undefined)));
    await lock?.release();
    await engine?.close();
  }
}
