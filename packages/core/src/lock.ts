import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isStowageError, StowageError, systemErrorCode } from '@stowage/errors';
import {
  bootId,
  bufferBody,
  crashPoint,
  isAlreadyExists,
  isObjectNotFound,
  ownerGone,
  pidStartTicks,
  sha256Hex,
  TOKEN_HOST,
  type StorageAdapter,
} from '@stowage/storage';
import type { DestinationFailure } from './destination.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { ensurePrivateDir, tempSibling } from './private-fs.js';

/*
 * Design: one lock per source (a file in the state folder) and one per destination repository
 * (an object at the destination), so that cron, the daemon and a person at the console never run
 * conflicting operations. A lock records who holds it; a process recognises its own by the random
 * `id`. A lock is stale when its holder is provably gone (a dead pid on this host, or a reboot
 * since), or when it was not renewed in time (source: `staleAfterMs` since the file's mtime;
 * destination: the lease's `expiresAt`). Stale locks are taken over; `stowage unlock`
 * (`breakLock`) handles the rest. An unreadable lock is stale, except where a lock file's format
 * changed between versions (the daemon's): there its holder may be a live process of another
 * version, so it is left in place and the operator is told how to remove it.
 *
 * The source lock file appears complete or not at all: it is written to a temp file and linked
 * into place (link(2) fails atomically when the name is taken). A stale one is renamed aside and
 * compared before it is deleted, so a lock created meanwhile is put back, not lost.
 *
 * A stale destination lock is taken over through a marker object named after its content, created
 * with a conditional put: of several processes that found the same stale lock, only the one that
 * created the marker deletes it, so none deletes a lock another has just written (see `deleteStale`).
 */

/** Stable codes of lock errors. */
export const LockErrorCode = {
  /** Another process holds the lock (and, for `breakLock`, is still running). */
  Held: 'stowage.lock.held',
  /** A lock file holds what this version cannot read (another version's, or damage), and its taker refuses such a lock. */
  Unreadable: 'stowage.lock.unreadable',
  /** A lock this process held was removed or taken over by another process. */
  Lost: 'stowage.lock.lost',
} as const;
export type LockErrorCode = (typeof LockErrorCode)[keyof typeof LockErrorCode];

/** An error about a source or destination lock; `code` is one of `LockErrorCode`. */
export class LockError extends StowageError<LockErrorCode> {
  override readonly name: string = 'LockError';
}

/** What a lock file or object holds: who took the lock, for what, since when. */
export interface LockHolder {
  /** Random id of this acquisition: how a process recognises its own lock. */
  id: string;
  host: string;
  pid: number;
  /** Start time of the pid (clock ticks since boot, Linux): a later process reusing the pid is not the holder. */
  pidStart?: number;
  /** Linux boot id when the lock was taken: a lock from before a reboot is stale. */
  bootId?: string;
  /** `backup`, `cleanup`, `sync`, `restore`, … */
  operation: string;
  /** The command line, for people reading the lock. */
  command?: string;
  /** ISO 8601. */
  startedAt: string;
  /** End of the lease (destination locks), ISO 8601. */
  expiresAt?: string;
}

/** A lock as found on disk or at a destination, by `readLocks` and `breakLock`. */
export interface HeldLock {
  kind: 'source' | 'destination';
  /** `source`, or the destination's name. */
  name: string;
  /** Undefined when the lock cannot be parsed (such a lock is stale, unless its taker refuses it: see `LockFileOptions.unreadable`). */
  holder?: LockHolder;
  /** Why the lock is stale (holder gone, not renewed, lease expired); undefined when it may be in use. */
  stale?: string;
  /** True when the holder is known to run: a live pid on this host. */
  alive: boolean;
}

/** A lock this process holds. Renewed in the background until released. */
export interface Lock {
  readonly kind: 'source' | 'destination';
  /** `source`, or the destination's name. */
  readonly name: string;
  /** What the lock says now (a renewal moves `expiresAt`). */
  readonly holder: LockHolder;
  /** False when the destination has no conditional put: the lock is best effort (write, then read back). */
  readonly exclusive: boolean;
  /** The stale lock that was broken to take this one. */
  readonly broke?: HeldLock;
  /** Extends the lease (destination) or marks the lock alive (source); `stowage.lock.lost` when it is no longer ours. */
  renew(): Promise<void>;
  /** Stops renewing and removes the lock if it is still ours; true when it was removed. */
  release(): Promise<boolean>;
}

/** Who wants a lock. */
export interface LockRequest {
  operation: string;
  command?: string;
}

export interface LockOptions {
  /** How long to wait (polling) for a held lock before failing with `stowage.lock.held`; default 0. */
  waitMs?: number;
  /** The clock (tests pass their own). */
  now?: () => Date;
  /** Called when a background renewal fails; `stowage.lock.lost` means another process has the lock now. */
  onRenewFailed?: (error: unknown) => void;
}

export interface SourceLockOptions extends LockOptions {
  /** A source lock not renewed for this long is stale (default 6 h); renewed every quarter of it while held. */
  staleAfterMs?: number;
}

export interface DestinationLockOptions extends LockOptions {
  /** Length of the lease (default 10 min); renewed every third of it while held. */
  leaseMs?: number;
  /** Without conditional put: how long to wait between writing the lock and reading it back (default 2 s). */
  settleMs?: number;
  /** The lock object's key (default `DESTINATION_LOCK_KEY`): another key is a lock on something else kept there. */
  key?: string;
  /** The command that gets past the lock when its holder is gone, for messages (default `stowage unlock --destination <name>`). */
  unlock?: string;
}

/** A source lock not renewed for this long is stale. */
export const DEFAULT_STALE_AFTER_MS = 6 * 3600_000;
/** The lease of a destination lock. */
export const DEFAULT_LEASE_MS = 10 * 60_000;
/** The key of a destination's lock object. */
export const DESTINATION_LOCK_KEY = 'locks/repository.lock';

/** Where the source lock of a state folder lives. */
export function sourceLockPath(stateDir: string): string {
  return join(stateDir, 'locks', 'source.lock');
}

/**
 * Takes the lock on the source of `stateDir`: a file `<stateDir>/locks/source.lock` (mode 600).
 * A stale lock is taken over (`Lock.broke` says which); a live one is waited for up to
 * `waitMs`, then `stowage.lock.held` names its holder.
 */
export async function acquireSourceLock(stateDir: string, request: LockRequest, options: SourceLockOptions = {}): Promise<Lock> {
  return acquireLockFile(sourceLockPath(stateDir), request, { ...options, name: 'source', where: 'this source', unlock: 'stowage unlock' });
}

export interface LockFileOptions extends SourceLockOptions {
  /** `Lock.name` of the lock (e.g. `source`, `daemon`). */
  name: string;
  /** What the lock guards, for messages (`this source`). */
  where: string;
  /** The command that removes the lock if its holder is gone, for messages. */
  unlock: string;
  /**
   * Reads a lock that an earlier version wrote at this path in another format; undefined when
   * `text` is not one. Its holder is honoured as the current format's is (a live pid on this host
   * holds the lock), except that it is never stale for want of renewal (those were not renewed).
   */
  legacy?: (text: string) => LockHolder | undefined;
  /**
   * A lock file that neither this format nor `legacy` reads: `take-over` (the default: the source
   * lock has had one format, written atomically, so no live holder leaves one) or `refuse`
   * (`stowage.lock.unreadable`, left in place, the message saying how to remove it).
   */
  unreadable?: 'take-over' | 'refuse';
}

/**
 * Takes a lock that is a file on this machine, as the source lock is (and the daemon's
 * `locks/daemon.lock`): created exclusively, renewed by its mtime, taken over when stale, waited
 * for up to `waitMs` when held, then `stowage.lock.held` names its holder (see `unreadable` for a
 * lock that cannot be read).
 */
export async function acquireLockFile(path: string, request: LockRequest, options: LockFileOptions): Promise<Lock> {
  const now = options.now ?? (() => new Date());
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const { name, where } = options;
  await ensurePrivateDir(dirname(path));
  let holder = newHolder(request, now());
  let raw = '';
  const wait = waiter(options.waitMs);
  let broke: HeldLock | undefined;
  for (;;) {
    holder = { ...holder, startedAt: now().toISOString() };
    raw = `${JSON.stringify(holder, null, 2)}\n`;
    if (await createExclusive(path, raw)) break;
    const current = await readSource(path, now(), staleAfterMs, name, options.legacy);
    if (current === undefined) continue;
    if (current.holder === undefined && options.unreadable === 'refuse') throw unreadableError(path, options);
    if (current.stale !== undefined) {
      if (await removeIfUnchanged(path, current.raw)) broke = current;
      continue;
    }
    await wait(() => heldError(current, where, options.unlock, options.waitMs));
  }
  crashPoint('lock.source-taken');
  const lock: Lock = {
    kind: 'source',
    name,
    holder,
    exclusive: true,
    ...(broke && { broke }),
    async renew() {
      if ((await readText(path)) !== raw) throw lostError(name, where, await readSource(path, now(), staleAfterMs, name, options.legacy));
      const time = now();
      await utimes(path, time, time);
    },
    async release() {
      const removed = await removeIfUnchanged(path, raw);
      crashPoint('lock.source-released');
      return removed;
    },
  };
  return keepAlive(lock, staleAfterMs / 4, options.onRenewFailed);
}

/**
 * Takes the lock on a destination's repository: the object `locks/repository.lock` (or `key`), created with
 * a conditional put where the backend has one, holding a lease of `leaseMs`. An expired lease (or
 * a holder gone from this host) is taken over — by exactly one of the processes that found it —
 * and a live one is waited for up to `waitMs`; `stowage.lock.held` then names the holder (or the
 * process taking the lock over). Without conditional put the lock is best effort (`exclusive: false`).
 */
export async function acquireDestinationLock(
  destination: { name: string; adapter: StorageAdapter },
  request: LockRequest,
  options: DestinationLockOptions = {},
): Promise<Lock> {
  const { name, adapter } = destination;
  const key = options.key ?? DESTINATION_LOCK_KEY;
  const now = options.now ?? (() => new Date());
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const exclusive = adapter.capabilities.conditionalPut;
  const wait = waiter(options.waitMs);
  let holder = newHolder(request, now(), leaseMs);
  let broke: HeldLock | undefined;

  /**
   * Writes our lock over `current` (absent or stale): true when the lock is ours; else the process
   * found taking it over, or undefined when the lock changed meanwhile (look again).
   */
  const claim = async (current: StoredLock | undefined): Promise<true | HeldLock | undefined> => {
    const text = JSON.stringify(holder);
    if (!exclusive) {
      await adapter.put(key, bufferBody(text));
      await sleep(options.settleMs ?? 2000);
      return (await readDestination(adapter, name, now(), key))?.holder?.id === holder.id || undefined;
    }
    const markers: string[] = [];
    try {
      if (current) {
        const deleted = await deleteStale(adapter, name, key, current.raw, text, now, markers);
        if (deleted !== true) return deleted;
      }
      await adapter.put(key, bufferBody(text), { ifNoneMatch: true });
      return true;
    } catch (error) {
      if (isAlreadyExists(error)) return undefined;
      throw error;
    } finally {
      // Best effort: a marker left behind names a lock that no longer exists, so it blocks nothing.
      if (markers.length) await adapter.delete(markers).catch(() => undefined);
    }
  };

  for (;;) {
    const current = await readDestination(adapter, name, now(), key);
    // Ours already: a retried conditional put whose first attempt went through.
    if (current?.holder?.id === holder.id) break;
    let blocker: HeldLock;
    if (current !== undefined && current.stale === undefined) blocker = current;
    else {
      holder = { ...holder, startedAt: now().toISOString(), expiresAt: new Date(now().getTime() + leaseMs).toISOString() };
      const claimed = await claim(current);
      if (claimed === true) {
        if (current) broke = publicLock(current);
        break;
      }
      if (claimed === undefined) continue;
      blocker = claimed;
    }
    await wait(() => heldError(blocker, `destination ${name}`, options.unlock ?? `stowage unlock --destination ${name}`, options.waitMs));
  }

  crashPoint('lock.destination-taken');
  const lock: Lock = {
    kind: 'destination',
    name,
    get holder() {
      return holder;
    },
    exclusive,
    ...(broke && { broke }),
    async renew() {
      const current = await readDestination(adapter, name, now(), key);
      if (current?.holder?.id !== holder.id) throw lostError(name, `destination ${name}`, current);
      const renewed = { ...holder, expiresAt: new Date(now().getTime() + leaseMs).toISOString() };
      await adapter.put(key, bufferBody(JSON.stringify(renewed)));
      holder = renewed;
    },
    async release() {
      if ((await readDestination(adapter, name, now(), key))?.holder?.id !== holder.id) return false;
      await adapter.delete([key]);
      crashPoint('lock.destination-released');
      return true;
    },
  };
  return keepAlive(lock, leaseMs / 3, options.onRenewFailed);
}

/**
 * Takes the lock of every destination at once with `acquire` (e.g. `acquireDestinationLock`). A
 * destination whose lock cannot be taken because it is read-only, full or unreachable is returned
 * in `unavailable` (the run goes on without it); a lock held by another stowage (or lost) fails the
 * whole acquisition, releasing what was taken, since the operations would conflict.
 */
export async function acquireDestinationLocks<D extends { name: string }>(
  destinations: readonly D[],
  acquire: (destination: D) => Promise<Lock>,
): Promise<{ locks: Lock[]; unavailable: DestinationFailure[] }> {
  // In parallel: on a backend without conditional writes each lock waits for its write to settle.
  const results = await Promise.allSettled(destinations.map(acquire));
  const locks = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const conflict = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && r.reason instanceof LockError);
  if (conflict) {
    // Best effort: the conflict is the error to report; a lock left behind is broken as stale later.
    await Promise.all(locks.map((lock) => lock.release().catch(() => undefined)));
    throw conflict.reason;
  }
  const unavailable = results.flatMap((r, i) => {
    if (r.status === 'fulfilled') return [];
    const error = r.reason as Error;
    const code = isStowageError(error) ? error.code : 'stowage.storage.unavailable';
    return [{ destination: destinations[i]!.name, code, message: `its lock cannot be taken: ${error.message}` }];
  });
  return { locks, unavailable };
}

/** The locks currently present: the source's, then each destination's (for `stowage status` and `unlock`). */
export async function readLocks(
  stateDir: string,
  destinations: ReadonlyArray<{ name: string; adapter: StorageAdapter }>,
  options: { now?: () => Date; staleAfterMs?: number } = {},
): Promise<HeldLock[]> {
  const now = options.now?.() ?? new Date();
  const source = await readSource(sourceLockPath(stateDir), now, options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS);
  const others = await Promise.all(destinations.map((d) => readDestination(d.adapter, d.name, now)));
  return [source, ...others].filter((lock) => lock !== undefined).map(publicLock);
}

export interface BreakLockOptions {
  /** Break the source lock. When neither `source` nor `destinations` is given, every lock is broken. */
  source?: boolean;
  /** Names of the destinations whose lock to break. */
  destinations?: readonly string[];
  /** Break a lock even when its holder runs on this host. */
  force?: boolean;
  now?: () => Date;
  staleAfterMs?: number;
}

/**
 * Removes locks for `stowage unlock` and returns what it removed. A lock whose holder is known to
 * run (a live pid on this host) is refused with `stowage.lock.held` unless `force`; nothing is
 * removed then.
 */
export async function breakLock(
  stateDir: string,
  destinations: ReadonlyArray<{ name: string; adapter: StorageAdapter }>,
  options: BreakLockOptions = {},
): Promise<HeldLock[]> {
  const everything = !options.source && options.destinations === undefined;
  for (const wanted of options.destinations ?? []) {
    if (!destinations.some((d) => d.name === wanted)) {
      throw new CoreError(CoreErrorCode.UnknownDestination, `no destination named '${wanted}'; configured: ${destinations.map((d) => d.name).join(', ')}`, {
        context: { name: wanted },
      });
    }
  }
  const now = options.now?.() ?? new Date();
  const path = sourceLockPath(stateDir);
  const chosen = destinations.filter((d) => everything || options.destinations?.includes(d.name));
  const found: StoredLock[] = [
    ...(everything || options.source ? [await readSource(path, now, options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS)] : []),
    ...(await Promise.all(chosen.map((d) => readDestination(d.adapter, d.name, now)))),
  ].filter((lock) => lock !== undefined);
  const running = found.find((lock) => lock.alive && lock.stale === undefined);
  if (running && !options.force) {
    throw new LockError(
      LockErrorCode.Held,
      `${describeHolder(running.holder)} holds the lock on ${running.kind === 'source' ? 'this source' : `destination ${running.name}`} and is still running; stop it first, or pass --force`,
      {
        context: { lock: running.name, holder: running.holder },
      },
    );
  }
  const removed: HeldLock[] = [];
  for (const lock of found) {
    if (lock.kind === 'source') {
      if (lock.raw === undefined || !(await removeIfUnchanged(path, lock.raw))) continue;
    } else {
      await destinations.find((d) => d.name === lock.name)?.adapter.delete([DESTINATION_LOCK_KEY]);
    }
    removed.push(publicLock(lock));
  }
  return removed;
}

/** `backup, pid 1234 on host web1, since 2026-11-26T02:00:03Z` (or `an unreadable lock`). */
export function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'an unreadable lock';
  return `${holder.operation}, pid ${holder.pid} on host ${holder.host}, since ${isoSeconds(holder.startedAt)}`;
}

// ——— internals ———

const HOST = hostname();

function newHolder(request: LockRequest, time: Date, leaseMs?: number): LockHolder {
  const boot = bootId();
  return {
    id: randomBytes(12).toString('hex'),
    host: HOST,
    pid: process.pid,
    pidStart: pidStartTicks(process.pid),
    ...(boot && { bootId: boot }),
    operation: request.operation,
    ...(request.command !== undefined && { command: request.command }),
    startedAt: time.toISOString(),
    ...(leaseMs !== undefined && { expiresAt: new Date(time.getTime() + leaseMs).toISOString() }),
  };
}

/** A lock as read, with its text. */
type StoredLock = HeldLock & { raw: string };

/** `lock` without its text, as callers get it. */
function publicLock({ kind, name, holder, stale, alive }: HeldLock): HeldLock {
  return { kind, name, ...(holder && { holder }), ...(stale !== undefined && { stale }), alive };
}

function isoSeconds(iso: string): string {
  return iso.replace(/\.\d+Z$/, 'Z');
}

/**
 * Judges a lock: stale when its holder is gone, its lease expired, or it was not renewed in time.
 * `legacy` reads an earlier version's format, whose holders were not renewed.
 */
function judge(
  kind: HeldLock['kind'],
  name: string,
  text: string,
  now: Date,
  renewedAt?: Date,
  staleAfterMs?: number,
  legacy?: LockFileOptions['legacy'],
): HeldLock {
  const current = parseHolder(text);
  const holder = current ?? legacy?.(text);
  if (!holder) return { kind, name, stale: 'the lock cannot be read', alive: false };
  if (!current) renewedAt = undefined;
  const base = { kind, name, holder };
  let alive = false;
  if (holder.host === HOST) {
    const boot = bootId();
    if (holder.bootId && boot && holder.bootId !== boot) return { ...base, stale: `host ${HOST} has restarted since`, alive };
    const gone = ownerGone({ host: TOKEN_HOST, pid: holder.pid, startTicks: holder.pidStart ?? 0 });
    if (gone) return { ...base, stale: gone, alive };
    alive = true;
  }
  if (holder.expiresAt !== undefined && Date.parse(holder.expiresAt) <= now.getTime())
    return { ...base, stale: `its lease expired at ${isoSeconds(holder.expiresAt)}`, alive };
  if (renewedAt && staleAfterMs !== undefined && now.getTime() - renewedAt.getTime() > staleAfterMs) {
    return { ...base, stale: `not renewed since ${isoSeconds(renewedAt.toISOString())}`, alive };
  }
  return { ...base, alive };
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder> | null;
    const ok =
      typeof value?.id === 'string' &&
      typeof value.host === 'string' &&
      Number.isInteger(value.pid) &&
      typeof value.operation === 'string' &&
      typeof value.startedAt === 'string';
    return ok ? (value as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

async function readSource(path: string, now: Date, staleAfterMs: number, name = 'source', legacy?: LockFileOptions['legacy']): Promise<StoredLock | undefined> {
  try {
    const [raw, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    return { ...judge('source', name, raw, now, info.mtime, staleAfterMs, legacy), raw };
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

/** The destination lock (or another lock object, or a takeover marker: `key`) as stored, judged as of `now`. */
async function readDestination(adapter: StorageAdapter, name: string, now: Date, key = DESTINATION_LOCK_KEY): Promise<StoredLock | undefined> {
  let raw: string;
  try {
    raw = Buffer.concat(await (await adapter.get(key)).toArray()).toString('utf8');
  } catch (error) {
    if (isObjectNotFound(error)) return undefined;
    throw error;
  }
  return { ...judge('destination', name, raw, now), raw };
}

/**
 * Deletes the stale object `key` that holds `raw` so that, of several processes that found it,
 * exactly one does: each first creates the marker `<key>.break-<hash of raw>` (holding `text`,
 * the taker's lock) with a conditional put, and only the one that created it deletes `key`, after
 * reading that it still holds `raw`. (Deleting without the marker, a slow taker would delete the
 * lock a faster one had just written, and both would hold it.) Markers created are added to
 * `markers`, for the caller to remove once its own lock is written. A marker left by a taker that
 * died goes stale like a lock and is broken the same way.
 *
 * True when `key` was deleted; the marker's live holder when another process is taking `key`
 * over; undefined when `key` no longer holds `raw` (look again).
 */
async function deleteStale(
  adapter: StorageAdapter,
  name: string,
  key: string,
  raw: string,
  text: string,
  now: () => Date,
  markers: string[],
): Promise<true | HeldLock | undefined> {
  const marker = `${key}.break-${sha256Hex(raw).slice(0, 16)}`;
  for (;;) {
    try {
      await adapter.put(marker, bufferBody(text), { ifNoneMatch: true });
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
      const other = await readDestination(adapter, name, now(), marker);
      if (other === undefined) continue;
      // Unless it is our own put, retried after its first attempt went through.
      if (other.raw !== text) {
        if (other.stale === undefined) return other;
        const broken = await deleteStale(adapter, name, marker, other.raw, text, now, markers);
        if (broken !== true && broken !== undefined) return broken;
        continue;
      }
    }
    markers.push(marker);
    break;
  }
  if ((await readDestination(adapter, name, now(), key))?.raw !== raw) return undefined;
  await adapter.delete([key]);
  return true;
}

/** Creates `path` holding `text` unless it exists: written aside, then linked into place. */
async function createExclusive(path: string, text: string): Promise<boolean> {
  const temp = tempSibling(path, 'lock');
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(text);
    await handle.chmod(0o600);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    if (systemErrorCode(error) === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(temp);
  }
}

/**
 * Deletes `path` if it still holds `text`: renames it aside (only one process can), compares, and
 * puts back a lock that changed in between. True when it deleted `text`.
 */
async function removeIfUnchanged(path: string, text: string): Promise<boolean> {
  const aside = tempSibling(path, 'break');
  try {
    await rename(path, aside);
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return false;
    throw error;
  }
  const same = (await readFile(aside, 'utf8')) === text;
  if (!same) {
    await link(aside, path).catch((error: unknown) => {
      // A third process created a lock in the instant between: the displaced one is lost to its holder.
      if (systemErrorCode(error) !== 'EEXIST') throw error;
    });
  }
  await unlink(aside);
  return same;
}

/** A function that waits one poll interval, or throws `fail()` once `waitMs` has passed. */
function waiter(waitMs = 0): (fail: () => Error) => Promise<void> {
  const deadline = performance.now() + waitMs;
  const pollMs = Math.min(5000, Math.max(50, waitMs / 20));
  return async (fail) => {
    const left = deadline - performance.now();
    if (left <= 0) throw fail();
    await sleep(Math.min(pollMs, left));
  };
}

function heldError(current: HeldLock, where: string, unlock: string, waitMs = 0): LockError {
  const lease = current.holder?.expiresAt === undefined ? '' : ` (lease until ${isoSeconds(current.holder.expiresAt)})`;
  const waited = waitMs > 0 ? `, after waiting ${Math.round(waitMs / 1000)} s` : '';
  return new LockError(
    LockErrorCode.Held,
    `another stowage (${describeHolder(current.holder)}) holds the lock on ${where}${lease}${waited}; wait for it or, if it is gone, run \`${unlock}\``,
    { context: { lock: current.name, holder: current.holder } },
  );
}

function unreadableError(path: string, options: LockFileOptions): LockError {
  return new LockError(
    LockErrorCode.Unreadable,
    `${path} holds a lock this version of stowage cannot read (another version's, or damaged), so it is not taken over: if no stowage runs with ${options.where}, remove it (\`${options.unlock}\`) and try again`,
    { context: { lock: options.name, path } },
  );
}

function lostError(name: string, where: string, current: HeldLock | undefined): LockError {
  const now = current ? `now held by another stowage (${describeHolder(current.holder)})` : 'removed';
  return new LockError(LockErrorCode.Lost, `the lock on ${where} is no longer ours: it was ${now}`, { context: { lock: name, holder: current?.holder } });
}

/** Renews `lock` every `everyMs` until it is released; release waits for a renewal under way. */
function keepAlive(lock: Lock, everyMs: number, onRenewFailed: ((error: unknown) => void) | undefined): Lock {
  let pending: Promise<void> | undefined;
  const timer = setInterval(
    () => {
      pending ??= lock
        .renew()
        .catch((error: unknown) => onRenewFailed?.(error))
        .finally(() => (pending = undefined));
    },
    Math.min(Math.max(everyMs, 10), 2 ** 31 - 1),
  );
  timer.unref();
  const release = lock.release.bind(lock);
  return Object.defineProperty(lock, 'release', {
    value: async () => {
      clearInterval(timer);
      await pending;
      return release();
    },
  });
}
