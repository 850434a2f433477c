import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { acquireSourceLock, backup, listBackups, openEngine, resolveConfig, type Engine, type LockError } from '@stowage/core';
import { builtinRegistry } from '@stowage/adapters';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { startOssTestServer } from '@stowage/oss-test-server';
import { bufferBody, StorageErrorCode } from '@stowage/storage';
import { withChaos } from '@stowage/storage-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireDaemonLock, Daemon, missedOnStart, nextRuns, recover, runJob, type Clock, type DaemonOptions, type NewestBackups } from './daemon/index.js';
import { runCli } from './cli-process.test-support.js';
import { UsageError } from './exit-codes.js';
import { DEFAULT_SCHEDULES, type ScheduledJob } from './schedule.js';

const HOUR = 3_600_000;
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** A clock the test drives: `advance` lets time pass (timers fire), `step` sets the wall clock as NTP or a person would. */
class TestClock implements Clock {
  #wall: number;
  #elapsed = 0;
  #timers: Array<{ at: number; fn: () => void }> = [];

  constructor(start: string) {
    this.#wall = Date.parse(start);
  }

  now = () => new Date(this.#wall);

  setTimer = (ms: number, fn: () => void) => {
    const timer = { at: this.#elapsed + ms, fn };
    this.#timers.push(timer);
    return () => void (this.#timers = this.#timers.filter((t) => t !== timer));
  };

  /** Lets `ms` pass; each due timer fires in turn, followed by the jobs it started. */
  async advance(ms: number): Promise<void> {
    const end = this.#elapsed + ms;
    for (;;) {
      const timer = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!timer) break;
      this.#wall += timer.at - this.#elapsed;
      this.#elapsed = timer.at;
      this.#timers = this.#timers.filter((t) => t !== timer);
      timer.fn();
      await flush();
    }
    this.#wall += end - this.#elapsed;
    this.#elapsed = end;
    await flush();
  }

  step(ms: number): void {
    this.#wall += ms;
  }
}

/** A daemon on a test clock whose jobs are recorded; a job in `hold` runs until its gate opens. */
function harness(start: string, options: Partial<DaemonOptions> = {}) {
  const clock = new TestClock(start);
  const logs: string[] = [];
  const runs: Array<{ job: ScheduledJob; at: string }> = [];
  const gates = new Map<ScheduledJob, { promise: Promise<void>; open: () => void }>();
  let active = 0;
  let maxActive = 0;
  const daemon = new Daemon({
    schedules: DEFAULT_SCHEDULES,
    timeZone: 'UTC',
    clock,
    log: (message) => logs.push(message),
    run: async (job) => {
      runs.push({ job, at: clock.now().toISOString() });
      maxActive = Math.max(maxActive, ++active);
      await gates.get(job)?.promise;
      active--;
      return 'ok';
    },
    ...options,
  });
  const hold = (job: ScheduledJob) => {
    let open = () => {};
    const promise = new Promise<void>((resolve) => (open = resolve));
    gates.set(job, { promise, open });
    return () => {
      gates.delete(job);
      open();
    };
  };
  const count = (job: ScheduledJob) => runs.filter((r) => r.job === job).length;
  return { clock, daemon, logs, runs, hold, count, maxActive: () => maxActive };
}

describe('planning', () => {
  it('plans the default schedules in the configured time zone', () => {
    const from = new Date('2026-11-25T10:00:00Z'); // Wednesday 18:00 in Shanghai
    expect(nextRuns(DEFAULT_SCHEDULES, 'Asia/Shanghai', from)).toEqual({
      full: new Date('2026-11-25T18:00:00Z'), // 02:00 Thursday in Shanghai
      incremental: new Date('2026-11-25T11:00:00Z'),
      cleanup: new Date('2026-11-28T19:00:00Z'), // Sunday 03:00 in Shanghai
      verify: new Date('2026-11-25T20:30:00Z'),
      drill: new Date('2026-11-29T21:00:00Z'), // Monday 05:00 in Shanghai
    });
    expect(nextRuns({ full: '0 2 * * *' }, 'UTC', from)).toEqual({ full: new Date('2026-11-26T02:00:00Z') });
    expect(nextRuns({ incremental: '*/2 * * * * *' }, undefined, new Date('2026-11-25T10:00:00.500Z'))).toEqual({
      incremental: new Date('2026-11-25T10:00:02Z'),
    });
  });

  it('refuses invalid expressions, an unknown time zone and a schedule with every job off', () => {
    expect(() => nextRuns({ full: '0 2 * *' }, undefined, new Date())).toThrow(UsageError);
    expect(() => nextRuns({ drill: '0 2 * * * * *' }, undefined, new Date())).toThrow(/^schedules\.drill: '0 2 \* \* \* \* \*' is not a cron expression/);
    expect(() => nextRuns(DEFAULT_SCHEDULES, 'Mars/Olympus_Mons', new Date())).toThrow(/^schedules\.timeZone: unknown time zone 'Mars\/Olympus_Mons'/);
    expect(() => new Daemon({ schedules: {}, log: () => {}, run: async () => 'ok' })).toThrow(/every job is turned off/);
  });

  it('takes a missed full or incremental at once when the newest is older than its interval', () => {
    const now = new Date('2026-11-26T10:00:00Z');
    const ago = (hours: number) => new Date(now.getTime() - hours * HOUR);
    const missed = (newest: NewestBackups, schedules: Partial<Record<ScheduledJob, string>> = DEFAULT_SCHEDULES) =>
      missedOnStart(newest, schedules, now, 'UTC')?.job;
    expect(missed({})).toBe('full');
    expect(missedOnStart({}, DEFAULT_SCHEDULES, now, 'UTC')?.why).toBe('there is no full backup yet: running the full backup now');
    expect(missed({ full: ago(30), fullOrIncremental: ago(0.5) })).toBe('full');
    expect(missedOnStart({ full: ago(30), fullOrIncremental: ago(0.5) }, DEFAULT_SCHEDULES, now, 'UTC')?.why).toBe(
      "missed: the newest full backup is 30.0 h old, more than the 24.0 h between runs of '0 2 * * *'; running the full backup now",
    );
    expect(missed({ full: ago(8), fullOrIncremental: ago(3) })).toBe('incremental');
    expect(missed({ full: ago(8), fullOrIncremental: ago(0.4) })).toBeUndefined();
    // Saturday: a weekday-only full from Friday 02:00 is not missed (72 h between Friday's and Monday's run).
    expect(missedOnStart({ full: new Date('2026-11-27T02:00:00Z') }, { full: '0 2 * * 1-5' }, new Date('2026-11-28T10:00:00Z'), 'UTC')).toBeUndefined();
    expect(missed({}, { incremental: '0 * * * *' })).toBe('incremental');
    expect(missed({}, { verify: '0 4 * * *' })).toBeUndefined();
  });
});

describe('the daemon on a controllable clock', () => {
  it('runs a week of the default schedule in Asia/Shanghai, one job at a time', async () => {
    const h = harness('2026-11-29T16:00:30Z', { timeZone: 'Asia/Shanghai' }); // Monday 00:00:30 in Shanghai
    await h.daemon.start();
    await h.clock.advance(7 * 24 * HOUR);
    await h.daemon.stop(0);
    expect({
      full: h.count('full'),
      incremental: h.count('incremental'),
      cleanup: h.count('cleanup'),
      verify: h.count('verify'),
      drill: h.count('drill'),
    }).toEqual({
      full: 7,
      incremental: 7 * 24 - 7, // at 02:00 the full waiting to run covers it
      cleanup: 1,
      verify: 7,
      drill: 1,
    });
    expect(h.runs.filter((r) => r.job === 'full').map((r) => r.at.slice(11))).toEqual(Array(7).fill('18:00:00.000Z'));
    expect(h.runs.find((r) => r.job === 'cleanup')?.at).toBe('2026-12-05T19:00:00.000Z');
    expect(h.runs.find((r) => r.job === 'drill')?.at).toBe('2026-11-29T21:00:00.000Z');
    expect(h.logs.filter((l) => l === 'incremental backup skipped: the full backup waiting to run covers it')).toHaveLength(7);
    expect(h.logs.filter((l) => /^full backup ok \d+ ms$/.test(l))).toHaveLength(7);
    expect(h.maxActive()).toBe(1);
  });

  it('queues a job that comes due while another runs, once, and logs the wait and the skip', async () => {
    const h = harness('2026-11-26T01:59:00Z', { schedules: { full: '0 2 * * *', incremental: '0 * * * *' } });
    const releaseFull = h.hold('full');
    await h.daemon.start();
    await h.clock.advance(60_000); // 02:00: the full starts
    await h.clock.advance(2.5 * HOUR); // 03:00 and 04:00 come while it runs
    expect(h.runs.map((r) => r.job)).toEqual(['full']);
    expect(h.logs).toContain('incremental backup due while the full backup runs: queued');
    expect(h.logs).toContain('incremental backup due again while still waiting to run: skipped');
    releaseFull();
    await flush();
    expect(h.runs.map((r) => r.job)).toEqual(['full', 'incremental']);
    expect(h.maxActive()).toBe(1);
    await h.daemon.stop(0);
  });

  it('runs a job missed by a forward clock step once, not once per missed slot', async () => {
    const h = harness('2026-11-26T10:30:00Z', { schedules: { incremental: '0 * * * *' } });
    await h.daemon.start();
    h.clock.step(5 * HOUR); // 15:30: 11:00 … 15:00 were skipped
    await h.clock.advance(60_000);
    expect(h.runs).toEqual([{ job: 'incremental', at: '2026-11-26T15:31:00.000Z' }]);
    expect(h.logs).toContain('incremental backup was due at 2026-11-26T11:00:00Z, 4.5 h ago (a clock step or a sleeping machine): running it once');
    await h.clock.advance(HOUR);
    expect(h.runs.map((r) => r.at)).toEqual(['2026-11-26T15:31:00.000Z', '2026-11-26T16:00:00.000Z']);
    await h.daemon.stop(0);
  });

  it('does not repeat runs after a backward clock step, and plans afresh after a large one', async () => {
    const h = harness('2026-11-26T10:30:00Z', { schedules: { incremental: '0 * * * *' } });
    await h.daemon.start();
    await h.clock.advance(HOUR / 2); // 11:00 runs
    h.clock.step(-HOUR); // back to 10:00
    await h.clock.advance(1.5 * HOUR); // 11:30 again: 11:00 is not repeated
    expect(h.runs.map((r) => r.at)).toEqual(['2026-11-26T11:00:00.000Z']);
    expect(h.logs).toContain('the clock went back 59 min: runs already taken are not repeated');
    await h.clock.advance(HOUR / 2);
    expect(h.runs.map((r) => r.at)).toEqual(['2026-11-26T11:00:00.000Z', '2026-11-26T12:00:00.000Z']);

    h.clock.step(-2 * 24 * HOUR); // a clock that was two days ahead is corrected
    await h.clock.advance(HOUR);
    expect(h.logs).toContain('the clock went back 48.0 h: planning every job afresh from 2026-11-24T12:01:00Z');
    expect(h.runs.map((r) => r.at).slice(2)).toEqual(['2026-11-24T13:00:00.000Z']);
    await h.daemon.stop(0);
  });

  it('takes a backup missed while it was down at once on start', async () => {
    const newest = { full: new Date('2026-11-25T02:00:00Z'), fullOrIncremental: new Date('2026-11-26T09:00:00Z') };
    const h = harness('2026-11-26T10:00:30Z', { newest: async () => newest });
    await h.daemon.start();
    await flush();
    expect(h.runs).toEqual([{ job: 'full', at: '2026-11-26T10:00:30.000Z' }]);
    expect(h.logs).toContain("missed: the newest full backup is 32.0 h old, more than the 24.0 h between runs of '0 2 * * *'; running the full backup now");
    await h.daemon.stop(0);
  });

  it('on stop, drops queued jobs, lets the job under way finish within the grace, and starts nothing more', async () => {
    const h = harness('2026-11-26T01:59:00Z', { schedules: { full: '0 2 * * *', incremental: '0 * * * *' } });
    const releaseFull = h.hold('full');
    await h.daemon.start();
    await h.clock.advance(HOUR + 60_000); // the full runs from 02:00; the 03:00 incremental waits
    const stopped = h.daemon.stop(60_000);
    await flush();
    expect(h.logs.slice(-2)).toEqual(['dropped the queued incremental backup', 'waiting up to 60 s for the full backup under way to finish']);
    releaseFull();
    await expect(stopped).resolves.toBe(true);
    await h.clock.advance(24 * HOUR);
    expect(h.runs.map((r) => r.job)).toEqual(['full']);
  });

  it('gives up on a job that outlives the grace', async () => {
    const h = harness('2026-11-26T01:59:59Z', { schedules: { full: '0 2 * * *' } });
    h.hold('full');
    await h.daemon.start();
    await h.clock.advance(1000);
    const stopped = h.daemon.stop(30_000);
    await h.clock.advance(30_000);
    await expect(stopped).resolves.toBe(false);
  });
});

describe('the daemon lock', () => {
  let dir: string;
  beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'stowage-daemon-lock-'))));
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('admits one daemon per state folder and takes over the lock of one that is gone', async () => {
    const first = await acquireDaemonLock(dir);
    expect(first.path).toBe(join(dir, 'locks', 'daemon.lock'));
    await expect(acquireDaemonLock(dir)).rejects.toMatchObject({
      code: 'stowage.lock.held',
      message: expect.stringContaining(`another stowage daemon (pid ${process.pid} on host ${hostname()}`),
    });
    await first.release();
    expect(await readdir(join(dir, 'locks'))).toEqual([]);

    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(first.path, JSON.stringify({ id: 'gone', pid: deadPid, host: hostname(), operation: 'daemon', startedAt: '2026-11-26T02:00:00Z' }));
    const second = await acquireDaemonLock(dir);
    expect(second.tookOver).toBe(`pid ${deadPid} on host ${hostname()}, since 2026-11-26T02:00:00Z: pid ${deadPid} no longer runs on host ${hostname()}`);
    await second.release();
    expect(await readdir(join(dir, 'locks'))).toEqual([]);
  });

  it("honours the pid in an earlier version's lock, and never takes over a lock it cannot read", async () => {
    const path = join(dir, 'locks', 'daemon.lock');
    await mkdir(join(dir, 'locks'), { recursive: true });
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)'], { stdio: 'ignore' });
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const host = hostname();
    const boot = existsSync('/proc/sys/kernel/random/boot_id') ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : undefined;
    /** The lock as the daemon before the core lock file wrote it (`token`, no operation, never renewed). */
    const earlier = (fields: Record<string, unknown>) =>
      `${JSON.stringify({ token: 'a1b2c3d4e5f60718', pid: live.pid, host, ...(boot && { bootId: boot }), startedAt: '2026-11-26T02:00:00Z', ...fields })}\n`;
    const current = (fields: Record<string, unknown>) =>
      JSON.stringify({ id: 'c0ffee', host, pid: live.pid, operation: 'daemon', startedAt: '2026-11-26T02:00:00Z', ...fields });
    const HELD = 'held';
    const UNREADABLE = 'unreadable';
    const cases: Array<[string, string, string, { ageMs?: number }?]> = [
      ['earlier version, live pid', earlier({}), HELD],
      ['earlier version, live pid, started 7 h ago (never renewed)', earlier({}), HELD, { ageMs: 7 * HOUR }],
      ['earlier version, another host', earlier({ host: 'other-host.example', pid: 1 }), HELD],
      ['earlier version, dead pid', earlier({ pid: dead }), `took over: pid ${dead} no longer runs on host ${host}`],
      ...(boot
        ? [
            ['earlier version, before a reboot', earlier({ bootId: 'an-earlier-boot' }), `took over: host ${host} has restarted since`] as [
              string,
              string,
              string,
            ],
          ]
        : []),
      ['current version, live pid', current({}), HELD],
      ['current version, dead pid', current({ pid: dead }), `took over: pid ${dead} no longer runs on host ${host}`],
      ...['', 'garbage', '{"pid": 1, "ho', '{}', 'null', '[1,2]', '{"token": 7, "pid": "x"}', '\u0000\u00ff\u0001'].map(
        (text) => [`unreadable ${JSON.stringify(text)}`, text, UNREADABLE] as [string, string, string],
      ),
    ];
    const outcomes: string[] = [];
    try {
      for (const [name, text, want, options] of cases) {
        await writeFile(path, text);
        if (options?.ageMs) {
          const then = new Date(Date.now() - options.ageMs);
          await utimes(path, then, then);
        }
        let got: string;
        try {
          const lock = await acquireDaemonLock(dir);
          got = `took over: ${lock.tookOver?.replace(/^.*: /, '')}`;
          await lock.release();
        } catch (error) {
          const { code, message } = error as LockError;
          expect(message, name).not.toContain('\n');
          expect(await readFile(path, 'utf8'), `${name}: left in place`).toBe(text);
          if (code === 'stowage.lock.held') {
            expect(message, name).toMatch(new RegExp(`^another stowage daemon \\(pid ${text.includes('other-host') ? 1 : live.pid} on host `));
            got = HELD;
          } else {
            expect(message, name).toBe(
              `${path} holds a lock this version of stowage cannot read (another version's, or damaged), so it is not taken over: if no stowage runs with the state folder ${dir}, remove it (\`rm ${path}\`) and try again`,
            );
            got = code === 'stowage.lock.unreadable' ? UNREADABLE : code;
          }
        }
        outcomes.push(`${got === want ? 'ok ' : 'BAD'} ${name}: ${got}`);
        await rm(path, { force: true });
      }
    } finally {
      live.kill();
    }
    console.log(`daemon lock found in place (${cases.length} cases):\n${outcomes.join('\n')}`);
    expect(outcomes.filter((line) => line.startsWith('BAD'))).toEqual([]);
  });

  it('`stowage daemon` exits 1 with one line, the lock untouched, when an earlier daemon runs or the lock cannot be read', async () => {
    const app = await mkdtemp(join(tmpdir(), 'stowage-daemon-earlier-'));
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600_000)'], { stdio: 'ignore' });
    try {
      createGreaterWmsDatabase(join(app, 'db.sqlite3'), { seed: 2, scale: 0.02 });
      await writeFile(
        join(app, 'stowage.config.json'),
        JSON.stringify({ source: { database: 'db.sqlite3' }, destinations: [{ name: 'local', url: 'backups' }] }),
      );
      const path = join(app, '.stowage', 'locks', 'daemon.lock');
      await mkdir(dirname(path), { recursive: true });
      for (const [text, line] of [
        [
          `${JSON.stringify({ token: 'a1b2c3d4e5f60718', pid: live.pid, host: hostname(), startedAt: '2026-11-26T02:00:00Z' })}\n`,
          `another stowage daemon (pid ${live.pid} on host`,
        ],
        ['{"pid": 1, "ho', `${path} holds a lock this version of stowage cannot read`],
      ] as const) {
        await writeFile(path, text);
        const { code, stdout, stderr } = await runCli(app, { ...process.env, CI: 'true' }, 'daemon', '--config', join(app, 'stowage.config.json'));
        expect(code, stderr).toBe(1);
        expect(stderr.trim().split('\n'), stderr).toHaveLength(1);
        expect(stderr).toContain(line);
        expect(stdout).not.toMatch(/started|took over/);
        expect(await readFile(path, 'utf8')).toBe(text);
      }
    } finally {
      live.kill();
      await rm(app, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('jobs on an engine', () => {
  let dir: string;
  let engine: Engine;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-daemon-jobs-'));
    createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 5, scale: 0.3 });
    engine = await openEngine(
      resolveConfig({ source: { database: 'db.sqlite3' }, destinations: [{ name: 'local', url: 'backups' }] }, join(dir, 'stowage.config.json')),
    );
  });
  afterAll(async () => {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('waits for a lock another stowage holds, logging it, or skips the run when the wait runs out', async () => {
    const logs: string[] = [];
    const other = await acquireSourceLock(engine.config.stateDir, { operation: 'backup', command: 'stowage backup' });
    setTimeout(() => void other.release(), 300);
    const line = await runJob(engine, 'full', { log: (m) => logs.push(m), lockWaitMs: 10_000, pollMs: 50 });
    expect(line).toMatch(/^full_backup_\d{8}_\d{6}(_\d+)? ok$/);
    expect(logs).toEqual([
      expect.stringMatching(/^full backup waits up to 10 s for a lock: another stowage \(backup, pid \d+ on host .*\) holds the lock on this source/),
    ]);

    const held = await acquireSourceLock(engine.config.stateDir, { operation: 'cleanup' });
    try {
      await expect(runJob(engine, 'incremental', { log: () => {}, lockWaitMs: 200, pollMs: 50 })).resolves.toMatch(
        /^skipped after waiting 0 s: another stowage \(cleanup, pid/,
      );
      const stopping = new AbortController();
      stopping.abort();
      await expect(runJob(engine, 'cleanup', { log: () => {}, signal: stopping.signal })).resolves.toBe('not started: the daemon is stopping');
    } finally {
      await held.release();
    }
    await expect(runJob(engine, 'verify', { log: () => {} })).resolves.toMatch(/^ok: 1 backup\(s\) intact$/);
    await expect(runJob(engine, 'drill', { log: () => {} })).resolves.toMatch(/^of full_backup_\S+ from local ok, RTO /);
  });

  it('runs `archive run` on its schedule: backups past `after` move to the archive class, once', async () => {
    process.env.DAEMON_OSS_ID = 'daemon-archive-id';
    process.env.DAEMON_OSS_SECRET = 'daemon-archive-secret';
    const oss = await startOssTestServer({ accessKeyId: 'daemon-archive-id', accessKeySecret: 'daemon-archive-secret', buckets: ['cold'] });
    let now = Date.parse('2026-11-01T00:00:00Z');
    const cold = await openEngine(
      resolveConfig(
        {
          source: { database: 'db.sqlite3' },
          destinations: [
            {
              name: 'cold',
              url: 'oss://cold/wms',
              options: {
                region: 'oss-cn-hangzhou',
                endpoint: oss.endpoint,
                secure: false,
                accessKeyIdEnv: 'DAEMON_OSS_ID',
                accessKeySecretEnv: 'DAEMON_OSS_SECRET',
              },
              archive: { after: '30d', storageClass: 'ColdArchive' },
            },
          ],
          stateDir: '.stowage-cold',
        },
        join(dir, 'stowage.config.json'),
      ),
      { registry: builtinRegistry(), now: () => new Date(now) },
    );
    try {
      const { manifest } = await backup(cold, { type: 'full' });
      now += 40 * 24 * HOUR;
      const h = harness('2026-12-10T03:29:00Z', { schedules: { archive: '30 3 * * *' }, run: (job) => runJob(cold, job, { log: () => {} }) });
      await h.daemon.start();
      expect(h.logs).toEqual(["archive run: '30 3 * * *', next at 2026-12-10T03:30:00Z"]);
      await h.clock.advance(60_000);
      for (let i = 0; i < 100 && h.logs.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect(h.logs[1]).toMatch(/^archive run ok: moved 1 artifact\(s\), .+, to archive storage /);
      expect(oss.object('cold', `wms/${manifest.artifacts[0]!.key}`)?.storageClass).toBe('ColdArchive');
      await expect(runJob(cold, 'archive', { log: () => {} })).resolves.toMatch(/^ok: moved 0 artifact\(s\)/);
      await h.daemon.stop(1000);
    } finally {
      await cold.close();
      await oss.close();
    }
  });

  it('runs a backup job with one region read-only: the region is left out, the backup is degraded (quorum 1), not stopped', async () => {
    const warnings: string[] = [];
    const config = resolveConfig(
      {
        source: { database: 'db.sqlite3' },
        quorum: 1,
        destinations: [
          { name: 'local', url: 'backups' },
          { name: 'frozen', url: 'frozen' },
        ],
      },
      join(dir, 'stowage.config.json'),
    );
    const readOnly = {
      put: { fail: 'always' as const, error: StorageErrorCode.PermissionDenied },
      delete: { fail: 'always' as const, error: StorageErrorCode.PermissionDenied },
    };
    const twoRegions = await openEngine(config, {
      retry: false,
      onWarning: (m) => warnings.push(m),
      wrappers: [(a, name) => (name === 'frozen' ? withChaos(a, readOnly) : a)],
    });
    try {
      await expect(runJob(twoRegions, 'full', { log: () => {} })).resolves.toMatch(/^full_backup_\S+ degraded$/);
      expect(warnings).toContainEqual(
        expect.stringMatching(/^destination frozen is left out of this run: its lock cannot be taken: chaos: injected stowage.storage.permission_denied/),
      );
      await expect(runJob(twoRegions, 'verify', { log: () => {} })).resolves.toMatch(/^ok: \d+ backup\(s\) intact$/);
    } finally {
      await twoRegions.close();
    }
  });

  it('recovers from a run killed mid-way: stale locks, staging and scratch leftovers, an uncommitted artifact', async () => {
    const { manifest } = await backup(engine, { type: 'full' });
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid;
    await writeFile(
      join(engine.config.stateDir, 'locks', 'source.lock'),
      JSON.stringify({ id: 'x', host: hostname(), pid: deadPid, operation: 'backup', startedAt: '2026-11-26T02:00:00Z' }),
    );
    await mkdir(engine.stagingDir, { recursive: true });
    await writeFile(join(engine.stagingDir, 'backup-0123456789ab.sqlite3'), 'half a snapshot');
    await mkdir(join(engine.config.stateDir, 'drill-abc123'));
    const local = engine.destinations[0]!;
    await local.adapter.put('full/full_backup_20261126_020000.sqlite3.zst', bufferBody(Buffer.from('half an upload')));

    const logs: string[] = [];
    await recover(engine, { log: (m) => logs.push(m) });
    expect(logs).toEqual([
      `recovery: took over the stale lock on source (pid ${deadPid} no longer runs on host ${hostname()}) of backup, pid ${deadPid} on host ${hostname()}, since 2026-11-26T02:00:00Z`,
      'recovery: removed 1 staging and 1 scratch leftover(s) of an interrupted run',
      'recovery: deleted 1 artifact(s) of an interrupted backup that was never committed: local:full/full_backup_20261126_020000.sqlite3.zst',
    ]);
    expect(await readdir(engine.stagingDir)).toEqual([]);
    expect((await readdir(engine.config.stateDir)).filter((name) => name.startsWith('drill-'))).toEqual([]);
    expect(await readdir(join(engine.config.stateDir, 'locks'))).toEqual([]);
    expect((await listBackups(engine)).map((e) => e.manifest.id)).toContain(manifest.id);
    expect(await local.adapter.stat(manifest.artifacts[0]!.key)).toBeDefined();
  });
});
