import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageErrorCode, StorageRegistry, bufferBody, sha256Hex, withRetry, type PutBody, type StorageError } from '@stowage/storage';
import { describeStorageAdapter, resumedFrom } from '@stowage/storage-testkit';
import { s3StorageFactory } from './factory.js';
import { probeS3Endpoint } from './probe-endpoint.js';
import type { S3Storage } from './s3.js';
import { startS3rver, type S3rverProcess } from './s3rver.test-support.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
// s3rver's account; the adapter reads credentials from variables whose names its options give.
process.env.STOWAGE_TEST_S3_KEY = 'S3RVER';
process.env.STOWAGE_TEST_S3_SECRET = 'S3RVER';
process.env.STOWAGE_TEST_S3_WRONG_KEY = 'NOT-AN-ACCESS-KEY';
process.env.STOWAGE_TEST_S3_WRONG_SECRET = 'wrong-secret-do-not-print';

const BUCKET = 'stowage-test';
const MiB = 1024 * 1024;

/** The test server as AWS behaves (flexible checksums, conditional writes). */
let server: S3rverProcess;
/** The same with both switched off: s3rver's own behaviour, as older S3-compatible stores have it. */
let plainServer: S3rverProcess;
/** Plain SDK clients for setting up and inspecting the buckets behind the adapters' backs. */
let admin: S3Client;
let plainAdmin: S3Client;
const registry = new StorageRegistry().register(s3StorageFactory);

beforeAll(async () => {
  [server, plainServer] = await Promise.all([startS3rver(), startS3rver({ checksums: false, conditionalWrites: false })]);
  [admin, plainAdmin] = await Promise.all([adminClientWithBucket(server.endpoint), adminClientWithBucket(plainServer.endpoint)]);
});

afterAll(async () => {
  admin?.destroy();
  plainAdmin?.destroy();
  await Promise.all([server?.stop(), plainServer?.stop()]);
});

/** A plain SDK client for the s3rver at `endpoint`, after creating the test bucket there. */
async function adminClientWithBucket(endpoint: string): Promise<S3Client> {
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  return client;
}

/** An adapter over `s3://<bucket>/<prefix>` on s3rver, opened through the registry as a config would. */
async function openS3(prefix: string, options: Record<string, unknown> = {}, bucket = BUCKET): Promise<S3Storage> {
  const spec = {
    url: `s3://${bucket}/${prefix}`,
    options: {
      endpoint: server.endpoint,
      forcePathStyle: true,
      accessKeyIdEnv: 'STOWAGE_TEST_S3_KEY',
      secretAccessKeyEnv: 'STOWAGE_TEST_S3_SECRET',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      ...options,
    },
  };
  return (await registry.open(spec, { baseDir: process.cwd() })) as S3Storage;
}

/** A fresh prefix for one test. */
const freshPrefix = (label: string) => `${label}/${randomUUID()}`;

async function objectKeysUnder(prefix: string, client = admin): Promise<string[]> {
  const page = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (page.Contents ?? []).map((object) => object.Key!);
}

async function multipartUploadsUnder(prefix: string, client = admin): Promise<string[]> {
  const out = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return (out.Uploads ?? []).map((upload) => upload.Key!);
}

async function deletePrefix(prefix: string, client = admin): Promise<void> {
  for (let keys = await objectKeysUnder(prefix, client); keys.length > 0; keys = await objectKeysUnder(prefix, client)) {
    await client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }));
  }
}

async function readAll(storage: S3Storage, key: string, range?: { offset: number; length?: number }): Promise<Buffer> {
  return buffer(await storage.get(key, range ? { range } : {}));
}

/** A body over `bytes` that claims another SHA-256. */
const lyingBody = (bytes: Buffer): PutBody => ({ ...bufferBody(bytes), sha256: sha256Hex('something else') });

/** A body whose stream fails after `after` bytes (a source file that became unreadable). */
function failingBody(size: number, after: number): PutBody {
  const bytes = randomBytes(size);
  return {
    size,
    sha256: sha256Hex(bytes),
    open: () =>
      Readable.from(
        (function* () {
          for (let offset = 0; offset < after; offset += MiB) yield bytes.subarray(offset, Math.min(after, offset + MiB));
          throw Object.assign(new Error('EIO: the backup source could not be read'), { code: 'EIO' });
        })(),
      ),
  };
}

/** Makes every request body the client sends a stream, as the SDK sends any stream body (`aws-chunked`). */
function streamRequestBodies(storage: S3Storage): void {
  storage.client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { body?: unknown };
      if (Buffer.isBuffer(request.body)) request.body = Readable.from([request.body]);
      return next(args);
    },
    { step: 'build', priority: 'high', name: 'streamRequestBodiesForTest' },
  );
}

/** Records the headers of every request the client sends for `command` (retries included). */
function recordHeaders(storage: S3Storage, command: string): Array<Record<string, string>> {
  const seen: Array<Record<string, string>> = [];
  storage.client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === command) seen.push({ ...(args.request as { headers: Record<string, string> }).headers });
      return next(args);
    },
    { step: 'finalizeRequest', priority: 'low', name: `record${command}ForTest` },
  );
  return seen;
}

/**
 * Emulates, inside the client, an endpoint that supports flexible checksums (s3rver does not): it
 * computes the SHA-256 / CRC-64/NVME of the bytes each PutObject and UploadPart sends, as S3 does,
 * and HeadObject then reports them (composite SHA-256 for multipart uploads, full-object CRC).
 * `tamper` replaces what HeadObject reports, to play an endpoint that stored something else.
 */
function emulateFlexibleChecksums(storage: S3Storage, tamper?: (reported: string) => string) {
  type Reported = { ChecksumSHA256?: string; ChecksumCRC64NVME?: string; ChecksumType?: 'FULL_OBJECT' | 'COMPOSITE' };
  const objects = new Map<string, Reported>();
  const parts = new Map<string, Array<{ sha256: Buffer; bytes: Buffer }>>();
  const crcOf = async (bytes: Buffer) => {
    const crc = new Crc64Nvme();
    crc.update(bytes);
    return Buffer.from(await crc.digest()).toString('base64');
  };
  storage.client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as Record<string, unknown>;
      const key = String(input.Key);
      const result = await next(args);
      const body = input.Body as Buffer | undefined;
      if (context.commandName === 'PutObjectCommand' && body) {
        const reported: Reported = {};
        if (input.ChecksumSHA256) reported.ChecksumSHA256 = createHash('sha256').update(body).digest('base64');
        if (input.ChecksumCRC64NVME) reported.ChecksumCRC64NVME = await crcOf(body);
        objects.set(key, { ...reported, ChecksumType: 'FULL_OBJECT' });
      } else if (context.commandName === 'UploadPartCommand' && body) {
        const list = parts.get(String(input.UploadId)) ?? [];
        list[Number(input.PartNumber) - 1] = { sha256: createHash('sha256').update(body).digest(), bytes: body };
        parts.set(String(input.UploadId), list);
      } else if (context.commandName === 'CompleteMultipartUploadCommand') {
        const list = parts.get(String(input.UploadId)) ?? [];
        objects.set(
          key,
          input.ChecksumCRC64NVME
            ? { ChecksumCRC64NVME: await crcOf(Buffer.concat(list.map((part) => part.bytes))), ChecksumType: 'FULL_OBJECT' }
            : {
                ChecksumSHA256: `${createHash('sha256')
                  .update(Buffer.concat(list.map((part) => part.sha256)))
                  .digest('base64')}-${list.length}`,
                ChecksumType: 'COMPOSITE',
              },
        );
      } else if (context.commandName === 'HeadObjectCommand') {
        const reported = { ...objects.get(key) };
        for (const field of ['ChecksumSHA256', 'ChecksumCRC64NVME'] as const) {
          const value = reported[field];
          if (value !== undefined && tamper) reported[field] = tamper(value);
        }
        Object.assign(result.output, reported);
      }
      return result;
    },
    { step: 'initialize', name: 'emulateFlexibleChecksumsForTest' },
  );
}

describeStorageAdapter({
  name: 'S3Storage on plain s3rver (no checksums, no conditional writes)',
  timeoutMs: 120_000,
  async create() {
    const prefix = freshPrefix('conformance');
    return { adapter: await openS3(prefix, { endpoint: plainServer.endpoint }), cleanup: () => deletePrefix(`${prefix}/`, plainAdmin) };
  },
  // The slowest expedited thaw (GLACIER): five minutes.
  completeThaws: () => plainServer.advanceThawClock(5 * 60 * 1000),
  unreachable: async () => {
    const closed = await listeningServer();
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    return openS3('down', { endpoint: `http://127.0.0.1:${closed.port}` });
  },
  cutNextGet: (after) => plainServer.cutNextGets(after),
});

for (const checksumMode of ['crc64nvme', 'sha256'] as const) {
  describeStorageAdapter({
    name: `S3Storage on the AWS-like test server (checksumMode ${checksumMode}, conditional writes)`,
    timeoutMs: 120_000,
    async create() {
      const prefix = freshPrefix(`conformance-${checksumMode}`);
      return { adapter: await openS3(prefix, { checksumMode, conditionalWrites: true, partSizeMiB: 5 }), cleanup: () => deletePrefix(`${prefix}/`) };
    },
    completeThaws: () => server.advanceThawClock(5 * 60 * 1000),
    partSize: 5 * MiB,
    cutNextGet: (after) => server.cutNextGets(after),
  });
}

describe('S3Storage on s3rver', () => {
  describe('verification of what was stored (the aws-chunked trap, see the README)', () => {
    it('with the SDK default WHEN_SUPPORTED, its in-memory request bodies are stored intact', async () => {
      const prefix = freshPrefix('when-supported');
      const storage = await openS3(prefix, { requestChecksumCalculation: 'WHEN_SUPPORTED', partSizeMiB: 5 });
      try {
        for (const size of [3_145_851, 12 * MiB]) {
          const bytes = randomBytes(size);
          const info = await storage.put(`file-${size}`, bufferBody(bytes));
          expect(info.size).toBe(size);
          expect(sha256Hex(await readAll(storage, `file-${size}`))).toBe(sha256Hex(bytes));
        }
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`);
      }
    });

    // The adapter never hands the SDK a stream, so to see the trap the client is made to stream each
    // request body; the SDK then sends it aws-chunked, and plain s3rver stores the framing and answers 200.
    it('an object stored with aws-chunked framing shows in its size: stat reports more bytes than put sent', async () => {
      const prefix = freshPrefix('aws-chunked');
      const storage = await openS3(prefix, { endpoint: plainServer.endpoint, requestChecksumCalculation: 'WHEN_SUPPORTED', partSizeMiB: 5 });
      streamRequestBodies(storage);
      try {
        for (const [key, size] of [
          ['single.bin', 3_145_851],
          ['multipart.bin', 12 * MiB],
        ] as const) {
          const info = await storage.put(key, bufferBody(randomBytes(size)));
          expect(info).toMatchObject({ size, checksums: {}, sent: {} });
          // The engine compares the stored size with the artifact's and fails the replica (core's replica tests).
          expect((await storage.stat(key))!.size).toBeGreaterThan(size);
        }
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`, plainAdmin);
      }
    });
  });

  describe('multipart uploads', () => {
    it('round-trips a body larger than the part size, with ranges across part boundaries', async () => {
      const prefix = freshPrefix('multipart');
      const storage = await openS3(prefix, { partSizeMiB: 5, queueSize: 2 });
      const parts = recordHeaders(storage, 'UploadPartCommand');
      try {
        const bytes = randomBytes(12 * MiB + 123);
        const info = await storage.put('big/backup.sqlite3', bufferBody(bytes));
        expect(info).toMatchObject({ key: 'big/backup.sqlite3', size: bytes.length });
        expect(parts).toHaveLength(3);
        expect(parts.every((headers) => headers['content-md5'])).toBe(true);
        expect(sha256Hex(await readAll(storage, 'big/backup.sqlite3'))).toBe(sha256Hex(bytes));
        const boundary = 5 * MiB;
        expect(await readAll(storage, 'big/backup.sqlite3', { offset: boundary - 10, length: 20 })).toEqual(bytes.subarray(boundary - 10, boundary + 10));
        expect(await storage.stat('big/backup.sqlite3')).toMatchObject({ size: bytes.length });
        expect(await multipartUploadsUnder(`${prefix}/`)).toEqual([]);
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`);
      }
    });

    it('aborts the upload when the body fails its check, fails to read, a part fails or the caller aborts', async () => {
      const prefix = freshPrefix('multipart-failures');
      const storage = await openS3(prefix, { partSizeMiB: 5, maxAttempts: 1 });
      try {
        await storage.put('kept', bufferBody('the original'));

        await expect(storage.put('kept', lyingBody(randomBytes(12 * MiB)))).rejects.toMatchObject({
          code: StorageErrorCode.ChecksumMismatch,
        });
        await expect(storage.put('longer', { ...bufferBody(randomBytes(12 * MiB)), size: 11 * MiB })).rejects.toMatchObject({
          code: StorageErrorCode.ChecksumMismatch,
          message: expect.stringContaining('more were read'),
        });
        // The body's own error comes out as it is, not as a storage error.
        await expect(storage.put('unreadable', failingBody(12 * MiB, 7 * MiB))).rejects.toMatchObject({ code: 'EIO' });

        const controller = new AbortController();
        const slow: PutBody = {
          ...bufferBody(randomBytes(12 * MiB)),
          open: () =>
            Readable.from(
              (async function* () {
                yield randomBytes(6 * MiB);
                controller.abort();
                await new Promise((resolve) => setTimeout(resolve, 50));
                yield randomBytes(6 * MiB);
              })(),
            ),
        };
        await expect(storage.put('aborted', slow, { signal: controller.signal })).rejects.toMatchObject({ code: StorageErrorCode.Aborted });

        let uploadParts = 0;
        storage.client.middlewareStack.add(
          (next, context) => async (args) => {
            if (context.commandName === 'UploadPartCommand' && ++uploadParts === 2) {
              throw Object.assign(new Error('We encountered an internal error. Please try again.'), {
                name: 'InternalError',
                $fault: 'server',
                $metadata: { httpStatusCode: 500 },
              });
            }
            return next(args);
          },
          { step: 'initialize', name: 'failSecondPartForTest' },
        );
        await expect(storage.put('part-fails', bufferBody(randomBytes(12 * MiB)))).rejects.toMatchObject({
          code: StorageErrorCode.Transient,
        });

        expect(await multipartUploadsUnder(`${prefix}/`)).toEqual([]);
        expect(await objectKeysUnder(`${prefix}/`)).toEqual([`${prefix}/kept`]);
        expect((await readAll(storage, 'kept')).toString()).toBe('the original');
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`);
      }
    });
  });

  describe('errors', () => {
    it('wrong credentials are permission_denied, naming the bucket and never the secret', async () => {
      const storage = await openS3(freshPrefix('denied'), {
        accessKeyIdEnv: 'STOWAGE_TEST_S3_WRONG_KEY',
        secretAccessKeyEnv: 'STOWAGE_TEST_S3_WRONG_SECRET',
      });
      try {
        for (const attempt of everyOperation(storage)) {
          const error = await attempt().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error).toMatchObject({ code: StorageErrorCode.PermissionDenied });
          const message = (error as Error).message;
          expect(message).toMatch(/was refused \((InvalidAccessKeyId: .*|HTTP 403)\): check the credentials/);
          expect(message).toContain(`bucket '${BUCKET}'`);
          expect(`${message} ${JSON.stringify(error)}`).not.toContain('wrong-secret-do-not-print');
        }
      } finally {
        await storage.close();
      }
    });

    it('a missing bucket is a clear unavailable error from every operation', async () => {
      const storage = await openS3('prefix', {}, 'no-such-bucket');
      try {
        for (const attempt of everyOperation(storage)) {
          await expect(attempt()).rejects.toMatchObject({
            code: StorageErrorCode.Unavailable,
            message: expect.stringContaining(`bucket 'no-such-bucket' does not exist`),
          });
        }
      } finally {
        await storage.close();
      }
    });

    it('an endpoint that is down, or that never answers, is transient', async () => {
      const closed = await listeningServer();
      await new Promise<void>((resolve) => closed.server.close(() => resolve()));
      const silent = await listeningServer();
      const down = await openS3('p', { endpoint: `http://127.0.0.1:${closed.port}`, maxAttempts: 1 });
      const mute = await openS3('p', { endpoint: `http://127.0.0.1:${silent.port}`, maxAttempts: 1, idleTimeoutMs: 300 });
      try {
        for (const storage of [down, mute]) {
          for (const attempt of everyOperation(storage)) {
            await expect(attempt()).rejects.toMatchObject({ code: StorageErrorCode.Transient });
          }
        }
        const refused = await down.stat('x').catch((e: unknown) => e);
        expect((refused as Error).message).toContain('ECONNREFUSED');
      } finally {
        await down.close();
        await mute.close();
        for (const socket of silent.sockets) socket.destroy();
        await new Promise<void>((resolve) => silent.server.close(() => resolve()));
      }
    });

    it('retries do not multiply: with the retry wrapper, a failing server sees exactly its attempts (the SDK makes one each)', async () => {
      let requests = 0;
      const failing = createHttpServer((_request, response) => {
        requests++;
        response.writeHead(503, { 'content-type': 'application/xml' }).end('<Error><Code>SlowDown</Code><Message>busy</Message></Error>');
      });
      await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
      const raw = await openS3('p', { endpoint: `http://127.0.0.1:${(failing.address() as { port: number }).port}` }); // SDK attempts: the default
      const retried: number[] = [];
      const storage = withRetry(raw, { attempts: 4, baseDelayMs: 1, onRetry: (event) => retried.push(event.attempt) });
      try {
        await expect(storage.stat('x')).rejects.toMatchObject({ code: StorageErrorCode.Transient });
        expect({ requests, retried }).toEqual({ requests: 4, retried: [1, 2, 3] });
      } finally {
        await storage.close!();
        await new Promise<void>((resolve) => failing.close(() => resolve()));
      }
    });

    it('a download cut mid-stream resumes with one ranged GET and reads byte-exact', async () => {
      const storage = await openS3(freshPrefix('resume'));
      const bytes = randomBytes(3 * MiB);
      try {
        await storage.put('big.bin', bufferBody(bytes));
        const before = (await server.requests()).length;
        await server.cutNextGets(MiB);
        const read = await buffer(await storage.get('big.bin'));
        expect(read.equals(bytes)).toBe(true);
        const gets = (await server.requests()).slice(before).filter((request) => request.method === 'GET');
        expect(gets.map((request) => (request.range === undefined ? 'whole' : 'ranged')).sort()).toEqual(['ranged', 'whole']);
        const resumed = gets.find((request) => request.range !== undefined)!;
        const from = resumedFrom(resumed.range);
        expect(from).toBeLessThanOrEqual(MiB);
        expect(resumed).toMatchObject({ range: `bytes=${from}-`, status: 206, bytesOut: 3 * MiB - from });
        // A ranged read resumes within its range.
        const beforeSlice = (await server.requests()).length;
        await server.cutNextGets(1000);
        const slice = await buffer(await storage.get('big.bin', { range: { offset: 10, length: 5000 } }));
        expect(slice.equals(bytes.subarray(10, 5010))).toBe(true);
        // The cut GET is logged when its connection closes, which may come after the resume's entry.
        const sliceGets = (await server.requests()).slice(beforeSlice).filter((request) => request.method === 'GET');
        const sliceResumed = sliceGets.find((request) => request.range !== 'bytes=10-5009')!;
        expect(sliceGets).toHaveLength(2);
        const sliceFrom = resumedFrom(sliceResumed.range, 5009);
        expect(sliceFrom).toBeGreaterThanOrEqual(10);
        expect(sliceFrom).toBeLessThanOrEqual(1010);
        expect(sliceResumed).toMatchObject({ status: 206, bytesOut: 5010 - sliceFrom });
      } finally {
        await storage.close();
      }
    });

    it('an object replaced between the cut and the resume fails with object_changed, never mixed bytes', async () => {
      const storage = await openS3(freshPrefix('resume'));
      try {
        await storage.put('big.bin', bufferBody(randomBytes(3 * MiB)));
        await server.cutNextGets(MiB);
        const stream = await storage.get('big.bin');
        await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${storage.prefix}/big.bin`, Body: randomBytes(3 * MiB) }));
        const error = (await buffer(stream).catch((e: unknown) => e)) as StorageError;
        expect(error).toMatchObject({ code: StorageErrorCode.ObjectChanged });
        const received = error.context.received as number;
        expect(received).toBeLessThanOrEqual(MiB);
        const refused = (await server.requests()).filter((request) => request.method === 'GET' && request.status === 412);
        expect(refused.map((request) => request.range)).toEqual([`bytes=${received}-`]);
      } finally {
        await storage.close();
      }
    });

    it('a download cut on every attempt ends with transient after three resumes', async () => {
      const storage = await openS3(freshPrefix('resume'), { maxAttempts: 1 });
      try {
        await storage.put('big.bin', bufferBody(randomBytes(3 * MiB)));
        const before = (await server.requests()).length;
        await server.cutNextGets(100_000, 4);
        await expect(buffer(await storage.get('big.bin'))).rejects.toMatchObject({ code: StorageErrorCode.Transient });
        const gets = (await server.requests()).slice(before).filter((request) => request.method === 'GET');
        expect(gets).toHaveLength(4);
        expect(gets[0]!.range).toBeUndefined();
        // Each resume starts after what the one before it handed over (at most the 100000 bytes before its cut).
        const offsets = gets.slice(1).map((request) => resumedFrom(request.range));
        offsets.reduce((previous, offset) => {
          expect(offset).toBeGreaterThanOrEqual(previous);
          expect(offset - previous).toBeLessThanOrEqual(100_000);
          return offset;
        }, 0);
      } finally {
        await storage.close();
      }
    });

    it('a download cut short errors the stream with transient', async () => {
      const cutting = createHttpServer((_request, response) => {
        response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000', etag: '"e"' });
        response.write(Buffer.alloc(1000));
        setTimeout(() => response.socket?.destroy(), 20);
      });
      await new Promise<void>((resolve) => cutting.listen(0, '127.0.0.1', resolve));
      const storage = await openS3('p', { endpoint: `http://127.0.0.1:${(cutting.address() as { port: number }).port}`, maxAttempts: 1 });
      try {
        const stream = await storage.get('backup.sqlite3');
        await expect(buffer(stream)).rejects.toMatchObject({ code: StorageErrorCode.Transient });
      } finally {
        await storage.close();
        await new Promise<void>((resolve) => cutting.close(() => resolve()));
      }
    });
  });

  describe('requests', () => {
    it('sends Content-MD5, storage class and encryption; a checksum header only in its checksum mode', async () => {
      const prefix = freshPrefix('headers');
      const plain = await openS3(prefix, { storageClass: 'STANDARD_IA', sse: 'AES256' });
      const sha = await openS3(prefix, { checksumMode: 'sha256' });
      const crc = await openS3(prefix, { checksumMode: 'crc64nvme' });
      const sent = [plain, sha, crc].map((storage) => recordHeaders(storage, 'PutObjectCommand'));
      try {
        const bytes = Buffer.from('backup bytes');
        for (const storage of [plain, sha, crc]) await storage.put('a', bufferBody(bytes));
        const [plainHeaders, shaHeaders, crcHeaders] = sent.map((headers) => headers[0]!);
        expect(plainHeaders).toMatchObject({
          'content-md5': createHash('md5').update(bytes).digest('base64'),
          'x-amz-storage-class': 'STANDARD_IA',
          'x-amz-server-side-encryption': 'AES256',
        });
        expect(Object.keys(plainHeaders!).filter((name) => name.startsWith('x-amz-checksum-'))).toEqual([]);
        expect(shaHeaders!['x-amz-checksum-sha256']).toBe(createHash('sha256').update(bytes).digest('base64'));
        expect(Object.keys(crcHeaders!).filter((name) => name.startsWith('x-amz-checksum-'))).toEqual(['x-amz-checksum-crc64nvme']);
      } finally {
        for (const storage of [plain, sha, crc]) await storage.close();
        await deletePrefix(`${prefix}/`);
      }
    });

    it('signs uploads without hashing their bodies (UNSIGNED-PAYLOAD), each still sent with its Content-MD5', async () => {
      const prefix = freshPrefix('unsigned');
      const storage = await openS3(prefix, { partSizeMiB: 5 });
      // Recorded after the signer: the headers as sent, and the signed ones among them.
      const puts = recordHeaders(storage, 'PutObjectCommand');
      const parts = recordHeaders(storage, 'UploadPartCommand');
      try {
        const small = randomBytes(1000);
        const large = randomBytes(6 * MiB);
        await storage.put('small', bufferBody(small));
        await storage.put('large', bufferBody(large));
        expect(puts).toHaveLength(1);
        expect(parts).toHaveLength(2);
        for (const headers of [...puts, ...parts]) {
          expect(headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
          expect(headers['content-md5']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
          expect(headers.authorization).toContain('x-amz-content-sha256');
        }
        // Compared by hash: toEqual on megabytes of bytes is slow.
        expect(sha256Hex(await buffer(await storage.get('large')))).toBe(sha256Hex(large));
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`);
      }
    });

    it('deletes more than 1,000 keys in batches', async () => {
      const prefix = freshPrefix('many');
      const storage = await openS3(prefix);
      const batches: number[] = [];
      storage.client.middlewareStack.add(
        (next, context) => async (args) => {
          if (context.commandName === 'DeleteObjectsCommand') {
            batches.push((args.input as { Delete: { Objects: unknown[] } }).Delete.Objects.length);
          }
          return next(args);
        },
        { step: 'initialize', name: 'countDeleteBatchesForTest' },
      );
      try {
        const keys = Array.from({ length: 1005 }, (_, i) => `k/${String(i).padStart(4, '0')}`);
        for (let i = 0; i < keys.length; i += 50) {
          await Promise.all(
            keys.slice(i, i + 50).map((key) => admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${key}`, Body: Buffer.from('x') }))),
          );
        }
        await storage.delete([...keys, 'k/missing']);
        expect(batches).toEqual([1000, 6]);
        expect(await objectKeysUnder(`${prefix}/`)).toEqual([]);
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`);
      }
    });

    for (const listApi of ['v2', 'v1'] as const) {
      it(`lists across pages with ListObjects ${listApi}, skipping keys it cannot address`, async () => {
        const prefix = freshPrefix(`list-${listApi}`);
        const storage = await openS3(prefix, { listApi, listPageSize: 2 });
        const requests = recordHeaders(storage, listApi === 'v2' ? 'ListObjectsV2Command' : 'ListObjectsCommand');
        try {
          const keys = ['a/1', 'a/2', 'a/3', 'b', 'c/d/e', 'c/f', 'g'];
          for (const key of keys) await storage.put(key, bufferBody(key));
          // A console "folder" marker is no addressable key; probe objects are never listed.
          await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/folder/`, Body: Buffer.alloc(0) }));
          await admin.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${prefix}/.stowage-probe-0123/x`, Body: Buffer.alloc(0) }));
          const listed: string[] = [];
          for await (const info of storage.list('')) listed.push(info.key);
          expect(listed.sort()).toEqual(keys);
          expect(requests.length).toBeGreaterThanOrEqual(4);
          const underA: string[] = [];
          for await (const info of storage.list('a/')) underA.push(info.key);
          expect(underA.sort()).toEqual(['a/1', 'a/2', 'a/3']);
        } finally {
          await storage.close();
          await deletePrefix(`${prefix}/`);
        }
      });
    }

    it('without the legacy OpenSSL provider s3rver fails every truncated ListObjectsV2 page; listApi v1 still lists', async () => {
      const plain = await startS3rver({ legacyOpenSsl: false });
      const options = { endpoint: plain.endpoint, maxAttempts: 1, listPageSize: 2 };
      const [v2, v1] = [await openS3('p', options), await openS3('p', { ...options, listApi: 'v1' })];
      try {
        (await adminClientWithBucket(plain.endpoint)).destroy();
        for (const key of ['a', 'b', 'c']) await v2.put(key, bufferBody(key));
        const listAll = async (storage: S3Storage) => {
          const keys: string[] = [];
          for await (const info of storage.list('')) keys.push(info.key);
          return keys.sort();
        };
        await expect(listAll(v2)).rejects.toMatchObject({ code: StorageErrorCode.Transient, message: expect.stringContaining('InternalError') });
        expect(await listAll(v1)).toEqual(['a', 'b', 'c']);
        expect((await probeS3Endpoint(v2)).recommended.listApi).toBe('v1');
      } finally {
        await v2.close();
        await v1.close();
        await plain.stop();
      }
    });
  });

  describe('flexible checksums (the AWS-like test server)', () => {
    for (const [mode, partSizeMiB] of [
      ['sha256', 5],
      ['crc64nvme', 5],
    ] as const) {
      it(`${mode}: put reports the full-object checksum it sent; stat the endpoint's, for single and multipart uploads`, async () => {
        const prefix = freshPrefix(`checksums-${mode}`);
        const storage = await openS3(prefix, { checksumMode: mode, partSizeMiB });
        const crc64nvmeOf = async (bytes: Buffer) => {
          const crc = new Crc64Nvme();
          crc.update(bytes);
          return Buffer.from(await crc.digest()).toString('base64');
        };
        try {
          const small = randomBytes(1000);
          const info = await storage.put('small', bufferBody(small));
          expect(info.checksums).toEqual({});
          if (mode === 'sha256') {
            expect(info.sent).toEqual({});
            expect((await storage.stat('small'))!.checksums).toEqual({ sha256: sha256Hex(small) });
          } else {
            expect(info.sent).toEqual({ crc64nvme: await crc64nvmeOf(small) });
            expect((await storage.stat('small'))!.checksums).toEqual(info.sent);
          }

          const big = randomBytes(11 * MiB);
          const bigInfo = await storage.put('big', bufferBody(big));
          expect(bigInfo.size).toBe(big.length);
          const bigStat = await storage.stat('big');
          if (mode === 'sha256') {
            // A multipart upload has only a composite SHA-256 of its parts (5, 5 and 1 MiB), which is not the object's
            // SHA-256: put reports the one its parts make, stat the endpoint's, and neither as `sha256`.
            const partSha = [0, 5, 10].map((at) =>
              createHash('sha256')
                .update(big.subarray(at * MiB, (at + 5) * MiB))
                .digest(),
            );
            const composite = `${createHash('sha256').update(Buffer.concat(partSha)).digest('base64')}-3`;
            expect(bigInfo.sent).toEqual({ sha256Composite: composite });
            expect(bigStat!.checksums).toEqual({ sha256Composite: composite });
            const head = await admin.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${prefix}/big`, ChecksumMode: 'ENABLED' }));
            expect([head.ChecksumType, head.ChecksumSHA256]).toEqual(['COMPOSITE', composite]);
          } else {
            expect(bigInfo.sent).toEqual({ crc64nvme: await crc64nvmeOf(big) });
            expect(bigStat!.checksums).toEqual(bigInfo.sent);
          }
        } finally {
          await storage.close();
          await deletePrefix(`${prefix}/`);
        }
      });
    }

    it('a checksum the endpoint reports that differs from the bytes sent is reported as it is', async () => {
      const prefix = freshPrefix('checksums-tampered');
      const storage = await openS3(prefix, { checksumMode: 'sha256', partSizeMiB: 5 });
      const stored = createHash('sha256').update('what the endpoint stored').digest('base64');
      emulateFlexibleChecksums(storage, () => stored);
      try {
        const bytes = randomBytes(100);
        await storage.put('file', bufferBody(bytes));
        const reported = (await storage.stat('file'))!.checksums.sha256;
        expect(reported).toBe(Buffer.from(stored, 'base64').toString('hex'));
        expect(reported).not.toBe(sha256Hex(bytes));
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`);
      }
    });

    it('checksumMode sha256 against an endpoint that reports no checksums: stat reports none (the engine reads back)', async () => {
      const prefix = freshPrefix('checksums-unsupported');
      const storage = await openS3(prefix, { endpoint: plainServer.endpoint, checksumMode: 'sha256' });
      try {
        await storage.put('a', bufferBody('x'));
        expect((await storage.stat('a'))!.checksums).toEqual({});
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`, plainAdmin);
      }
    });
  });

  describe('probeS3Endpoint', () => {
    it('finds out what the AWS-like server supports and recommends CRC-64/NVME and conditional writes', async () => {
      const prefix = freshPrefix('probe-aws');
      const storage = await openS3(prefix);
      try {
        const result = await probeS3Endpoint(storage);
        expect(result).toEqual({
          target: storage.description,
          checksums: { sha256: { reported: true, enforced: true }, crc64nvme: { reported: true, enforced: true } },
          conditionalWrites: true,
          awsChunkedUploads: true,
          listV2Pagination: true,
          cleanedUp: true,
          recommended: { checksumMode: 'crc64nvme', conditionalWrites: true, listApi: 'v2', requestChecksumCalculation: 'WHEN_SUPPORTED' },
        });
        expect(await objectKeysUnder(`${prefix}/`)).toEqual([]);
      } finally {
        await storage.close();
      }
    });

    it('finds out what plain s3rver supports, suggests options for it and leaves nothing behind', async () => {
      const prefix = freshPrefix('probe');
      const storage = await openS3(prefix, { endpoint: plainServer.endpoint });
      try {
        await storage.put('existing', bufferBody('x'));
        const result = await probeS3Endpoint(storage);
        expect(result).toEqual({
          target: storage.description,
          checksums: { sha256: { reported: false, enforced: false }, crc64nvme: { reported: false, enforced: false } },
          conditionalWrites: false,
          awsChunkedUploads: false,
          listV2Pagination: true,
          cleanedUp: true,
          recommended: { checksumMode: 'none', conditionalWrites: false, listApi: 'v2', requestChecksumCalculation: 'WHEN_REQUIRED' },
        });
        expect(await objectKeysUnder(`${prefix}/`, plainAdmin)).toEqual([`${prefix}/existing`]);
      } finally {
        await storage.close();
        await deletePrefix(`${prefix}/`, plainAdmin);
      }
    });

    it('takes a destination URL and options, and reports an unreachable bucket as an error', async () => {
      const options = { endpoint: plainServer.endpoint, accessKeyIdEnv: 'STOWAGE_TEST_S3_KEY', secretAccessKeyEnv: 'STOWAGE_TEST_S3_SECRET' };
      const result = await probeS3Endpoint({ url: `s3://${BUCKET}/${freshPrefix('probe-url')}`, options });
      expect(result.recommended.checksumMode).toBe('none');
      await expect(probeS3Endpoint({ url: 's3://no-such-bucket/x', options })).rejects.toMatchObject({
        code: StorageErrorCode.Unavailable,
        message: expect.stringContaining(`bucket 'no-such-bucket' does not exist`),
      });
      await expect(probeS3Endpoint({ url: `s3://${BUCKET}`, options: { ...options, secretAccessKey: 'x' } })).rejects.toMatchObject({
        code: StorageErrorCode.InvalidConfig,
      });
      expect((await objectKeysUnder('', plainAdmin)).filter((key) => key.includes('.stowage-probe-'))).toEqual([]);
    });
  });
});

/** Each operation of the contract once, as functions that start it. */
function everyOperation(storage: S3Storage): Array<() => Promise<unknown>> {
  return [
    () => storage.put('x', bufferBody('x')),
    () => storage.get('x'),
    () => storage.stat('x'),
    () => storage.delete(['x']),
    async () => {
      for await (const _ of storage.list('')) break;
    },
  ];
}

/** A TCP server on 127.0.0.1 that accepts connections and never answers. */
async function listeningServer(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port, sockets };
}
