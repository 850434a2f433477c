/*
 * Verification is in one layer: the OSS adapter only reports the CRC-64 the server stored next to
 * the one it sent; the engine compares them. Against the real OSS test server storing damaged
 * bytes, the replica must fail (never a false success) and leave nothing at that destination.
 */
import { builtinRegistry } from '@stowage/adapters';
import { startOssTestServer, type OssOperation, type OssTestServer } from '@stowage/oss-test-server';
import { StorageErrorCode } from '@stowage/storage';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

const ENV = { VL_OSS_ID: 'LTAI-verification', VL_OSS_SECRET: 'verification-secret' };
let oss: OssTestServer;
let ws: Workspace | undefined;

beforeAll(async () => {
  Object.assign(process.env, ENV);
  oss = await startOssTestServer({ accessKeyId: ENV.VL_OSS_ID, accessKeySecret: ENV.VL_OSS_SECRET, buckets: ['wms'] });
});
afterAll(async () => {
  await oss?.close();
  for (const name of Object.keys(ENV)) delete process.env[name];
});
afterEach(async () => {
  oss.faults.clear();
  await ws?.dispose();
  ws = undefined;
});

async function workspace(prefix: string, partSizeMiB = 8): Promise<Workspace> {
  return makeWorkspace({
    config: {
      quorum: 1,
      destinations: [
        { name: 'local', url: 'backups' },
        {
          name: 'oss',
          url: `oss://wms/${prefix}`,
          options: {
            region: 'cn-hangzhou',
            endpoint: oss.endpoint,
            secure: false,
            accessKeyIdEnv: 'VL_OSS_ID',
            accessKeySecretEnv: 'VL_OSS_SECRET',
            partSizeMiB,
          },
        },
      ],
    },
    engine: { registry: builtinRegistry() },
  });
}

describe('the engine verifies what the OSS adapter reports', () => {
  it('an intact replica is confirmed by the server CRC-64, which the manifest records, without a download', async () => {
    ws = await workspace('intact');
    const start = oss.requests.length;
    const { outcome, manifest } = await backup(ws.engine, { type: 'full' });
    expect(outcome).toBe('ok');
    expect(manifest.replicas.oss?.verifiedBy).toBe('server-crc64ecma');
    expect(manifest.artifacts.every((a) => /^\d+$/.test(a.crc64ecma ?? ''))).toBe(true);
    expect(oss.requests.slice(start).map((r) => r.operation)).not.toContain('GetObject');
  });

  it.each<[string, 'truncate' | 'flip-byte', OssOperation, number]>([
    ['a simple put stored with a flipped byte', 'flip-byte', 'PutObject', 8],
    ['a simple put stored truncated', 'truncate', 'PutObject', 8],
    ['a multipart part stored with a flipped byte', 'flip-byte', 'UploadPart', 0.1],
  ])('%s: the replica fails with checksum_mismatch and nothing is left there', async (_, kind, operation, partSizeMiB) => {
    ws = await workspace(`${kind}-${operation}`, partSizeMiB);
    oss.faults.add({ fault: { kind }, operations: [operation] });
    const result = await backup(ws.engine, { type: 'full' });
    expect(oss.faults.pending).toBe(0);
    expect(result).toMatchObject({ outcome: 'degraded', committed: ['local'] });
    expect(result.failures).toEqual([expect.objectContaining({ destination: 'oss', code: StorageErrorCode.ChecksumMismatch })]);
    expect(result.failures[0]!.message).toMatch(/CRC-64 reported by the destination differs|bytes stored, \d+ expected/);
    expect(oss.keys('wms').filter((key) => key.startsWith(`${kind}-${operation}/`) && !key.includes('.lock'))).toEqual([]);
  });
});
