import { setTimeout as sleep } from 'node:timers/promises';
import {
  alertOnStatus,
  backup,
  cleanup,
  drill,
  runArchive,
  formatAge,
  listBackups,
  LockError,
  LockErrorCode,
  status,
  verify,
  type Engine,
  type Lock,
} from '@stowage/core';
import { releaseLocks, takeLocks, type LockPolicy } from '../commands.js';
import { formatBytes, formatDuration } from '../output.js';
import type { ScheduledJob } from '../schedule.js';
import { TITLES, type NewestBackups } from './scheduler.js';

/*
 * The daemon's jobs on an engine. Every job takes the same locks as the command run by hand, so
 * cron, a person at the console and the daemon never run conflicting operations; a lock held
 * elsewhere is waited for (logged), a destination whose lock cannot be taken is left out.
 */

/** How long a job waits for a lock held by another stowage before it is skipped (as `schedule print`'s `--wait 30m`). */
export const DEFAULT_LOCK_WAIT_MS = 30 * 60_000;

/** The locks of each job (and of the recovery on start), as the same command takes them when run by hand. */
const LOCKS: Readonly<Record<ScheduledJob | 'recovery', LockPolicy>> = {
  full: { kind: 'exclusive', operation: 'backup' },
  incremental: { kind: 'exclusive', operation: 'backup' },
  cleanup: { kind: 'exclusive', operation: 'cleanup' },
  archive: { kind: 'exclusive', operation: 'archive' },
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
  async archive(engine) {
    const r = await runArchive(engine);
    const failed = r.failures.map((f) => `${f.destination}${f.key ? ` ${f.key}` : ''}: ${f.message}`).join('; ');
    const bytes = r.moved.reduce((sum, m) => sum + m.bytes, 0);
    return `${failed ? `FAILED at ${failed};` : 'ok:'} moved ${r.moved.length} artifact(s), ${formatBytes(bytes)}, to archive storage${r.held.length ? `; ${r.held.length} kept hot` : ''}`;
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
 * Whatever came of it, the status is then watched (`watchStatus`), unless the daemon is stopping.
 */
export async function runJob(engine: Engine, job: ScheduledJob, options: JobRunOptions): Promise<string> {
  try {
    return await runLocked(engine, job, options);
  } finally {
    if (!options.signal?.aborted) await watchStatus(engine, options.log);
  }
}

async function runLocked(engine: Engine, job: ScheduledJob, options: JobRunOptions): Promise<string> {
  let held: Lock[];
  let usable: Engine;
  try {
    ({ held, engine: usable } = await takeJobLocks(engine, job, { ...options, log: (message) => options.log(`${TITLES[job]} ${message}`) }));
  } catch (error) {
    if (options.signal?.aborted) return 'not started: the daemon is stopping';
    if (error instanceof LockError && error.code === LockErrorCode.Held)
      return `skipped after waiting ${formatAge(options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS)}: ${error.message}`;
    throw error;
  }
  try {
    return await OPERATIONS[job](usable);
  } finally {
    await releaseLocks(held, options.log);
  }
}

/**
 * The daemon's watch, after each job: evaluates `status` and raises or resolves the alert it
 * finds (a breached RPO), which reading the status never does. A failure to check is logged.
 */
async function watchStatus(engine: Engine, log: (message: string) => void): Promise<void> {
  try {
    await alertOnStatus(engine, await status(engine));
  } catch (error) {
    log(`status check after the job failed: ${(error as Error).message}`);
  }
}

/**
 * Takes a job's locks (see `takeLocks`), each tried again while another stowage holds it; a
 * destination whose lock cannot be taken (read-only, full, unreachable) is left out of the run.
 */
export function takeJobLocks(engine: Engine, job: ScheduledJob | 'recovery', options: JobRunOptions): Promise<{ held: Lock[]; engine: Engine }> {
  return takeLocks(engine, LOCKS[job], { command: `stowage daemon (${job})`, warn: options.log, persist: (take) => patiently(take, options) });
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

/** When the newest full, and the newest full or incremental, were taken. */
export async function newestBackups(run: Pick<Engine, 'destinations' | 'warn'>): Promise<NewestBackups> {
  const entries = await listBackups(run);
  const newest = (types: readonly string[]) => {
    const times = entries.filter((e) => types.includes(e.manifest.type)).map((e) => Date.parse(e.manifest.createdAt));
    return times.length ? new Date(Math.max(...times)) : undefined;
  };
  return { full: newest(['full']), fullOrIncremental: newest(['full', 'incremental']) };
}
