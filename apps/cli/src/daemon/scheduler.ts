import { Cron } from 'croner';
import { formatAge } from '@stowage/core';
import { UsageError } from '../exit-codes.js';
import { formatDuration } from '../output.js';
import type { ScheduledJob } from '../schedule.js';

/*
 * The daemon's scheduler: runs the jobs of a schedule one at a time on a clock, knowing nothing of
 * engines or locks (the caller's `run` does the work).
 *
 * - One job at a time. A job that comes due while another runs is queued once (a duplicate is
 *   skipped, and an incremental is skipped when a full is already waiting); each case is logged.
 * - Wall-clock steps: the daemon wakes at least every `checkEveryMs` and plans each job's next run
 *   from the time it finds. A forward step runs a missed job once, not once per missed slot; a
 *   backward step does not repeat runs already taken, unless it is larger than `CLOCK_RESET_MS`
 *   (a clock that was set wrong), when the schedule is planned afresh as cron does.
 * - On start, a full or incremental backup is taken at once if the newest is older than its
 *   schedule's interval.
 */

/** What the daemon runs, in the order jobs due at the same moment are queued. */
const JOBS: readonly ScheduledJob[] = ['full', 'incremental', 'cleanup', 'archive', 'verify', 'drill'];

export const TITLES: Readonly<Record<ScheduledJob, string>> = {
  full: 'full backup',
  incremental: 'incremental backup',
  cleanup: 'cleanup',
  archive: 'archive run',
  verify: 'verify',
  drill: 'drill',
};

/** Cron expressions of five fields, or six with seconds first. */
const CRON_MODE = '5-or-6-parts';

/** A backward clock step larger than this is a reset: the schedule is planned afresh from the new time. */
export const CLOCK_RESET_MS = 3 * 3600_000;

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
export function nextRuns(
  schedules: Partial<Record<ScheduledJob, string>>,
  timeZone: string | undefined,
  from: Date,
): Partial<Record<ScheduledJob, Date | null>> {
  return Object.fromEntries([...parseSchedules(schedules, timeZone)].map(([job, cron]) => [job, cron.nextRun(from)]));
}

/**
 * The backup to take at once on start: a full when the newest full is older than the interval of
 * its schedule around `now` (or there is none), else an incremental on the same terms (a full
 * counts as its recovery point too). Undefined when neither was missed.
 */
export function missedOnStart(
  newest: NewestBackups,
  schedules: Partial<Record<ScheduledJob, string>>,
  now: Date,
  timeZone?: string,
): { job: 'full' | 'incremental'; why: string } | undefined {
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
    if (ageMs > intervalMs)
      return {
        job,
        why: `missed: the newest ${what} is ${formatAge(ageMs)} old, more than the ${formatAge(intervalMs)} between runs of '${cron.getPattern()}'; running the ${TITLES[job]} now`,
      };
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
      if (lateMs > checkEveryMs)
        this.#log(`${TITLES[job]} was due at ${isoSeconds(due)}, ${formatAge(lateMs)} ago (a clock step or a sleeping machine): running it once`);
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

/** `2026-11-26T02:00:00Z`. */
export function isoSeconds(time: Date): string {
  return time.toISOString().replace(/\.\d+Z$/, 'Z');
}
