import { randomBytes, randomUUID } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import {
  CreateBucketCommand,
  DeleteBucketLifecycleCommand,
  GetBucketLifecycleConfigurationCommand,
  HeadObjectCommand,
  PutBucketLifecycleConfigurationCommand,
  PutObjectCommand,
  RestoreObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageErrorCode, StorageRegistry, bufferBody } from '@stowage/storage';
import { s3StorageFactory } from './factory.js';
import type { S3Storage } from './s3.js';
import { startS3rver, type S3rverProcess } from './s3rver.test-support.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
process.env.STOWAGE_TEST_S3_KEY = 'S3RVER';
process.env.STOWAGE_TEST_S3_SECRET = 'S3RVER';

const BUCKET = 'archive-tests';
const HOUR = 3_600_000;
let server: S3rverProcess;
let corrupting: S3rverProcess;
let admin: S3Client;

beforeAll(async () => {
  [server, corrupting] = await Promise.all([startS3rver(), startS3rver({ corruptCopies: true })]);
  admin = clientFor(server);
  await Promise.all([admin.send(new CreateBucketCommand({ Bucket: BUCKET })), clientFor(corrupting).send(new CreateBucketCommand({ Bucket: BUCKET }))]);
}, 60_000);

afterAll(async () => {
  admin?.destroy();
  await Promise.all([server?.stop(), corrupting?.stop()]);
});

function clientFor(s: S3rverProcess): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint: s.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
}

async function openS3(s = server, options: Record<string, unknown> = {}): Promise<S3Storage> {
  const spec = {
    url: `s3://${BUCKET}/t/${randomUUID()}`,
    options: {
      endpoint: s.endpoint,
      forcePathStyle: true,
      accessKeyIdEnv: 'STOWAGE_TEST_S3_KEY',
      secretAccessKeyEnv: 'STOWAGE_TEST_S3_SECRET',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      ...options,
    },
  };
  return (await new StorageRegistry().register(s3StorageFactory).open(spec, { baseDir: process.cwd() })) as S3Storage;
}

describe('S3 archive classes on the test server, through the real SDK', () => {
  it('DEEP_ARCHIVE: listed with its class, refuses reads, thaws (bulk, 48 h) with x-amz-restore, reads byte-exact, freezes again at expiry', async () => {
    const storage = await openS3();
    const bytes = randomBytes(300_000);
    await storage.put('full/a.bin', bufferBody(bytes));
    const stored = (await storage.stat('full/a.bin'))!;
    expect(stored.checksums.crc64nvme).toBeDefined();
    const archived = await storage.setStorageClass('full/a.bin', 'DEEP_ARCHIVE');
    expect(archived).toMatchObject({ size: bytes.length, storageClass: 'DEEP_ARCHIVE', archive: { state: 'archived' } });
    expect(archived.checksums.crc64nvme).toBe(stored.checksums.crc64nvme);
    const listed = [];
    for await (const info of storage.list('full/')) listed.push(info);
    expect(listed).toMatchObject([{ key: 'full/a.bin', storageClass: 'DEEP_ARCHIVE' }]);
    await expect(storage.get('full/a.bin')).rejects.toMatchObject({ code: StorageErrorCode.ObjectArchived });
    await expect(storage.requestThaw('full/a.bin', { days: 2, tier: 'expedited' })).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });

    expect((await storage.requestThaw('full/a.bin', { days: 2, tier: 'bulk' })).archive).toEqual({ state: 'thawing' });
    const head = await admin.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${storage.prefix}/full/a.bin` }));
    expect([head.StorageClass, head.Restore]).toEqual(['DEEP_ARCHIVE', 'ongoing-request="true"']);
    await expect(storage.get('full/a.bin')).rejects.toMatchObject({ code: StorageErrorCode.ObjectArchived });
    await server.advanceThawClock(47 * HOUR);
    expect((await storage.stat('full/a.bin'))?.archive?.state).toBe('thawing');
    await server.advanceThawClock(1 * HOUR);
    const readable = await storage.stat('full/a.bin');
    expect(readable?.archive?.state).toBe('readable');
    expect(readable!.archive!.thawExpires!.getTime()).toBeGreaterThan(Date.now() + 49 * HOUR);
    expect(Buffer.compare(await buffer(await storage.get('full/a.bin')), bytes)).toBe(0);
    expect((await storage.requestThaw('full/a.bin', { days: 2 })).archive?.state, 'a readable object needs no new request').toBe('readable');
    await server.advanceThawClock(4 * 24 * HOUR);
    expect((await storage.stat('full/a.bin'))?.archive).toEqual({ state: 'archived' });
    await storage.close();
  });

  it('moves an object back to STANDARD once thawed, and never copies a frozen one', async () => {
    const storage = await openS3();
    await storage.put('k', bufferBody('hello'));
    await storage.setStorageClass('k', 'GLACIER');
    await expect(storage.setStorageClass('k', 'STANDARD')).rejects.toMatchObject({ code: StorageErrorCode.ObjectArchived });
    await storage.requestThaw('k', { days: 1, tier: 'expedited' });
    await server.advanceThawClock(5 * 60_000);
    const hot = await storage.setStorageClass('k', 'STANDARD');
    expect(hot.archive).toBeUndefined();
    expect((await buffer(await storage.get('k'))).toString()).toBe('hello');
    await expect(storage.setStorageClass('k', 'COLD')).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });
    await storage.close();
  });

  it('a copy whose bytes differ from the original is reported as S3 reports it (checksum and ETag of the copy), in either checksum mode; core decides', async () => {
    for (const checksumMode of ['crc64nvme', 'sha256'] as const) {
      const storage = await openS3(corrupting, { checksumMode });
      await storage.put('k', bufferBody(randomBytes(1000)));
      const original = (await storage.stat('k'))!;
      const copy = await storage.setStorageClass('k', 'GLACIER');
      expect(copy).toMatchObject({ size: 1000, storageClass: 'GLACIER' });
      expect(copy.checksums[checksumMode]).toBeDefined();
      expect(copy.checksums[checksumMode]).not.toBe(original.checksums[checksumMode]);
      expect(copy.etag).not.toBe(original.etag);
      await storage.close();
    }
  });

  it('the server answers RestoreObject as AWS does: 403 for a hot object, 409 while one runs', async () => {
    const key = `raw/${randomUUID()}`;
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'x' }));
    const restore = () =>
      admin.send(new RestoreObjectCommand({ Bucket: BUCKET, Key: key, RestoreRequest: { Days: 1, GlacierJobParameters: { Tier: 'Standard' } } }));
    await expect(restore()).rejects.toMatchObject({ name: 'InvalidObjectState', $metadata: { httpStatusCode: 403 } });
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'x', StorageClass: 'GLACIER' }));
    await expect(restore()).resolves.toMatchObject({ $metadata: { httpStatusCode: 202 } });
    await expect(restore()).rejects.toMatchObject({ name: 'RestoreAlreadyInProgress', $metadata: { httpStatusCode: 409 } });
    await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'y', StorageClass: 'GLACIER' }));
    expect((await admin.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }))).Restore, 'a new object forgets the old restore').toBeUndefined();
  });

  it('the server keeps a bucket lifecycle configuration: put, get back, refuse an unknown class, delete', async () => {
    const rules = [
      { ID: 'stowage-full', Status: 'Enabled' as const, Filter: { Prefix: 'wms/full/' }, Transitions: [{ Days: 30, StorageClass: 'DEEP_ARCHIVE' as const }] },
    ];
    await admin.send(new PutBucketLifecycleConfigurationCommand({ Bucket: BUCKET, LifecycleConfiguration: { Rules: rules } }));
    expect((await admin.send(new GetBucketLifecycleConfigurationCommand({ Bucket: BUCKET }))).Rules).toMatchObject(rules);
    const unknown = [{ ...rules[0]!, Transitions: [{ Days: 1, StorageClass: 'COLDEST' as never }] }];
    await expect(admin.send(new PutBucketLifecycleConfigurationCommand({ Bucket: BUCKET, LifecycleConfiguration: { Rules: unknown } }))).rejects.toMatchObject({
      name: 'MalformedXML',
    });
    await admin.send(new DeleteBucketLifecycleCommand({ Bucket: BUCKET }));
    await expect(admin.send(new GetBucketLifecycleConfigurationCommand({ Bucket: BUCKET }))).rejects.toMatchObject({ name: 'NoSuchLifecycleConfiguration' });
  });
});
