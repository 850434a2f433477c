import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type ChecksumAlgorithm,
  type ChecksumType,
} from '@aws-sdk/client-s3';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3rver, type S3rverProcess } from './s3rver.test-support.js';

// The test server (scripts/s3rver.mjs + aws-behaviour.mjs) against what AWS documents, through the real SDK.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const BUCKET = 'bucket';
let aws: S3rverProcess;
let plain: S3rverProcess;
let s3: S3Client;
let s3Plain: S3Client;

const clientConfig = (server: S3rverProcess) => ({
  endpoint: server.endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  requestChecksumCalculation: 'WHEN_REQUIRED' as const,
});
const clientFor = (server: S3rverProcess) => new S3Client(clientConfig(server));

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest();
const crc32Bytes = (data: Buffer) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(data));
  return out;
};
async function crc64(data: Buffer): Promise<Buffer> {
  const crc = new Crc64Nvme();
  crc.update(data);
  return Buffer.from(await crc.digest());
}
const b64 = (bytes: Buffer) => bytes.toString('base64');
const statusOf = (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
async function failure(promise: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await promise;
  } catch (error) {
    return { name: (error as Error).name, status: statusOf(error) };
  }
  throw new Error('expected the request to fail');
}
const head = (client: S3Client, Key: string) => client.send(new HeadObjectCommand({ Bucket: BUCKET, Key, ChecksumMode: 'ENABLED' }));

/** A multipart upload of `parts`, each part sent with its `algorithm` checksum unless `algorithm` is undefined. */
async function multipart(
  Key: string,
  parts: Buffer[],
  options: { algorithm?: ChecksumAlgorithm; type?: ChecksumType; complete?: Record<string, string>; partChecksums?: (string | undefined)[] } = {},
) {
  const field = options.algorithm && (`Checksum${options.algorithm}` as 'ChecksumSHA256' | 'ChecksumCRC32' | 'ChecksumCRC64NVME');
  const { UploadId } = await s3.send(
    new CreateMultipartUploadCommand({ Bucket: BUCKET, Key, ChecksumAlgorithm: options.algorithm, ChecksumType: options.type }),
  );
  const done = [];
  for (const [index, Body] of parts.entries()) {
    const digest = options.algorithm === 'SHA256' ? sha256(Body) : options.algorithm === 'CRC32' ? crc32Bytes(Body) : await crc64(Body);
    const checksum = field ? { [field]: b64(digest) } : {};
    const out = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber: index + 1, Body, ...checksum }));
    const listed = options.partChecksums ? (field ? { [field]: options.partChecksums[index] } : {}) : checksum;
    done.push({ PartNumber: index + 1, ETag: out.ETag, ...listed });
  }
  return s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key, UploadId, MultipartUpload: { Parts: done }, ...options.complete }));
}

beforeAll(async () => {
  [aws, plain] = await Promise.all([startS3rver(), startS3rver({ checksums: false, conditionalWrites: false })]);
  [s3, s3Plain] = [clientFor(aws), clientFor(plain)];
  await Promise.all([s3.send(new CreateBucketCommand({ Bucket: BUCKET })), s3Plain.send(new CreateBucketCommand({ Bucket: BUCKET }))]);
});

afterAll(async () => {
  s3?.destroy();
  s3Plain?.destroy();
  await Promise.all([aws?.stop(), plain?.stop()]);
});

describe('flexible checksums (the AWS-like test server)', () => {
  const data = randomBytes(3000);

  it('PutObject stores the checksum sent; HeadObject and GetObject report it only with ChecksumMode ENABLED, never for a range', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'put/sha', Body: data, ChecksumSHA256: b64(sha256(data)) }));
    expect([put.ChecksumSHA256, put.ChecksumType]).toEqual([b64(sha256(data)), 'FULL_OBJECT']);
    expect(await head(s3, 'put/sha')).toMatchObject({ ChecksumSHA256: b64(sha256(data)), ChecksumType: 'FULL_OBJECT', ContentLength: 3000 });
    expect((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'put/sha' }))).ChecksumSHA256).toBeUndefined();
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'put/sha', ChecksumMode: 'ENABLED' }));
    expect(got.ChecksumSHA256).toBe(b64(sha256(data)));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true);
    const range = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'put/sha', ChecksumMode: 'ENABLED', Range: 'bytes=0-9' }));
    expect(range.ChecksumSHA256).toBeUndefined();
    await range.Body!.transformToByteArray();

    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'put/crc32', Body: data, ChecksumCRC32: b64(crc32Bytes(data)) }));
    expect((await head(s3, 'put/crc32')).ChecksumCRC32).toBe(b64(crc32Bytes(data)));
    // Without a checksum, S3 adds a full-object CRC64NVME; a replaced object loses the old checksum.
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'put/sha', Body: data }));
    expect(await head(s3, 'put/sha')).toMatchObject({ ChecksumCRC64NVME: b64(await crc64(data)), ChecksumType: 'FULL_OBJECT' });
    expect((await head(s3, 'put/sha')).ChecksumSHA256).toBeUndefined();
  });

  it('refuses a body that does not match its checksum or Content-MD5 (BadDigest), and two checksums at once', async () => {
    const other = Buffer.from(data);
    other[7]! ^= 1;
    for (const checksum of [
      { ChecksumSHA256: b64(sha256(other)) },
      { ChecksumCRC32: b64(crc32Bytes(other)) },
      { ChecksumCRC64NVME: b64(await crc64(other)) },
      { ContentMD5: createHash('md5').update(other).digest('base64') },
    ]) {
      expect(await failure(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bad/object', Body: data, ...checksum })))).toEqual({
        name: 'BadDigest',
        status: 400,
      });
    }
    expect(await failure(head(s3, 'bad/object'))).toMatchObject({ status: 404 });
    const both = { ChecksumSHA256: b64(sha256(data)), ChecksumCRC32: b64(crc32Bytes(data)) };
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'bad/object', Body: data, ...both })))).toEqual({
      name: 'InvalidRequest',
      status: 400,
    });
  });

  it('multipart: composite SHA-256 and CRC32 (checksum of the part checksums, then -N), full-object CRC64NVME and CRC32', async () => {
    const parts = [randomBytes(4000), randomBytes(4000), randomBytes(1234)];
    const whole = Buffer.concat(parts);
    const composite = (digests: Buffer[], digest: (b: Buffer) => Buffer) => `${b64(digest(Buffer.concat(digests)))}-${digests.length}`;

    const sha = await multipart('mp/sha', parts, { algorithm: 'SHA256' });
    const shaComposite = composite(parts.map(sha256), sha256);
    expect([sha.ChecksumSHA256, sha.ChecksumType]).toEqual([shaComposite, 'COMPOSITE']);
    expect(await head(s3, 'mp/sha')).toMatchObject({ ChecksumSHA256: shaComposite, ChecksumType: 'COMPOSITE', ContentLength: whole.length });

    await multipart('mp/crc32', parts, { algorithm: 'CRC32' });
    expect((await head(s3, 'mp/crc32')).ChecksumCRC32).toBe(composite(parts.map(crc32Bytes), crc32Bytes));

    const full = b64(await crc64(whole));
    await multipart('mp/crc64', parts, { algorithm: 'CRC64NVME', complete: { ChecksumCRC64NVME: full, ChecksumType: 'FULL_OBJECT' } });
    expect(await head(s3, 'mp/crc64')).toMatchObject({ ChecksumCRC64NVME: full, ChecksumType: 'FULL_OBJECT' });
    await multipart('mp/crc32-full', parts, { algorithm: 'CRC32', type: 'FULL_OBJECT' });
    expect(await head(s3, 'mp/crc32-full')).toMatchObject({ ChecksumCRC32: b64(crc32Bytes(whole)), ChecksumType: 'FULL_OBJECT' });
    // No algorithm: a full-object CRC64NVME, as for PutObject.
    await multipart('mp/default', parts);
    expect(await head(s3, 'mp/default')).toMatchObject({ ChecksumCRC64NVME: full, ChecksumType: 'FULL_OBJECT' });
  });

  it('multipart: the object is its parts joined, with the ETag AWS gives it (MD5 of the parts’ MD5s, then -N)', async () => {
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(5 * 1024 * 1024), randomBytes(777)];
    const etag = `"${createHash('md5')
      .update(Buffer.concat(parts.map((part) => createHash('md5').update(part).digest())))
      .digest('hex')}-3"`;
    for (const client of [s3, s3Plain]) {
      const UploadId = (await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'mp/joined' }))).UploadId;
      const done = [];
      for (const [index, Body] of parts.entries()) {
        const out = await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'mp/joined', UploadId, PartNumber: index + 1, Body }));
        done.push({ PartNumber: index + 1, ETag: out.ETag });
      }
      const completed = await client.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'mp/joined', UploadId, MultipartUpload: { Parts: done } }));
      expect(completed.ETag).toBe(etag);
      const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'mp/joined' }));
      expect(got.ETag).toBe(etag);
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat(parts))).toBe(true);
    }
  });

  it('multipart: refuses a wrong full-object checksum, a listed part checksum that differs, and types an algorithm lacks', async () => {
    const parts = [randomBytes(2000), randomBytes(100)];
    const wrong = b64(await crc64(Buffer.from('other')));
    expect(await failure(multipart('mp/bad', parts, { algorithm: 'CRC64NVME', complete: { ChecksumCRC64NVME: wrong, ChecksumType: 'FULL_OBJECT' } }))).toEqual({
      name: 'BadDigest',
      status: 400,
    });
    expect(await failure(multipart('mp/bad', parts, { algorithm: 'SHA256', partChecksums: [b64(sha256(parts[1]!)), b64(sha256(parts[1]!))] }))).toMatchObject({
      name: 'InvalidPart',
    });
    expect(
      await failure(s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'mp/bad', ChecksumAlgorithm: 'SHA256', ChecksumType: 'FULL_OBJECT' }))),
    ).toMatchObject({ name: 'InvalidRequest' });
    expect(
      await failure(s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'mp/bad', ChecksumAlgorithm: 'CRC64NVME', ChecksumType: 'COMPOSITE' }))),
    ).toMatchObject({ name: 'InvalidRequest' });
    expect(await failure(head(s3, 'mp/bad'))).toMatchObject({ status: 404 });
  });

  it('decodes an aws-chunked streamed upload (the SDK default for streams) and checks its trailing checksum', async () => {
    const streaming = new S3Client({ ...clientConfig(aws), requestChecksumCalculation: 'WHEN_SUPPORTED' });
    try {
      await streaming.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: 'chunked', Body: Readable.from([data]), ContentLength: data.length, ChecksumAlgorithm: 'CRC32' }),
      );
      expect(await head(s3, 'chunked')).toMatchObject({ ContentLength: data.length, ChecksumCRC32: b64(crc32Bytes(data)) });
      const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'chunked' }));
      expect([got.ContentEncoding, Buffer.from(await got.Body!.transformToByteArray()).equals(data)]).toEqual([undefined, true]);
    } finally {
      streaming.destroy();
    }
  });

  it('with checksums switched off it is plain s3rver: no checksum reported, none checked', async () => {
    await s3Plain.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'plain', Body: data, ChecksumSHA256: b64(sha256(Buffer.from('not the data'))) }));
    const reported = await head(s3Plain, 'plain');
    expect([reported.ChecksumSHA256, reported.ChecksumCRC64NVME, reported.ContentLength]).toEqual([undefined, undefined, 3000]);
  });
});

describe('conditional writes (the AWS-like test server)', () => {
  it('If-None-Match: * refuses an existing key (412), on PutObject and CompleteMultipartUpload', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/a', Body: 'first', IfNoneMatch: '*' }));
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/a', Body: 'second', IfNoneMatch: '*' })))).toEqual({
      name: 'PreconditionFailed',
      status: 412,
    });
    expect(await failure(multipart('cond/a', [Buffer.from('third')], { complete: { IfNoneMatch: '*' } }))).toMatchObject({ status: 412 });
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'cond/a' }));
    expect(await got.Body!.transformToString()).toBe('first');
  });

  it('If-Match: the write goes through only over the named ETag; 404 without an object; HeadObject answers 412', async () => {
    const first = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/b', Body: 'one' }));
    const second = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/b', Body: 'two', IfMatch: first.ETag }));
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/b', Body: 'three', IfMatch: first.ETag })))).toEqual({
      name: 'PreconditionFailed',
      status: 412,
    });
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/none', Body: 'x', IfMatch: first.ETag })))).toMatchObject({ status: 404 });
    expect((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'cond/b', IfMatch: second.ETag }))).ContentLength).toBe(3);
    expect(await failure(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'cond/b', IfMatch: first.ETag })))).toMatchObject({ status: 412 });
  });

  it('of 20 racing If-None-Match puts to one key exactly one wins', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond/race', Body: `writer ${i}`, IfNoneMatch: '*' }))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected').map((r) => statusOf((r as PromiseRejectedResult).reason))).toEqual(Array(19).fill(412));
  });

  it('with conditional writes switched off the conditions are ignored, as plain s3rver does', async () => {
    await s3Plain.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond', Body: 'first', IfNoneMatch: '*' }));
    await s3Plain.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond', Body: 'second', IfNoneMatch: '*' }));
    expect(await (await s3Plain.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'cond' }))).Body!.transformToString()).toBe('second');
  });
});

it('logs every request with its status and the body bytes sent', async () => {
  const before = (await aws.requests()).length;
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'log/x', Body: Buffer.alloc(777) }));
  await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'log/x' }))).Body!.transformToByteArray();
  expect((await aws.requests()).slice(before)).toEqual([
    { method: 'PUT', path: `/${BUCKET}/log/x`, status: 200, bytesOut: 0 },
    { method: 'GET', path: `/${BUCKET}/log/x`, status: 200, bytesOut: 777 },
  ]);
});
