import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { startS3rver, type S3rverProcess } from '@stowage/storage-s3/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runArchive, thawStatus } from './archive.js';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { cleanup } from './cleanup.js';
import { CoreErrorCode } from './errors.js';
import { drill } from './drill.js';
import { restore } from './restore.js';
import { builtinRegistry } from '@stowage/adapters';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { status } from './status.js';
import { verify } from './verify.js';
import type { Manifest } from './manifest.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const ENV = { ARCH_S3_KEY: 'S3RVER', ARCH_S3_SECRET: 'S3RVER', ARCH_OSS_ID: 'oss-archive-id', ARCH_OSS_SECRET: 'oss-archive-secret-never-printed' };
const DAY = 86_400_000;
const HOUR = 3_600_000;

let s3: S3rverProcess;
let oss: OssTestServer;

beforeAll(async () => {
  Object.assign(process.env, ENV);
  [s3, oss] = await Promise.all([
    startS3rver(),
    startOssTestServer({ accessKeyId: ENV.ARCH_OSS_ID, accessKeySecret: ENV.ARCH_OSS_SECRET, buckets: ['wms-archive'] }),
  ]);
  await s3.createBucket('archive');
}, 60_000);

afterAll(async () => {
  await Promise.all([s3?.stop(), oss?.close()]);
  for (const name of Object.keys(ENV)) delete process.env[name];
});

/**
 * Each server with its slowest archive class: how long its standard thaw takes, how to move its
 * thaw clock, and how to count artifact downloads (GETs of anything but manifests and locks).
 */
const SERVERS = [
  {
    label: 'S3 (DEEP_ARCHIVE, s3rver launcher)',
    storageClass: 'DEEP_ARCHIVE',
    minimumDays: 180,
    standardThawMs: 12 * HOUR,
    destination: () => ({
      name: 'cold',
      url: 's3://archive/wms',
      options: {
        endpoint: s3.endpoint,
        forcePathStyle: true,
        checksumMode: 'crc64nvme',
        conditionalWrites: true,
        accessKeyIdEnv: 'ARCH_S3_KEY',
        secretAccessKeyEnv: 'ARCH_S3_SECRET',
      },
    }),
    advance: (ms: number) => s3.advanceThawClock(ms),
    /** Bit rot behind the API: one byte of the stored object flipped, its recorded checksum unchanged. */
    flipByte: async (prefix: string, key: string) => {
      const stored = join(s3.directory, 'archive', prefix, `${key}._S3rver_object`);
      const bytes = await readFile(stored);
      bytes[bytes.length >> 1]! ^= 0x01;
      await writeFile(stored, bytes);
    },
    artifactGets: async () =>
      (await s3.requests()).filter(
        (r) => r.method === 'GET' && r.path.startsWith('/archive/wms-') && !r.path.endsWith('.manifest.json') && !r.path.includes('/locks/'),
      ).length,
  },
  {
    label: 'OSS (ColdArchive, OSS test server)',
    storageClass: 'ColdArchive',
    minimumDays: 180,
    standardThawMs: 5 * HOUR,
    destination: () => ({
      name: 'cold',
      url: 'oss://wms-archive/wms',
      options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'ARCH_OSS_ID', accessKeySecretEnv: 'ARCH_OSS_SECRET' },
    }),
    advance: async (ms: number) => oss.clock.advance(ms),
    flipByte: async (prefix: string, key: string) => oss.corruptObject('wms-archive', `${prefix}/${key}`, 'flip-byte'),
    artifactGets: async () => oss.requests.filter((r) => r.operation === 'GetObject' && !r.key.endsWith('.manifest.json') && !r.key.includes('locks/')).length,
  },
];

describe.each(SERVERS)('archive offload against $label, through the real SDK client', (server) => {
  let ws: Workspace;
  const t0 = Date.now();
  let clock = t0;
  const ids: Record<string, Manifest> = {};
  let prefix = '';

  beforeAll(async () => {
    const destination = { ...server.destination(), url: `${server.destination().url}-${Math.random().toString(36).slice(2, 8)}` };
    prefix = new URL(destination.url).pathname.slice(1);
    ws = await makeWorkspace({
      config: {
        destinations: [{ ...destination, archive: { after: '30d', storageClass: server.storageClass, types: ['full', 'incremental'] } }],
        retention: { full: '30d', incremental: '7d', hot: '3d' },
      },
      engine: { registry: builtinRegistry(), now: () => new Date(clock) },
    });
    // Chain 1 at t0; chain 2 twenty days later.
    ids.full1 = (await backup(ws.engine, { type: 'full' })).manifest;
    simulateWarehouseActivity(ws.database, { seed: 1, operations: 50 });
    clock = t0 + HOUR;
    ids.inc1 = (await backup(ws.engine, { type: 'incremental' })).manifest;
    clock = t0 + 20 * DAY;
    ids.full2 = (await backup(ws.engine, { type: 'full' })).manifest;
    simulateWarehouseActivity(ws.database, { seed: 2, operations: 50 });
    clock = t0 + 35 * DAY;
    ids.inc2 = (await backup(ws.engine, { type: 'incremental' })).manifest;
    expect(ids.inc1!.parent).toBe(ids.full1!.id);
  }, 120_000);

  afterAll(async () => ws?.dispose());

  it("tiers whole chains past `after` by a checksum-checked server-side copy; the catalog knows each artifact's class", async () => {
    expect((await runArchive(ws.engine, { asOf: new Date(t0 + 10 * DAY) })).moved).toEqual([]);
    const dry = await runArchive(ws.engine, { asOf: new Date(t0 + 40 * DAY), dryRun: true });
    expect(new Set(dry.moved.map((m) => m.backupId))).toEqual(new Set([ids.full1!.id, ids.inc1!.id]));
    // At t0 + 55 d chain 2's full is past 30 d but its incremental (20 d) still replays it: it stays hot.
    const run = await runArchive(ws.engine, { asOf: new Date(t0 + 55 * DAY) });
    expect(run.failures).toEqual([]);
    expect(new Set(run.moved.map((m) => m.backupId))).toEqual(new Set([ids.full1!.id, ids.inc1!.id]));
    expect(run.moved.map((m) => m.key).sort()).toEqual(
      [ids.full1!, ids.inc1!].flatMap((m) => m.artifacts.filter((a) => a.role !== 'page-hashes').map((a) => a.key)).sort(),
    );
    expect(run.held).toEqual([expect.objectContaining({ backupId: ids.full2!.id, why: expect.stringContaining(ids.inc2!.id) })]);
    const again = await runArchive(ws.engine, { asOf: new Date(t0 + 55 * DAY) });
    expect(again.moved, 'a second run moves nothing').toEqual([]);
    const catalog = await listBackups(ws.engine);
    const full1 = catalog.find((e) => e.manifest.id === ids.full1!.id)!;
    expect(full1.storageClasses?.cold).toEqual({ [full1.manifest.artifacts[0]!.key]: server.storageClass });
    expect(catalog.find((e) => e.manifest.id === ids.full2!.id)!.storageClasses).toBeUndefined();
    const s = await status(ws.engine);
    expect(s.destinations[0]!.bytesByClass[server.storageClass]).toBe(run.moved.reduce((sum, m) => sum + m.bytes, 0));
    expect(s.destinations[0]!.bytesByClass.default).toBeGreaterThan(0);
    expect(s.oldestWithoutThaw?.id, 'chain 1 needs a thaw').toBe(ids.full2!.id);
  });

  it("verify checks archived replicas by size and the destination's checksum without reading them; --deep refuses them and says so", async () => {
    const before = await server.artifactGets();
    const results = await verify(ws.engine, { all: true });
    expect(results.flatMap((r) => r.artifacts.filter((a) => !a.ok).map((a) => a.problem))).toEqual([]);
    expect(results.map((r) => [r.backupId, r.ok])).toEqual([ids.full1, ids.inc1, ids.full2, ids.inc2].map((m) => [m!.id, true]));
    expect(await server.artifactGets(), 'no artifact was downloaded').toBe(before);
    const deep = await verify(ws.engine, { backup: ids.full1!.id, deep: true });
    expect(deep[0]!.ok).toBe(false);
    expect(deep[0]!.artifacts.find((a) => !a.ok)?.problem).toMatch(
      /is archived \(.+\) and --deep reads every byte back, which needs a thaw first: run `stowage verify full_backup_\S+ --deep --thaw`/,
    );
  });

  it('a restore needing archived artifacts refuses without --thaw: which ones, the thaw time per tier, the command; nothing is touched', async () => {
    const error = await restore(ws.engine, { backup: ids.inc1!.id, testMode: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: CoreErrorCode.ThawNeeded });
    const message = (error as Error).message;
    expect(message).toContain(ids.full1!.artifacts[0]!.key);
    expect(message).toContain(ids.inc1!.artifacts[0]!.key);
    expect(message).toMatch(/standard ≤ \d/);
    expect(message).toContain(`Run: stowage restore ${ids.inc1!.id} --test-mode --thaw --tier standard --wait`);
    const hot = await restore(ws.engine, { backup: ids.inc2!.id, testMode: true });
    expect(hot.thawMs, 'a hot chain needs no thaw').toBeUndefined();
  });

  it('thaw + wait + restore is byte-exact; thaw status follows archived → thawing → readable; a drill reports the thaw apart from its RTO', async () => {
    expect((await thawStatus(ws.engine, ids.inc1!.id)).artifacts.map((a) => a.state)).toEqual(['archived', 'archived']);
    const pending = await restore(ws.engine, { backup: ids.inc1!.id, testMode: true, thaw: { tier: 'standard', days: 2, wait: false } }).catch(
      (e: unknown) => e,
    );
    expect(pending).toMatchObject({ code: CoreErrorCode.ThawPending });
    const status = await thawStatus(ws.engine, ids.inc1!.id);
    expect(status.artifacts.map((a) => [a.state, a.storageClass])).toEqual([
      ['thawing', server.storageClass],
      ['thawing', server.storageClass],
    ]);
    // Waits, polling, until the server's clock has moved past the thaw time.
    const restoring = restore(ws.engine, { backup: ids.inc1!.id, testMode: true, thaw: { tier: 'standard', days: 2, wait: true, pollMs: 50 } });
    await new Promise((resolve) => setTimeout(resolve, 400));
    await server.advance(server.standardThawMs);
    const restored = await restoring;
    expect(restored.manifest.id).toBe(ids.inc1!.id);
    expect(restored.thawMs).toBeGreaterThanOrEqual(300);
    expect(restored.checks && restored.chain).toEqual([ids.full1!.id, ids.inc1!.id]);
    expect(ws.warnings.some((w) => /thaw of inc_backup_\S+: 2 of 2 artifact\(s\) readable/.test(w))).toBe(true);
    expect((await thawStatus(ws.engine, ids.inc1!.id)).artifacts.every((a) => a.state === 'readable' && a.thawExpires)).toBe(true);
    const deep = await verify(ws.engine, { backup: ids.full1!.id, deep: true });
    expect(deep[0]!.ok, 'thawed copies read back whole').toBe(true);
    const drilled = await drill(ws.engine, { backup: ids.inc1!.id });
    expect(drilled.ok).toBe(true);
    expect(drilled.thawMs, 'already thawed: no wait').toBeUndefined();
  });

  it('verify --deep --thaw requests the thaws, waits, reads the thawed bytes back; a byte flipped in a thawed object is damage', async () => {
    await server.advance(4 * DAY); // the restore's 2-day thaws have run out: archived again
    expect((await thawStatus(ws.engine, ids.full1!.id)).artifacts.map((a) => a.state)).toEqual(['archived']);
    const key = ids.full1!.artifacts.find((a) => a.role === 'database')!.key;
    const before = await server.artifactGets();
    const thaw = { tier: 'standard', days: 1, wait: true, pollMs: 50 } as const;
    const verifying = verify(ws.engine, { backup: ids.full1!.id, deep: true, thaw });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(
      (await thawStatus(ws.engine, ids.full1!.id)).artifacts.map((a) => a.state),
      'the thaw was requested',
    ).toEqual(['thawing']);
    await server.advance(server.standardThawMs);
    const [thawed] = await verifying;
    expect(thawed!.artifacts.filter((a) => !a.ok)).toEqual([]);
    expect(thawed!.ok).toBe(true);
    expect(await server.artifactGets(), 'the thawed bytes were read back').toBeGreaterThan(before);

    await server.flipByte(prefix, key);
    const [damaged] = await verify(ws.engine, { backup: ids.full1!.id, deep: true, thaw });
    expect(damaged!.ok).toBe(false);
    expect(damaged!.artifacts.filter((a) => !a.ok)).toMatchObject([{ destination: 'cold', key, problem: expect.any(String) }]);
    expect((await verify(ws.engine, { backup: ids.full1!.id }))[0]!.ok, "the destination's own checksum cannot see bit rot").toBe(true);
  });

  it("cleanup keeps archived objects younger than their class's minimum storage duration unless --allow-early-delete", async () => {
    const asOf = new Date(t0 + 60 * DAY);
    const dry = await cleanup(ws.engine, { dryRun: true, asOf });
    const keptIds = new Set(dry.earlyDeleteAvoided.map((e) => e.id));
    expect(keptIds).toEqual(new Set([ids.full1!.id, ids.inc1!.id]));
    expect(dry.earlyDeleteAvoided.every((e) => e.minimumDays === server.minimumDays && e.storageClass === server.storageClass && e.byteDays > 0)).toBe(true);
    expect(dry.removed.map((r) => r.what)).not.toContain(ids.full1!.id);
    const allowed = await cleanup(ws.engine, { dryRun: true, asOf, allowEarlyDelete: true });
    expect(allowed.earlyDeleteAvoided).toEqual([]);
    expect(allowed.removed.map((r) => r.what)).toEqual(expect.arrayContaining([ids.full1!.id, ids.inc1!.id]));
    const real = await cleanup(ws.engine, { asOf });
    expect(real.removed.map((r) => r.what)).not.toContain(ids.full1!.id);
    expect((await listBackups(ws.engine)).map((e) => e.manifest.id)).toContain(ids.full1!.id);
  });
});
