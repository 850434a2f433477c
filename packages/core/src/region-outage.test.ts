import { builtinRegistry } from '@stowage/adapters';
import { createServer } from 'node:net';
import { Alerts, type Alert } from '@stowage/alerts';
import { StorageError, StorageErrorCode } from '@stowage/storage';
import { withChaos } from '@stowage/storage-testkit';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backup } from './backup.js';
import { cleanup } from './cleanup.js';
import { openEngine, requireDestinations, withoutDestinations, type Engine } from './engine.js';
import { acquireDestinationLock, acquireDestinationLocks, type Lock } from './lock.js';
import { restore } from './restore.js';
import { sync } from './sync.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

let ws: Workspace;
let held: Lock[] = [];
afterEach(async () => {
  await Promise.all(held.map((lock) => lock.release()));
  held = [];
  await ws?.dispose();
});

/** A local destination that refuses every write as a read-only file system does (storage-local maps EROFS so). */
const readOnly = (adapter: Parameters<typeof withChaos>[0]) =>
  withChaos(adapter, {
    put: {
      fail: 'always',
      error: () =>
        new StorageError(StorageErrorCode.PermissionDenied, `put 'locks/repository.lock' failed: EROFS: read-only file system`, {
          context: { errno: 'EROFS' },
        }),
    },
    delete: { fail: 'always', error: StorageErrorCode.PermissionDenied },
  });

/** Takes the destination locks as the CLI and the daemon do, leaving out what cannot be locked. */
async function lockedEngine(engine: Engine, operation: string): Promise<Engine> {
  const { locks, unavailable } = await acquireDestinationLocks(engine.destinations, (d) => acquireDestinationLock(d, { operation }));
  held.push(...locks);
  return withoutDestinations(engine, unavailable);
}

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('one region down does not stop backups', () => {
  it('a read-only destination is a failed destination for the run: quorum 1 commits elsewhere (degraded), the alert names it, sync/cleanup/verify skip it', async () => {
    const destinations = [
      { name: 'local', url: 'backups' },
      { name: 'frozen', url: 'frozen' },
    ];
    ws = await makeWorkspace({ config: { destinations, quorum: 1 } });
    const engine = await openEngine(ws.config, {
      retry: false,
      onWarning: (m) => ws.warnings.push(m),
      wrappers: [(a, name) => (name === 'frozen' ? readOnly(a) : a)],
    });
    try {
      const raised: Alert[] = [];
      vi.spyOn(engine.alerts, 'raise').mockImplementation(async (build) => void raised.push(build(Alerts, { where: 'test', since: new Date() })));
      const run = await lockedEngine(engine, 'backup');
      expect(run.destinations.map((d) => d.name)).toEqual(['local']);
      expect(ws.warnings).toContainEqual(expect.stringMatching(/destination frozen is left out of this run: its lock cannot be taken: .*EROFS/));

      const result = await backup(run, { type: 'full' });
      expect(result.outcome).toBe('degraded');
      expect(result.committed).toEqual(['local']);
      expect(result.failures).toEqual([
        { destination: 'frozen', code: StorageErrorCode.PermissionDenied, message: expect.stringMatching(/lock cannot be taken.*EROFS/) },
      ]);
      const degraded = raised.find((a) => a.key.startsWith('backup-degraded'));
      expect(degraded?.title).toContain('missing at frozen');
      expect(JSON.stringify(degraded?.details)).toMatch(/frozen: its lock cannot be taken: .*EROFS/);

      // The other operations work on what they could lock and leave the frozen destination alone.
      expect((await sync(run)).actions).toEqual([]);
      expect((await cleanup(run, { dryRun: true })).failures).toEqual([]);
      const [checked] = await verify(run, { all: true });
      expect(checked).toMatchObject({ ok: true });
      expect(checked!.artifacts.every((a) => a.destination === 'local')).toBe(true);
      expect((await restore(run, { testMode: true })).source).toBe('local');
      await expect(verify(run, { all: true, destination: 'frozen' })).rejects.toMatchObject({
        code: 'stowage.destination.none_available',
        message: expect.stringMatching(/^destination frozen cannot be used now: its lock cannot be taken: .*EROFS/),
      });
    } finally {
      await engine.close();
    }
  });

  it('below the quorum the run fails (committed copies stay), and with nothing lockable it stops naming each destination', async () => {
    const destinations = [
      { name: 'local', url: 'backups' },
      { name: 'frozen', url: 'frozen' },
    ];
    ws = await makeWorkspace({ config: { destinations } });
    const engine = await openEngine(ws.config, { retry: false, onWarning: () => undefined, wrappers: [(a, name) => (name === 'frozen' ? readOnly(a) : a)] });
    const allFrozen = await openEngine(ws.config, { retry: false, onWarning: () => undefined, wrappers: [(a) => readOnly(a)] });
    try {
      const result = await backup(await lockedEngine(engine, 'backup'), { type: 'full' });
      expect(result).toMatchObject({ outcome: 'failed', committed: ['local'], failures: [{ destination: 'frozen' }] });
      await Promise.all(held.map((lock) => lock.release()));
      held = [];
      const raised: string[] = [];
      vi.spyOn(allFrozen.alerts, 'raise').mockImplementation(async (build) => void raised.push(build(Alerts, { where: 'test', since: new Date() }).title));
      const nothingLocked = await lockedEngine(allFrozen, 'backup');
      const none = {
        code: 'stowage.destination.none_available',
        message: expect.stringMatching(/^no destination can be used: local: its lock cannot be taken: .*EROFS.*; frozen: /),
      };
      expect(() => requireDestinations(nothingLocked)).toThrow(expect.objectContaining(none));
      await expect(backup(nothingLocked, { type: 'full' })).rejects.toMatchObject(none);
      expect(raised).toEqual([expect.stringMatching(/full backup failed/i)]);
    } finally {
      await engine.close();
      await allFrozen.close();
    }
  });

  it('unreachable S3 and OSS endpoints (connection refused) are left out the same way', async () => {
    process.env.STOWAGE_TEST_DOWN_KEY = 'key';
    process.env.STOWAGE_TEST_DOWN_SECRET = 'secret';
    const keys = { accessKeyIdEnv: 'STOWAGE_TEST_DOWN_KEY' };
    ws = await makeWorkspace({
      config: {
        quorum: 1,
        destinations: [
          { name: 'local', url: 'backups' },
          {
            name: 's3-down',
            url: 's3://bucket/stowage',
            options: {
              ...keys,
              endpoint: `http://127.0.0.1:${await closedPort()}`,
              forcePathStyle: true,
              region: 'us-east-1',
              maxAttempts: 1,
              secretAccessKeyEnv: 'STOWAGE_TEST_DOWN_SECRET',
            },
          },
          {
            name: 'oss-down',
            url: 'oss://bucket/stowage',
            options: {
              ...keys,
              endpoint: `http://127.0.0.1:${await closedPort()}`,
              secure: false,
              region: 'cn-hangzhou',
              accessKeySecretEnv: 'STOWAGE_TEST_DOWN_SECRET',
            },
          },
        ],
      },
      engine: { registry: builtinRegistry() },
    });
    const run = await lockedEngine(ws.engine, 'backup');
    const result = await backup(run, { type: 'full' });
    expect(result).toMatchObject({ outcome: 'degraded', committed: ['local'] });
    expect(result.failures).toEqual([
      { destination: 's3-down', code: StorageErrorCode.Transient, message: expect.stringMatching(/its lock cannot be taken: .*ECONNREFUSED/) },
      { destination: 'oss-down', code: StorageErrorCode.Transient, message: expect.stringMatching(/its lock cannot be taken: .*ECONNREFUSED/) },
    ]);
    expect(ws.warnings).toContainEqual(expect.stringMatching(/destination oss-down is left out of this run/));
  });
});
