import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { builtinRegistry } from '@stowage/adapters';
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
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';
import { verify } from './verify.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const ENV = { E2E_S3_KEY: 'S3RVER', E2E_S3_SECRET: 'S3RVER', E2E_OSS_ID: 'oss-e2e-id', E2E_OSS_SECRET: 'oss-e2e-secret-never-printed' };

let regionA: S3rverProcess;
let regionB: S3rverProcess;
let oss: OssTestServer;
let ws: Workspace;

const s3Client = (endpoint: string) =>
  new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
const s3Destination = (name: string, server: S3rverProcess, options: Record<string, unknown> = {}) => ({
  name,
  url: 's3://backups/greaterwms',
  options: { endpoint: server.endpoint, forcePathStyle: true, accessKeyIdEnv: 'E2E_S3_KEY', secretAccessKeyEnv: 'E2E_S3_SECRET', ...options },
});
/** Requests for artifact bytes (not manifests) in a server's request log since `from`. */
const artifactDownloads = async (server: S3rverProcess, from: number) =>
  (await server.requests())
    .slice(from)
    .filter((r) => r.method === 'GET' && r.path.startsWith('/backups/greaterwms/') && !r.path.endsWith('.manifest.json') && !r.path.includes('/locks/'));

/**
 * The same scenario against S3 servers that behave as AWS does (flexible checksums and conditional
 * writes, configured as the probe recommends: one region CRC-64/NVME, the other SHA-256) and against
 * plain s3rver (neither; the adapter's defaults for a custom endpoint).
 */
const VARIANTS = [
  {
    label: 'S3 with checksums and conditional writes',
    aws: true,
    regionA: { checksumMode: 'crc64nvme', conditionalWrites: true },
    regionB: { checksumMode: 'sha256', conditionalWrites: true },
  },
  { label: 'plain s3rver', aws: false, regionA: {}, regionB: {} },
] as const;

describe.each(VARIANTS)('one backup, four destinations (local, two S3 regions, Aliyun OSS): $label', (variant) => {
  beforeAll(async () => {
    Object.assign(process.env, ENV);
    const features = { checksums: variant.aws, conditionalWrites: variant.aws };
    [regionA, regionB, oss] = await Promise.all([
      startS3rver(features),
      startS3rver(features),
      startOssTestServer({ accessKeyId: ENV.E2E_OSS_ID, accessKeySecret: ENV.E2E_OSS_SECRET, buckets: ['wms-backups'] }),
    ]);
    for (const server of [regionA, regionB]) await s3Client(server.endpoint).send(new CreateBucketCommand({ Bucket: 'backups' }));
    ws = await makeWorkspace({
      config: {
        destinations: [
          { name: 'local', url: 'backups' },
          s3Destination('s3-eu-west-1', regionA, variant.regionA),
          s3Destination('s3-ap-southeast-1', regionB, variant.regionB),
          {
            name: 'oss-cn-hangzhou',
            url: 'oss://wms-backups/greaterwms',
            options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'E2E_OSS_ID', accessKeySecretEnv: 'E2E_OSS_SECRET' },
          },
        ],
      },
      engine: { registry: builtinRegistry() },
    });
  });

  afterAll(async () => {
    await ws?.dispose();
    await Promise.all([regionA?.stop(), regionB?.stop(), oss?.close()]);
    for (const name of Object.keys(ENV)) delete process.env[name];
  });

  it('are probed: a round trip everywhere, and what each S3 endpoint supports', async () => {
    const probes = await probeDestinations(ws.engine);
    expect(probes.map((p) => [p.destination, p.ok])).toEqual([
      ['local', true],
      ['s3-eu-west-1', true],
      ['s3-ap-southeast-1', true],
      ['oss-cn-hangzhou', true],
    ]);
    expect(probes.find((p) => p.destination === 'oss-cn-hangzhou')?.roundTrip.serverChecksums).toContain('crc64ecma');
    expect(probes.find((p) => p.destination === 's3-eu-west-1')?.endpoint).toMatchObject({
      details: variant.aws ? { conditionalWrites: true } : { conditionalWrites: false },
      recommended: variant.aws ? { checksumMode: 'crc64nvme', conditionalWrites: true } : { checksumMode: 'none' },
    });
    expect(probes.find((p) => p.destination === 'oss-cn-hangzhou')).not.toHaveProperty('endpoint'); // the OSS factory has no probe
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
    // S3 replicas: verified from what the endpoint reports (CRC-64/NVME, SHA-256), or read back without checksums.
    expect([full.manifest.replicas['s3-eu-west-1']?.verifiedBy, full.manifest.replicas['s3-ap-southeast-1']?.verifiedBy]).toEqual(
      variant.aws ? ['server-crc64nvme', 'server-sha256'] : ['sha256-readback', 'sha256-readback'],
    );
    expect(full.manifest.artifacts.every((a) => (a.crc64nvme !== undefined) === variant.aws)).toBe(true);
    // Non-deep verify compares OSS's CRC-64 (and S3's checksums) with the manifest's: no artifact download.
    const before = oss.requests.length;
    const s3Before = await Promise.all([regionA, regionB].map(async (server) => (await server.requests()).length));
    expect((await verify(ws.engine, { all: true })).every((v) => v.ok)).toBe(true);
    const during = oss.requests.slice(before);
    expect(during.some((r) => r.operation === 'HeadObject')).toBe(true);
    const downloads = during.filter((r) => r.operation === 'GetObject').map((r) => r.key ?? '');
    expect(downloads.length).toBeGreaterThan(0);
    expect(downloads.every((key) => key.endsWith('.manifest.json'))).toBe(true); // manifests only, no artifact bytes
    const s3Downloads = await Promise.all([regionA, regionB].map((server, i) => artifactDownloads(server, s3Before[i]!)));
    if (variant.aws) expect(s3Downloads).toEqual([[], []]);
    else expect(s3Downloads.map((list) => list.length)).toEqual([4, 4]); // two backups × (database or delta, page hashes)

    // Alter the delta at region A behind Stowage's back (same size, one byte flipped).
    const client = s3Client(regionA.endpoint);
    const key = `greaterwms/incremental/${inc.manifest.id}.delta`;
    const original = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: 'backups', Key: key }))).Body!.transformToByteArray());
    const altered = Buffer.from(original);
    altered[altered.length - 10]! ^= 0xff;
    await client.send(new PutObjectCommand({ Bucket: 'backups', Key: key, Body: altered }));

    const restored = await restore(ws.engine, { backup: inc.manifest.id, testMode: true });
    expect(await sha256File(restored.target!)).toBe(inc.manifest.source.snapshotSha256);
    // Region A alone cannot serve the damaged delta: reading from it only falls back when allowed.
    await expect(restore(ws.engine, { backup: inc.manifest.id, from: 's3-eu-west-1', testMode: true })).rejects.toMatchObject({
      code: 'stowage.backup.corrupt',
    });

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

  if (variant.aws) {
    it("a byte flipped in the stored object on the server is found by verify --deep; after repair HeadObject reports the manifest's checksum", async () => {
      const full = await backup(ws.engine, { type: 'full' });
      const artifact = full.manifest.artifacts.find((a) => a.role === 'database')!;
      const head = () =>
        s3Client(regionA.endpoint).send(new HeadObjectCommand({ Bucket: 'backups', Key: `greaterwms/${artifact.key}`, ChecksumMode: 'ENABLED' }));
      expect((await head()).ChecksumCRC64NVME).toBe(artifact.crc64nvme);
      // Bit rot behind the API: the stored checksum stays what was verified at upload, as on AWS.
      const stored = join(regionA.directory, 'backups', 'greaterwms', `${artifact.key}._S3rver_object`);
      const bytes = await readFile(stored);
      bytes[bytes.length >> 1]! ^= 0x01;
      await writeFile(stored, bytes);
      expect((await verify(ws.engine, { backup: full.manifest.id }))[0]!.ok).toBe(true); // the server's own checksum cannot see it
      const deep = await verify(ws.engine, { backup: full.manifest.id, deep: true });
      expect(deep[0]!.artifacts.filter((a) => !a.ok)).toMatchObject([
        { destination: 's3-eu-west-1', key: artifact.key, problem: expect.stringContaining('do not match the checksum the endpoint reports') },
      ]);

      const repaired = await sync(ws.engine, { deep: true });
      expect(repaired.actions).toMatchObject([{ backupId: full.manifest.id, destination: 's3-eu-west-1', problem: 'damaged', outcome: 'repaired' }]);
      expect((await head()).ChecksumCRC64NVME).toBe(artifact.crc64nvme);
      const from = (await regionA.requests()).length;
      const problems = async (deep: boolean) => (await verify(ws.engine, { backup: full.manifest.id, deep }))[0]!.artifacts.filter((a) => !a.ok);
      expect(await problems(false)).toEqual([]);
      expect(await artifactDownloads(regionA, from)).toEqual([]);
      expect(await problems(true)).toEqual([]);
    });
  }

  if (!variant.aws)
    describe('destination faults', () => {
      it('wrong credentials and a missing bucket fail clearly, naming the destination, never printing the secret', async () => {
        process.env.E2E_OSS_WRONG = 'wrong-secret-must-not-leak';
        const faulty = await makeWorkspace({
          config: {
            destinations: [
              { name: 'local', url: 'backups' },
              {
                name: 'oss-wrong-key',
                url: 'oss://wms-backups/x',
                options: {
                  region: 'oss-cn-hangzhou',
                  endpoint: oss.endpoint,
                  secure: false,
                  accessKeyIdEnv: 'E2E_OSS_ID',
                  accessKeySecretEnv: 'E2E_OSS_WRONG',
                },
              },
              { ...s3Destination('s3-no-bucket', regionA), url: 's3://no-such-bucket/x' },
            ],
            quorum: 1,
          },
          engine: { registry: builtinRegistry() },
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
        const retrying = await openEngine(ws.config, { registry: builtinRegistry(), retry: { baseDelayMs: 10 } });
        oss.faults.failNext(2, 503);
        const result = await backup(retrying, { type: 'full' });
        expect(oss.faults.pending).toBe(0); // both injected 503s were met, and retried
        expect(result.outcome).toBe('ok');
        expect((await verify(ws.engine, { backup: result.manifest.id, deep: true }))[0]?.ok).toBe(true);
      });
    });
});
