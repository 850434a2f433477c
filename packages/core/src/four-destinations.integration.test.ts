import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { startS3rver, type S3rverProcess } from '@stowage/storage-s3/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { openEngine } from './engine.js';
import { probeDestinations } from './probe.js';
import { restore } from './restore.js';
import { sync } from './sync.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const ENV = { E2E_S3_KEY: 'S3RVER', E2E_S3_SECRET: 'S3RVER', E2E_OSS_ID: 'oss-e2e-id', E2E_OSS_SECRET: 'oss-e2e-secret-never-printed' };
const sha256File = async (path: string) => createHash('sha256').update(await readFile(path)).digest('hex');

let regionA: S3rverProcess;
let regionB: S3rverProcess;
let oss: OssTestServer;
let ws: Workspace;

const s3Client = (endpoint: string) =>
  new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, requestChecksumCalculation: 'WHEN_REQUIRED' });
const s3Destination = (name: string, server: S3rverProcess) => ({
  name,
  url: 's3://backups/greaterwms',
  options: { endpoint: server.endpoint, forcePathStyle: true, accessKeyIdEnv: 'E2E_S3_KEY', secretAccessKeyEnv: 'E2E_S3_SECRET' },
});

beforeAll(async () => {
  Object.assign(process.env, ENV);
  [regionA, regionB, oss] = await Promise.all([startS3rver(), startS3rver(), startOssTestServer({ accessKeyId: ENV.E2E_OSS_ID, accessKeySecret: ENV.E2E_OSS_SECRET, buckets: ['wms-backups'] })]);
  for (const server of [regionA, regionB]) await s3Client(server.endpoint).send(new CreateBucketCommand({ Bucket: 'backups' }));
  ws = await makeWorkspace({
    config: {
      destinations: [
        { name: 'local', url: 'backups' },
        s3Destination('s3-eu-west-1', regionA),
        s3Destination('s3-ap-southeast-1', regionB),
        { name: 'oss-cn-hangzhou', url: 'oss://wms-backups/greaterwms', options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'E2E_OSS_ID', accessKeySecretEnv: 'E2E_OSS_SECRET' } },
      ],
    },
  });
});

afterAll(async () => {
  await ws?.dispose();
  await Promise.all([regionA?.stop(), regionB?.stop(), oss?.close()]);
  for (const name of Object.keys(ENV)) delete process.env[name];
});

describe('one backup, four destinations (local, two S3 regions, Aliyun OSS)', () => {
  it('are probed: a round trip everywhere, and what each S3 endpoint supports', async () => {
    const probes = await probeDestinations(ws.engine);
    expect(probes.map((p) => [p.destination, p.ok])).toEqual([
      ['local', true],
      ['s3-eu-west-1', true],
      ['s3-ap-southeast-1', true],
      ['oss-cn-hangzhou', true],
    ]);
    expect(probes.find((p) => p.destination === 'oss-cn-hangzhou')?.roundTrip.serverChecksums).toContain('crc64ecma');
    expect(probes.find((p) => p.destination === 's3-eu-west-1')?.s3).toMatchObject({ conditionalWrites: false, recommended: { checksumMode: 'none' } });
  });

  it('replicates and verifies everywhere, restores through a fallback, and sync repairs the damaged replica', async () => {
    const full = await backup(ws.engine, { type: 'full' });
    simulateWarehouseActivity(ws.database, { seed: 3, operations: 20 });
    const inc = await backup(ws.engine, { type: 'incremental' });
    for (const result of [full, inc]) {
      expect(result.outcome).toBe('ok');
      expect(result.committed.sort()).toEqual(['local', 'oss-cn-hangzhou', 's3-ap-southeast-1', 's3-eu-west-1']);
    }
    expect(full.manifest.replicas['oss-cn-hangzhou']?.verifiedBy).toBe('server-crc64ecma');
    expect(full.manifest.artifacts.every((a) => /^\d+$/.test(a.crc64ecma ?? ''))).toBe(true);
    // Non-deep verify compares OSS's CRC-64 with the manifest's: no download from OSS.
    const before = oss.requests.length;
    expect((await verify(ws.engine, { all: true })).every((v) => v.ok)).toBe(true);
    const during = oss.requests.slice(before);
    expect(during.some((r) => r.operation === 'HeadObject')).toBe(true);
    const downloads = during.filter((r) => r.operation === 'GetObject').map((r) => r.key ?? '');
    expect(downloads.length).toBeGreaterThan(0);
    expect(downloads.every((key) => key.endsWith('.manifest.json'))).toBe(true); // manifests only, no artifact bytes

    // Alter the delta at region A behind Stowage's back (same size, one byte flipped).
    const client = s3Client(regionA.endpoint);
    const key = `greaterwms/incremental/${inc.manifest.id}.delta`;
    const original = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: 'backups', Key: key }))).Body!.transformToByteArray());
    const altered = Buffer.from(original);
    altered[altered.length - 10]! ^= 0xff;
    await client.send(new PutObjectCommand({ Bucket: 'backups', Key: key, Body: altered }));

    const restored = await restore(ws.engine, { backup: inc.manifest.id, from: undefined, testMode: true });
    expect(await sha256File(restored.target!)).toBe(inc.manifest.source.snapshotSha256);
    // Region A alone cannot serve the damaged delta: reading from it only falls back when allowed.
    await expect(restore(ws.engine, { backup: inc.manifest.id, from: 's3-eu-west-1', testMode: true })).rejects.toMatchObject({ code: 'stowage.backup.corrupt' });

    const report = await verify(ws.engine, { backup: inc.manifest.id });
    expect(report[0]!.artifacts.filter((a) => !a.ok)).toMatchObject([{ destination: 's3-eu-west-1', key: `incremental/${inc.manifest.id}.delta` }]);
    const repaired = await sync(ws.engine);
    expect(repaired.actions).toMatchObject([{ backupId: inc.manifest.id, destination: 's3-eu-west-1', problem: 'damaged', outcome: 'repaired' }]);
    expect((await verify(ws.engine, { all: true, deep: true })).every((v) => v.ok)).toBe(true);

    // Each destination alone lists and restores.
    for (const name of ['local', 's3-eu-west-1', 's3-ap-southeast-1', 'oss-cn-hangzhou']) {
      const only = ws.engine.destinations.filter((d) => d.name === name);
      expect((await listBackups(ws.engine, only)).map((e) => e.manifest.id)).toEqual([full.manifest.id, inc.manifest.id]);
      const fromOne = await restore(ws.engine, { from: name, testMode: true });
      expect(await sha256File(fromOne.target!)).toBe(inc.manifest.source.snapshotSha256);
    }
  });
});

describe('destination faults', () => {
  it('wrong credentials and a missing bucket fail clearly, naming the destination, never printing the secret', async () => {
    process.env.E2E_OSS_WRONG = 'wrong-secret-must-not-leak';
    const faulty = await makeWorkspace({
      config: {
        destinations: [
          { name: 'local', url: 'backups' },
          { name: 'oss-wrong-key', url: 'oss://wms-backups/x', options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'E2E_OSS_ID', accessKeySecretEnv: 'E2E_OSS_WRONG' } },
          { ...s3Destination('s3-no-bucket', regionA), url: 's3://no-such-bucket/x' },
        ],
        quorum: 1,
      },
    });
    try {
      const result = await backup(faulty.engine, { type: 'full' });
      expect(result.outcome).toBe('degraded');
      const failures = Object.fromEntries(result.failures.map((f) => [f.destination, f]));
      expect(failures['oss-wrong-key']).toMatchObject({ code: 'stowage.storage.permission_denied' });
      expect(failures['s3-no-bucket']?.message).toMatch(/no-such-bucket/);
      expect(JSON.stringify(result)).not.toContain('wrong-secret-must-not-leak');
      expect(JSON.stringify(result)).not.toContain(ENV.E2E_OSS_SECRET);
    } finally {
      delete process.env.E2E_OSS_WRONG;
      await faulty.dispose();
    }
  });

  it('a destination that fails mid-upload and recovers is retried, and the backup is whole', async () => {
    const retrying = await openEngine(ws.config, { retry: { baseDelayMs: 10 } });
    oss.faults.failNext(2, 503);
    const result = await backup(retrying, { type: 'full' });
    expect(oss.faults.pending).toBe(0); // both injected 503s were met, and retried
    expect(result.outcome).toBe('ok');
    expect((await verify(ws.engine, { backup: result.manifest.id, deep: true }))[0]?.ok).toBe(true);
  });
});
