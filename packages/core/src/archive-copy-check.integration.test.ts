/*
 * Verification in one layer: an adapter's `setStorageClass` reports the copy as the store
 * describes it, and core's archive run decides. A backend that corrupts its server-side copies
 * (the s3rver launcher's --corrupt-copies, the OSS test server's flip-byte on CopyObject) never
 * gets its copy accepted, whichever checksum it reports: one the manifest records (CRC-64/NVME,
 * SHA-256, OSS's CRC-64) or none, where the single-part ETag before and after the move decides.
 */
import { builtinRegistry } from '@stowage/adapters';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { StorageErrorCode, bufferBody } from '@stowage/storage';
import { startS3rver, type S3rverProcess } from '@stowage/storage-s3/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runArchive } from './archive.js';
import { backup } from './backup.js';
import type { Manifest } from './manifest.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const ENV = { CC_S3_KEY: 'S3RVER', CC_S3_SECRET: 'S3RVER', CC_OSS_ID: 'oss-cc-id', CC_OSS_SECRET: 'oss-cc-secret-never-printed' };
const DAY = 86_400_000;

let corrupting: S3rverProcess;
let corruptingPlain: S3rverProcess;
let plain: S3rverProcess;
let oss: OssTestServer;

beforeAll(async () => {
  Object.assign(process.env, ENV);
  const bare = { checksums: false, conditionalWrites: false };
  [corrupting, corruptingPlain, plain, oss] = await Promise.all([
    startS3rver({ corruptCopies: true }),
    startS3rver({ ...bare, corruptCopies: true }),
    startS3rver(bare),
    startOssTestServer({ accessKeyId: ENV.CC_OSS_ID, accessKeySecret: ENV.CC_OSS_SECRET, buckets: ['wms-cc'] }),
  ]);
  for (const server of [corrupting, corruptingPlain, plain]) {
    await server.createBucket('wms-cc');
  }
}, 60_000);

afterAll(async () => {
  await Promise.all([corrupting?.stop(), corruptingPlain?.stop(), plain?.stop(), oss?.close()]);
  for (const name of Object.keys(ENV)) delete process.env[name];
});

const s3 = (server: () => S3rverProcess, checksumMode: string) => ({
  url: `s3://wms-cc/${checksumMode}-${Math.random().toString(36).slice(2, 8)}`,
  storageClass: 'GLACIER',
  options: () => ({ endpoint: server().endpoint, forcePathStyle: true, checksumMode, accessKeyIdEnv: 'CC_S3_KEY', secretAccessKeyEnv: 'CC_S3_SECRET' }),
});

const ossOptions = () => ({
  region: 'oss-cn-hangzhou',
  endpoint: oss.endpoint,
  secure: false,
  accessKeyIdEnv: 'CC_OSS_ID',
  accessKeySecretEnv: 'CC_OSS_SECRET',
});

const CORRUPTING = [
  { label: 'S3 reporting CRC-64/NVME (the manifest records it)', ...s3(() => corrupting, 'crc64nvme'), problem: /checksum differs/ },
  { label: 'S3 reporting SHA-256', ...s3(() => corrupting, 'sha256'), problem: /checksum differs/ },
  { label: 'S3 reporting no checksum (the ETag decides)', ...s3(() => corruptingPlain, 'none'), problem: /ETag "?\w+"?, the original's/ },
  {
    label: 'OSS (CRC-64 the manifest records)',
    url: 'oss://wms-cc/wms',
    storageClass: 'Archive',
    options: () => {
      oss.faults.add({ fault: { kind: 'flip-byte' }, operations: ['CopyObject'] });
      return ossOptions();
    },
    problem: /checksum differs/,
  },
];

/** A full backup at t0 at a destination whose policy archives it after a day; then an archive run two days later. */
async function archiveOnce(
  destination: { url: string; storageClass: string; options: () => Record<string, unknown> },
  beforeRun: (ws: Workspace, manifest: Manifest) => Promise<void> = async () => {},
) {
  const t0 = Date.now();
  let clock = t0;
  const ws = await makeWorkspace({
    config: {
      destinations: [
        {
          name: 'cold',
          url: destination.url,
          options: destination.options(),
          archive: { after: '1d', storageClass: destination.storageClass, types: ['full'] },
        },
      ],
    },
    engine: { registry: builtinRegistry(), now: () => new Date(clock) },
  });
  try {
    const { manifest } = await backup(ws.engine, { type: 'full' });
    await beforeRun(ws, manifest);
    clock = t0 + 2 * DAY;
    return { manifest, run: await runArchive(ws.engine, { asOf: new Date(clock) }) };
  } finally {
    await ws.dispose();
  }
}

describe('an archive run never accepts a corrupted server-side copy', () => {
  it.each(CORRUPTING)('$label: the move fails with checksum_mismatch, naming key and class; nothing counts as moved', async (destination) => {
    const { manifest, run } = await archiveOnce(destination);
    expect(run.moved).toEqual([]);
    const key = manifest.artifacts[0]!.key;
    expect(run.failures).toEqual([
      expect.objectContaining({
        destination: 'cold',
        key,
        code: StorageErrorCode.ChecksumMismatch,
        message: expect.stringMatching(
          new RegExp(`^${key} at cold does not match its manifest after it was moved to ${destination.storageClass} \\(.+\\); \`stowage sync\``),
        ),
      }),
    ]);
    expect(run.failures[0]!.message).toMatch(destination.problem);
  });

  it('an original that no longer matches its manifest (replaced with other bytes) is not moved at all', async () => {
    let copiesBefore = 0;
    const { manifest, run } = await archiveOnce({ url: 'oss://wms-cc/replaced', storageClass: 'Archive', options: ossOptions }, async (ws, taken) => {
      await ws.engine.destinations[0]!.adapter.put(taken.artifacts[0]!.key, bufferBody('other bytes'));
      copiesBefore = oss.requests.filter((r) => r.operation === 'CopyObject').length;
    });
    const key = manifest.artifacts[0]!.key;
    expect(run.failures).toEqual([
      expect.objectContaining({ key, code: StorageErrorCode.ChecksumMismatch, message: expect.stringContaining(`${key} at cold was not moved to Archive`) }),
    ]);
    expect(oss.requests.filter((r) => r.operation === 'CopyObject').length, 'no copy was made').toBe(copiesBefore);
  });

  it('an endpoint reporting no checksum whose copy keeps the single-part ETag is accepted (the control)', async () => {
    const { manifest, run } = await archiveOnce(s3(() => plain, 'none'));
    expect(run.failures).toEqual([]);
    expect(run.moved.map((m) => m.key)).toContain(manifest.artifacts[0]!.key);
  });
});
