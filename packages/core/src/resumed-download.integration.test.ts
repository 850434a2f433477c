/*
 * A download cut mid-stream at a real S3 or OSS endpoint resumes inside the adapter, and the resume
 * is logged where the retry wrapper's retries go: a warning naming the destination, the key and
 * the byte it went on from (or the caller's own `onRetry`).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { builtinRegistry } from '@stowage/adapters';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import type { RetryOptions, StorageAdapter } from '@stowage/storage';
import { startS3rver, type S3rverProcess } from '@stowage/storage-s3/testing';
import { forwarding, resumedFrom } from '@stowage/storage-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import type { EngineOptions } from './engine.js';
import type { Manifest } from './manifest.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const ENV = { RD_S3_KEY: 'S3RVER', RD_S3_SECRET: 'S3RVER', RD_OSS_ID: 'oss-rd-id', RD_OSS_SECRET: 'oss-rd-secret-never-printed' };
/** Where the server drops the connection in the database artifact's body. */
const CUT = 512 * 1024;

let s3: S3rverProcess;
let oss: OssTestServer;

const SERVERS = [
  {
    name: 's3',
    destination: () => ({
      name: 's3',
      url: 's3://wms-rd/wms',
      options: { endpoint: s3.endpoint, forcePathStyle: true, accessKeyIdEnv: 'RD_S3_KEY', secretAccessKeyEnv: 'RD_S3_SECRET' },
    }),
    cutNextGet: () => s3.cutNextGets(CUT),
    /** The Range headers of the GETs of `key` the server answered. */
    ranges: async (key: string) => (await s3.requests()).filter((r) => r.method === 'GET' && r.path === `/wms-rd/wms/${key}`).map((r) => r.range),
  },
  {
    name: 'oss',
    destination: () => ({
      name: 'oss',
      url: 'oss://wms-rd/wms',
      options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'RD_OSS_ID', accessKeySecretEnv: 'RD_OSS_SECRET' },
    }),
    cutNextGet: async () => void oss.faults.add({ fault: { kind: 'cut-response', after: CUT } }),
    ranges: async (key: string) => oss.requests.filter((r) => r.operation === 'GetObject' && r.key === `wms/${key}`).map((r) => r.range),
  },
];

beforeAll(async () => {
  Object.assign(process.env, ENV);
  [s3, oss] = await Promise.all([startS3rver(), startOssTestServer({ accessKeyId: ENV.RD_OSS_ID, accessKeySecret: ENV.RD_OSS_SECRET, buckets: ['wms-rd'] })]);
  await s3.createBucket('wms-rd');
}, 60_000);

afterAll(async () => {
  await Promise.all([s3?.stop(), oss?.close()]);
  for (const name of Object.keys(ENV)) delete process.env[name];
});

describe.each(SERVERS)('a restore whose download from $name is cut mid-stream', (server) => {
  let ws: Workspace;
  let manifest: Manifest | undefined;
  /** Arms the server's cut just before a restore fetches the database artifact (manifests are read first). */
  const cutDatabaseGet = (adapter: StorageAdapter) =>
    forwarding(adapter, {
      get: async (key, options) => {
        if (key === manifest?.artifacts[0]?.key) await server.cutNextGet();
        return adapter.get(key, options);
      },
    });
  const open = async (engine: EngineOptions = {}): Promise<Manifest> => {
    manifest = undefined;
    ws = await makeWorkspace({
      config: { destinations: [server.destination()] },
      engine: { registry: builtinRegistry(), wrappers: [cutDatabaseGet], ...engine },
    });
    const taken = (await backup(ws.engine, { type: 'full' })).manifest;
    expect(taken.artifacts[0]!.size).toBeGreaterThan(2 * CUT);
    manifest = taken;
    return taken;
  };

  afterAll(async () => ws?.dispose());

  it('resumes from the bytes received and warns once, naming destination, key and the byte it went on from', async () => {
    const manifest = await open();
    const key = manifest.artifacts[0]!.key;
    const earlier = (await server.ranges(key)).length; // a backup may read it back
    const result = await restore(ws.engine, { testMode: true });
    expect(result.source).toBe(server.name);
    const restored = createHash('sha256')
      .update(await readFile(result.target!))
      .digest('hex');
    expect(restored).toBe(manifest.source.snapshotSha256);
    const resumes = ws.warnings.filter((w) => w.includes('resume'));
    expect(resumes).toEqual([expect.stringMatching(new RegExp(`^${server.name}: get '${key}' failed \\(.+\\); resume 1 from byte \\d+$`))]);
    const from = Number(/from byte (\d+)$/.exec(resumes[0]!)![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(CUT);
    const [whole, rest, ...more] = (await server.ranges(key)).slice(earlier);
    expect([whole, more]).toEqual([undefined, []]);
    expect(resumedFrom(rest)).toBe(from);
  });

  it('a caller’s own onRetry gets the resume instead of a warning (retry wrapper on)', async () => {
    await ws.dispose();
    const seen: Parameters<NonNullable<RetryOptions['onRetry']>>[0][] = [];
    const manifest = await open({ retry: { baseDelayMs: 1, onRetry: (event) => seen.push(event) } });
    await restore(ws.engine, { testMode: true });
    expect(seen).toEqual([
      expect.objectContaining({ operation: 'get', key: manifest.artifacts[0]!.key, attempt: 1, delayMs: 0, resumeAt: expect.any(Number) }),
    ]);
    expect(ws.warnings.filter((w) => w.includes('resume'))).toEqual([]);
  });
});
