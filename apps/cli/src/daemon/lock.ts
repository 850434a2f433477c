import { join } from 'node:path';
import { acquireLockFile, LockError, LockErrorCode, type HeldLock, type LockHolder } from '@stowage/core';
import { isStowageError } from '@stowage/errors';
import { isoSeconds } from './scheduler.js';

/** The daemon's own lock, `<stateDir>/locks/daemon.lock`. */
export interface DaemonLock {
  readonly path: string;
  /** Who held the stale lock found in place and why it was stale, when one was taken over. */
  readonly tookOver?: string;
  /** Removes the lock if it is still ours. */
  release(): Promise<void>;
}

/**
 * Takes the daemon lock of a state folder (so of a config), one daemon per folder: a lock file as
 * core's source lock is (`acquireLockFile`: created exclusively and synced, renewed while held). A
 * lock whose daemon is gone (a dead pid on this host, a reboot since) is taken over; a live one,
 * in this process too, fails with `stowage.lock.held` naming it. The lock of an earlier version's
 * daemon is judged by the pid it names as well; a lock that cannot be read at all is left in place
 * (`stowage.lock.unreadable`, saying how to remove it).
 */
export async function acquireDaemonLock(stateDir: string): Promise<DaemonLock> {
  const path = join(stateDir, 'locks', 'daemon.lock');
  try {
    const lock = await acquireLockFile(
      path,
      { operation: 'daemon', command: 'stowage daemon' },
      { name: 'daemon', where: `the state folder ${stateDir}`, unlock: `rm ${path}`, legacy: earlierDaemonLock, unreadable: 'refuse' },
    );
    return {
      path,
      ...(lock.broke && { tookOver: `${describeDaemon(lock.broke.holder)}: ${lock.broke.stale}` }),
      release: async () => void (await lock.release()),
    };
  } catch (error) {
    if (!isStowageError(error, LockErrorCode.Held)) throw error;
    const { holder } = error.context as { holder?: HeldLock['holder'] };
    throw new LockError(
      LockErrorCode.Held,
      `another stowage daemon (${describeDaemon(holder)}) runs with the state folder ${stateDir}; stop it first, or delete ${path} if it is gone`,
      {
        context: { lock: path, holder },
        cause: error,
      },
    );
  }
}

function describeDaemon(holder: HeldLock['holder']): string {
  return holder ? `pid ${holder.pid} on host ${holder.host}, since ${isoSeconds(new Date(holder.startedAt))}` : 'an unreadable lock';
}

/**
 * The daemon lock as versions before the core lock file wrote it, never renewed:
 * `{"token", "pid", "host", "bootId", "startedAt"}`; undefined for anything else.
 */
function earlierDaemonLock(text: string): LockHolder | undefined {
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const { token, pid, host, bootId, startedAt } = value ?? {};
  if (typeof token !== 'string' || !Number.isInteger(pid) || typeof host !== 'string' || typeof startedAt !== 'string') return undefined;
  return {
    id: token,
    host,
    pid: pid as number,
    ...(typeof bootId === 'string' && { bootId }),
    operation: 'daemon',
    command: 'stowage daemon',
    startedAt,
  };
}
