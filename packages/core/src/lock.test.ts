import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bufferBody, sha256Hex, type StorageAdapter } from '@stowage/storage';
import { LocalStorage } from '@stowage/storage-local';
import { MemoryStorage, withChaos } from '@stowage/storage-testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DESTINATION_LOCK_KEY,
  LockError,
  LockErrorCode,
  acquireDestinationLock,
  acquireSourceLock,
  breakLock,
  readLocks,
  sourceLockPath,
  type Lock,
  type LockHolder,
} from './lock.js';

let stateDir: string;
const held: Lock[] = [];
beforeEach(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
});
afterEach(async () => {
  await Promise.all(held.splice(0).map((lock) => lock.release()));
  await rm(stateDir, { recursive: true, force: true });
});

/** Keeps a lock for release after the test. */
function keep(lock: Lock): Lock {
  held.push(lock);
  return lock;
}

const HOUR = 3600_000;
const backupRequest = { operation: 'backup', command: 'stowage backup --type full' };

/** A pid that ran on this host and has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  expect(child.pid).toBeGreaterThan(0);
  return child.pid!;
}

function holderOf(fields: Partial<LockHolder>): LockHolder {
  return { id: 'someone-else', host: 'web1', pid: 1234, operation: 'cleanup', startedAt: '2026-11-26T02:00:03.000Z', ...fields };
}

async function writeSourceLock(fields: Partial<LockHolder>, mtime?: Date): Promise<void> {
  const path = sourceLockPath(stateDir);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(holderOf(fields)));
  if (mtime) await utimes(path, mtime, mtime);
}

async function lockObject(adapter: StorageAdapter): Promise<LockHolder> {
  return JSON.parse(Buffer.concat(await (await adapter.get(DESTINATION_LOCK_KEY)).toArray()).toString('utf8')) as LockHolder;
}

async function rejection(promise: Promise<unknown>): Promise<LockError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockError);
  return error as LockError;
}

describe('source lock', () => {
  it('writes who holds it in a private file and removes it on release', async () => {
    const lock = await acquireSourceLock(stateDir, backupRequest);
    const path = sourceLockPath(stateDir);
    const onDisk = JSON.parse(await readFile(path, 'utf8')) as LockHolder;
    expect(onDisk).toMatchObject({ host: hostname(), pid: process.pid, operation: 'backup', command: 'stowage backup --type full' });
    expect(Date.parse(onDisk.startedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(lock).toMatchObject({ kind: 'source', exclusive: true, holder: onDisk });
    expect(lock.broke).toBeUndefined();
    if (process.platform !== 'win32') expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await lock.release()).toBe(true);
    expect(existsSync(path)).toBe(false);
  });

  it('makes a second acquirer wait, then fail naming the holder', async () => {
    keep(await acquireSourceLock(stateDir, backupRequest));
    const started = performance.now();
    const error = await rejection(acquireSourceLock(stateDir, { operation: 'cleanup' }, { waitMs: 300 }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    expect(error.code).toBe(LockErrorCode.Held);
    expect(error.message).toMatch(
      new RegExp(
        `^another stowage \\(backup, pid ${process.pid} on host ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\) holds the lock on this source.*; wait for it or, if it is gone, run \`stowage unlock\`$`,
      ),
    );
  });

  it('goes to a waiting acquirer once the holder releases', async () => {
    const first = await acquireSourceLock(stateDir, backupRequest);
    const second = acquireSourceLock(stateDir, { operation: 'cleanup' }, { waitMs: 5000 });
    setTimeout(() => void first.release(), 200);
    expect(keep(await second).holder.operation).toBe('cleanup');
  });

  it('takes over the lock of a dead pid on this host', async () => {
    const pid = deadPid();
    await writeSourceLock({ host: hostname(), pid });
    const lock = keep(await acquireSourceLock(stateDir, backupRequest));
    expect(lock.broke).toMatchObject({ kind: 'source', holder: { pid }, stale: `pid ${pid} no longer runs on host ${hostname()}` });
    expect(JSON.parse(await readFile(sourceLockPath(stateDir), 'utf8'))).toMatchObject({ pid: process.pid });
  });

  it('takes over a lock not renewed for staleAfterMs, and keeps a younger one', async () => {
    await writeSourceLock({ host: 'web1' });
    await rejection(acquireSourceLock(stateDir, backupRequest, { staleAfterMs: HOUR }));
    const later = new Date(Date.now() + 2 * HOUR);
    const lock = keep(await acquireSourceLock(stateDir, backupRequest, { staleAfterMs: HOUR, now: () => later }));
    expect(lock.broke?.stale).toMatch(/^not renewed since /);

    await lock.release();
    await writeSourceLock({ host: 'web2' }, new Date(Date.now() - 7 * HOUR));
    expect(keep(await acquireSourceLock(stateDir, backupRequest)).broke?.holder?.host).toBe('web2');
  });

  it('lets exactly one of many concurrent acquirers win', async () => {
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireSourceLock(stateDir, backupRequest)));
    const winners = results.filter((r) => r.status === 'fulfilled');
    expect(winners).toHaveLength(1);
    for (const r of winners) keep(r.value);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as LockError).code).toBe(LockErrorCode.Held);
  });

  it('lets exactly one of many concurrent acquirers take over a stale lock', async () => {
    await writeSourceLock({ host: hostname(), pid: deadPid() });
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => acquireSourceLock(stateDir, backupRequest)));
    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [keep(r.value)] : []));
    expect(winners).toHaveLength(1);
    expect(winners[0]?.holder.id).toBe((JSON.parse(await readFile(sourceLockPath(stateDir), 'utf8')) as LockHolder).id);
  });

  it('does not release or renew a lock someone else has taken since', async () => {
    const mine = await acquireSourceLock(stateDir, backupRequest);
    await breakLock(stateDir, [], { force: true });
    const theirs = keep(await acquireSourceLock(stateDir, { operation: 'restore' }));
    expect((await rejection(mine.renew())).code).toBe(LockErrorCode.Lost);
    expect(await mine.release()).toBe(false);
    expect(JSON.parse(await readFile(sourceLockPath(stateDir), 'utf8'))).toMatchObject({ id: theirs.holder.id });
  });

  it('renew marks the lock alive', async () => {
    const later = new Date(Math.floor(Date.now() / 1000) * 1000 + HOUR);
    const lock = keep(await acquireSourceLock(stateDir, backupRequest, { now: () => later }));
    await lock.renew();
    expect(Math.round((await stat(sourceLockPath(stateDir))).mtimeMs)).toBe(later.getTime());
  });
});

describe('readLocks and breakLock', () => {
  it('reports the holder, and refuses to break a running holder without force', async () => {
    const memory = new MemoryStorage('offsite');
    keep(await acquireSourceLock(stateDir, backupRequest));
    const locks = await readLocks(stateDir, [{ name: 'offsite', adapter: memory }]);
    expect(locks).toEqual([{ kind: 'source', name: 'source', holder: expect.objectContaining({ operation: 'backup', pid: process.pid }), alive: true }]);

    const error = await rejection(breakLock(stateDir, [{ name: 'offsite', adapter: memory }]));
    expect(error.code).toBe(LockErrorCode.Held);
    expect(error.message).toMatch(/holds the lock on this source and is still running; stop it first, or pass --force$/);
    expect(existsSync(sourceLockPath(stateDir))).toBe(true);

    const removed = await breakLock(stateDir, [{ name: 'offsite', adapter: memory }], { source: true, force: true });
    expect(removed).toMatchObject([{ kind: 'source', holder: { operation: 'backup' } }]);
    expect(await readLocks(stateDir, [])).toEqual([]);
  });

  it('breaks the locks of holders it cannot see, and only the ones asked for', async () => {
    const a = new MemoryStorage('a');
    const b = new MemoryStorage('b');
    const destinations = [
      { name: 'a', adapter: a },
      { name: 'b', adapter: b },
    ];
    await writeSourceLock({ host: 'web1' });
    keep(await acquireDestinationLock({ name: 'a', adapter: withChaos(a, {}) }, { operation: 'cleanup' }));
    await b.put(DESTINATION_LOCK_KEY, bufferBody(JSON.stringify(holderOf({ expiresAt: new Date(Date.now() + HOUR).toISOString() }))));

    const before = await readLocks(stateDir, destinations);
    expect(before.map((l) => [l.name, l.alive, l.stale])).toEqual([
      ['source', false, undefined],
      ['a', true, undefined],
      ['b', false, undefined],
    ]);
    expect(await breakLock(stateDir, destinations, { destinations: ['b'] })).toMatchObject([{ kind: 'destination', name: 'b', holder: { host: 'web1' } }]);
    expect((await readLocks(stateDir, destinations)).map((l) => l.name)).toEqual(['source', 'a']);
    expect(await breakLock(stateDir, destinations, { source: true })).toMatchObject([{ name: 'source' }]);
    await expect(breakLock(stateDir, destinations, { destinations: ['c'] })).rejects.toMatchObject({ code: 'stowage.config.unknown_destination' });
  });

  it('judges a lock from before a reboot of this host stale', async () => {
    await writeSourceLock({ host: hostname(), pid: process.pid, bootId: 'an-earlier-boot' });
    const [lock] = await readLocks(stateDir, []);
    const hasBootId = existsSync('/proc/sys/kernel/random/boot_id');
    expect(lock?.stale).toBe(hasBootId ? `host ${hostname()} has restarted since` : undefined);
  });

  it('treats an unreadable lock as stale', async () => {
    await mkdir(dirname(sourceLockPath(stateDir)), { recursive: true });
    await writeFile(sourceLockPath(stateDir), 'garbage');
    expect(await readLocks(stateDir, [])).toEqual([{ kind: 'source', name: 'source', stale: 'the lock cannot be read', alive: false }]);
    expect(keep(await acquireSourceLock(stateDir, backupRequest)).broke?.stale).toBe('the lock cannot be read');
  });
});

describe('destination lock', () => {
  it('writes a lease object with a conditional put and deletes it on release', async () => {
    const memory = new MemoryStorage();
    const lock = await acquireDestinationLock({ name: 'offsite', adapter: memory }, backupRequest, { leaseMs: 60_000 });
    const object = await lockObject(memory);
    expect(object).toMatchObject({ host: hostname(), pid: process.pid, operation: 'backup', id: lock.holder.id });
    expect(Date.parse(object.expiresAt!) - Date.parse(object.startedAt)).toBe(60_000);
    expect(lock).toMatchObject({ kind: 'destination', name: 'offsite', exclusive: true });
    expect(await lock.release()).toBe(true);
    expect(await memory.stat(DESTINATION_LOCK_KEY)).toBeUndefined();
  });

  it.each([
    ['memory', async () => withChaos(new MemoryStorage(), { delayMs: 5 })],
    ['local folder', async () => new LocalStorage(join(stateDir, 'backups'))],
  ])('lets exactly one of many concurrent acquirers win (%s)', async (_, make) => {
    const adapter = await make();
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => acquireDestinationLock({ name: 'offsite', adapter }, backupRequest)));
    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [keep(r.value)] : []));
    expect(winners).toHaveLength(1);
    expect((await lockObject(adapter)).id).toBe(winners[0]?.holder.id);
    for (const r of results) {
      if (r.status === 'rejected') {
        expect((r.reason as LockError).message).toMatch(
          /^another stowage \(backup, pid \d+ on host .+\) holds the lock on destination offsite \(lease until .+Z\); .*run `stowage unlock --destination offsite`$/,
        );
      }
    }
  });

  /**
   * Taker `i`'s own view of `adapter` (as if each were a process): every taker reads the lock, and
   * none deletes it before all `n` have read it — so all find the same stale lock — then taker `i`
   * deletes after `i` × 5 ms, interleaving one taker's delete and write with the others'.
   */
  function racingViews(adapter: StorageAdapter, n: number): (i: number) => StorageAdapter {
    let reads = 0;
    let allRead = () => {};
    const barrier = new Promise<void>((resolve) => (allRead = resolve));
    return (i) => ({
      description: adapter.description,
      capabilities: adapter.capabilities,
      put: (key, body, options) => adapter.put(key, body, options),
      get: (key, options) => {
        if (key === DESTINATION_LOCK_KEY && ++reads === n) allRead();
        return adapter.get(key, options);
      },
      stat: (key, options) => adapter.stat(key, options),
      list: (prefix, options) => adapter.list(prefix, options),
      delete: async (keys, options) => {
        if (keys.includes(DESTINATION_LOCK_KEY)) {
          await barrier;
          await sleep(i * 5);
        }
        return adapter.delete(keys, options);
      },
    });
  }

  it.each([
    ['memory', () => new MemoryStorage()],
    ['local folder', () => new LocalStorage(join(stateDir, 'backups'))],
  ])('lets exactly one of many processes that found the same stale lock take it over (%s)', async (_, make) => {
    const adapter = make();
    await adapter.put(DESTINATION_LOCK_KEY, bufferBody(JSON.stringify(holderOf({ expiresAt: new Date(Date.now() - 1000).toISOString() }))));
    const n = 8;
    const view = racingViews(adapter, n);
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) => acquireDestinationLock({ name: 'offsite', adapter: view(i) }, { operation: `backup-${i}` })),
    );
    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [keep(r.value)] : []));
    expect(winners).toHaveLength(1);
    const winner = winners[0]!;
    expect(winner.broke?.holder?.host).toBe('web1');
    expect((await lockObject(adapter)).id).toBe(winner.holder.id);
    for (const r of results) {
      if (r.status === 'fulfilled') continue;
      expect(r.reason).toBeInstanceOf(LockError);
      expect((r.reason as LockError).code).toBe(LockErrorCode.Held);
      expect((r.reason as LockError).message).toContain(`another stowage (${winner.holder.operation}, pid ${process.pid} on host ${hostname()}`);
    }
    // Nothing of the takeover is left behind: the lock is the only object under locks/.
    const left: string[] = [];
    for await (const object of adapter.list('locks/')) left.push(object.key);
    expect(left).toEqual([DESTINATION_LOCK_KEY]);
  });

  it('takes over past a takeover marker whose taker died, and waits for one whose taker runs', async () => {
    const adapter = new MemoryStorage();
    const stale = JSON.stringify(holderOf({ expiresAt: new Date(Date.now() - 1000).toISOString() }));
    await adapter.put(DESTINATION_LOCK_KEY, bufferBody(stale));
    const marker = `${DESTINATION_LOCK_KEY}.break-${sha256Hex(stale).slice(0, 16)}`;
    // A taker that is still at work (its lease runs): the lock is held by it, not free.
    await adapter.put(marker, bufferBody(JSON.stringify(holderOf({ id: 'taker', operation: 'sync', expiresAt: new Date(Date.now() + HOUR).toISOString() }))));
    const error = await rejection(acquireDestinationLock({ name: 'offsite', adapter }, backupRequest));
    expect(error.code).toBe(LockErrorCode.Held);
    expect(error.message).toMatch(/^another stowage \(sync, pid 1234 on host web1, since .+\) holds the lock on destination offsite/);
    expect(await lockObject(adapter)).toMatchObject({ id: 'someone-else' });

    // That taker died here, between its marker and its lock: its marker is stale and broken in turn.
    const pid = deadPid();
    await adapter.put(
      marker,
      bufferBody(JSON.stringify(holderOf({ id: 'taker', host: hostname(), pid, expiresAt: new Date(Date.now() + HOUR).toISOString() }))),
    );
    const lock = keep(await acquireDestinationLock({ name: 'offsite', adapter }, backupRequest));
    expect(lock.broke?.holder?.id).toBe('someone-else');
    expect((await lockObject(adapter)).id).toBe(lock.holder.id);
    const left: string[] = [];
    for await (const object of adapter.list('locks/')) left.push(object.key);
    expect(left).toEqual([DESTINATION_LOCK_KEY]);
  });

  it('waits for a held lock, then fails', async () => {
    const adapter = new MemoryStorage();
    keep(await acquireDestinationLock({ name: 'offsite', adapter }, backupRequest));
    const error = await rejection(acquireDestinationLock({ name: 'offsite', adapter }, { operation: 'sync' }, { waitMs: 200 }));
    expect(error.code).toBe(LockErrorCode.Held);
    expect(error.message).toContain('after waiting');
  });

  it('lets the next acquirer take an expired lease, and the old holder then finds it lost', async () => {
    const adapter = new MemoryStorage();
    const first = await acquireDestinationLock({ name: 'offsite', adapter }, backupRequest, { leaseMs: 10 * 60_000 });
    const later = new Date(Date.now() + 11 * 60_000);
    const second = keep(await acquireDestinationLock({ name: 'offsite', adapter }, { operation: 'cleanup' }, { now: () => later }));
    expect(second.broke?.stale).toMatch(/^its lease expired at /);
    expect((await rejection(first.renew())).code).toBe(LockErrorCode.Lost);
    expect(await first.release()).toBe(false);
    expect((await lockObject(adapter)).id).toBe(second.holder.id);
  });

  it('takes over a crashed holder: an expired lease from elsewhere, a dead pid here', async () => {
    const adapter = new MemoryStorage();
    await adapter.put(DESTINATION_LOCK_KEY, bufferBody(JSON.stringify(holderOf({ expiresAt: new Date(Date.now() - 1000).toISOString() }))));
    const lock = await acquireDestinationLock({ name: 'offsite', adapter }, backupRequest);
    expect(lock.broke?.holder?.host).toBe('web1');
    await lock.release();

    const pid = deadPid();
    await adapter.put(
      DESTINATION_LOCK_KEY,
      bufferBody(JSON.stringify(holderOf({ host: hostname(), pid, expiresAt: new Date(Date.now() + HOUR).toISOString() }))),
    );
    expect(keep(await acquireDestinationLock({ name: 'offsite', adapter }, backupRequest)).broke?.stale).toBe(
      `pid ${pid} no longer runs on host ${hostname()}`,
    );
  });

  it('renew extends the lease, and a held lock renews itself', async () => {
    const adapter = new MemoryStorage();
    const clock = { now: new Date() };
    const lock = keep(await acquireDestinationLock({ name: 'offsite', adapter }, backupRequest, { leaseMs: 60_000, now: () => clock.now }));
    const first = Date.parse((await lockObject(adapter)).expiresAt!);
    clock.now = new Date(clock.now.getTime() + 30_000);
    await lock.renew();
    expect(Date.parse((await lockObject(adapter)).expiresAt!)).toBe(first + 30_000);
    expect(lock.holder.expiresAt).toBe((await lockObject(adapter)).expiresAt);

    const other = new MemoryStorage();
    const auto = keep(await acquireDestinationLock({ name: 'other', adapter: other }, backupRequest, { leaseMs: 150 }));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(Date.parse((await lockObject(other)).expiresAt!)).toBeGreaterThan(Date.parse(auto.holder.startedAt) + 150);
    await rejection(acquireDestinationLock({ name: 'other', adapter: other }, { operation: 'cleanup' }));
  });

  it('falls back to a best-effort lock without conditional put, and says so', async () => {
    const memory = new MemoryStorage();
    const adapter: StorageAdapter = { ...withChaos(memory, { delayMs: 2 }), capabilities: { ...memory.capabilities, conditionalPut: false } };
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, () => acquireDestinationLock({ name: 'nas', adapter }, backupRequest, { settleMs: 50 })),
    );
    const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [keep(r.value)] : []));
    expect(winners).toHaveLength(1);
    expect(winners[0]?.exclusive).toBe(false);
    expect((await lockObject(memory)).id).toBe(winners[0]?.holder.id);
  });
});
