import { createServer as createNetServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import OSS from 'ali-oss';
import { crc64Reference, startOssTestServer, type OssOperation, type OssTestServer } from '@stowage/oss-test-server';
import { StorageErrorCode, StorageRegistry, bufferBody, sha256Hex, type PutBody, type StorageAdapter, type StorageError } from '@stowage/storage';
import { describeStorageAdapter, resumedFrom } from '@stowage/storage-testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ossStorageFactory } from './factory.js';
import { OssStorage, type OssStorageOptions } from './oss.js';

const KEYS = { accessKeyId: 'LTAI5tStowageTestKey', accessKeySecret: 'Zq8nYtSecretThatMustNeverBePrinted' };
const BUCKET = 'stowage-oss-test';
const PART = 128 * 1024;

let server: OssTestServer;
beforeAll(async () => {
  server = await startOssTestServer({ ...KEYS, buckets: [BUCKET] });
});
afterAll(() => server.close());

let prefixes = 0;
/** An adapter over a fresh prefix of the test bucket. */
function adapter(options: Partial<OssStorageOptions> = {}): OssStorage {
  return new OssStorage({
    bucket: BUCKET,
    prefix: `t${++prefixes}/`,
    region: 'cn-hangzhou',
    endpoint: server.endpoint,
    credentials: KEYS,
    ...options,
  });
}

/** Deletes what an adapter stored, through a fresh adapter over the same prefix. */
async function removeAll(prefix: string): Promise<void> {
  const cleaner = adapter({ prefix });
  const keys: string[] = [];
  for await (const info of cleaner.list('')) keys.push(info.key);
  await cleaner.delete(keys);
  await cleaner.close();
}

for (const signatureVersion of ['v1', 'v4'] as const) {
  describeStorageAdapter({
    // V4 with small parts, so the 5 MiB object of the suite goes up in a multipart upload.
    name: `OssStorage (${signatureVersion} signatures${signatureVersion === 'v4' ? ', 1 MiB parts' : ''})`,
    async create() {
      const storage = adapter({ signatureVersion, ...(signatureVersion === 'v4' ? { partSize: 1024 * 1024 } : {}) });
      return { adapter: storage, cleanup: () => removeAll(storage.prefix) };
    },
    ...(signatureVersion === 'v4' ? { partSize: 1024 * 1024 } : {}),
    unreachable: async () => {
      const closed = createNetServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const { port } = closed.address() as { port: number };
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      return adapter({ endpoint: `http://127.0.0.1:${port}`, secure: false });
    },
    cutNextGet: (after) => {
      server.faults.add({ fault: { kind: 'cut-response', after } });
    },
    // The slowest expedited thaw (Cold Archive): one hour.
    completeThaws: () => server.clock.advance(60 * 60 * 1000),
  });
}

/** Keys the server holds under an adapter's prefix. */
const storedKeys = (storage: OssStorage) => server.keys(BUCKET).filter((key) => key.startsWith(storage.prefix));
const uploadsOf = (storage: OssStorage) => server.uploads(BUCKET).filter((upload) => upload.key.startsWith(storage.prefix));
const operationsSince = (start: number) => server.requests.slice(start).map((request) => request.operation);
const collect = async <T>(items: AsyncIterable<T>) => {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
};
const readAll = async (storage: StorageAdapter, key: string, range?: { offset: number; length?: number }) =>
  buffer(await storage.get(key, range ? { range } : {}));

describe('OssStorage against the OSS test server', () => {
  let storage: OssStorage;
  beforeEach(() => {
    server.faults.clear();
    storage = adapter({ partSize: PART });
  });
  afterEach(() => storage.close());

  describe('multipart uploads', () => {
    it('uploads a body larger than a part in parts, verifies and reports the CRC-64 of the whole', async () => {
      const bytes = randomBytes(3 * PART + 4321);
      const start = server.requests.length;
      const info = await storage.put('big.bin', bufferBody(bytes));
      expect(operationsSince(start)).toEqual(['InitiateMultipartUpload', 'UploadPart', 'UploadPart', 'UploadPart', 'UploadPart', 'CompleteMultipartUpload']);
      const crc = crc64Reference(bytes);
      expect(info).toMatchObject({ key: 'big.bin', size: bytes.length, checksums: { crc64ecma: crc } });
      expect(info.etag).toMatch(/^[0-9A-F]{32}-4$/);
      expect(await storage.stat('big.bin')).toMatchObject({ size: bytes.length, etag: info.etag, checksums: { crc64ecma: crc } });
      expect(server.object(BUCKET, `${storage.prefix}big.bin`)).toMatchObject({ type: 'Multipart', crc64: crc });
      expect(sha256Hex(await readAll(storage, 'big.bin'))).toBe(sha256Hex(bytes));
      expect(uploadsOf(storage)).toEqual([]);
    });

    it('keeps at most `parallel` parts in flight and still assembles them in order', async () => {
      const parallel = adapter({ partSize: PART, parallel: 3 });
      server.faults.add({ fault: { kind: 'delay', ms: 30 }, operations: ['UploadPart'], times: 10 });
      const bytes = randomBytes(10 * PART);
      const start = server.requests.length;
      await parallel.put('p.bin', bufferBody(bytes));
      expect(sha256Hex(server.object(BUCKET, `${parallel.prefix}p.bin`)!.bytes)).toBe(sha256Hex(bytes));
      const parts = server.requests.slice(start).filter((request) => request.operation === 'UploadPart');
      const overlapping = parts.map((part) => parts.filter((other) => other.startedAt <= part.startedAt && other.endedAt! > part.startedAt).length);
      expect(Math.max(...overlapping)).toBe(3);
      await parallel.close();
    });

    it('a body that does not match its declaration is never completed; the upload is aborted', async () => {
      const bytes = randomBytes(2 * PART + 10);
      const bodies: PutBody[] = [
        { ...bufferBody(bytes), sha256: sha256Hex('something else') },
        { ...bufferBody(bytes), size: bytes.length + 1 },
        { ...bufferBody(bytes), size: bytes.length - 1 },
        { ...bufferBody(bytes), crc64ecma: '12345' },
        { ...bufferBody(randomBytes(10)), size: 5 * PART },
      ];
      for (const body of bodies) {
        await expect(storage.put('lie.bin', body)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
      }
      expect(storedKeys(storage)).toEqual([]);
      expect(uploadsOf(storage)).toEqual([]);
    });

    it('stops reading a body that runs past its declared size', async () => {
      let produced = 0;
      const endless: PutBody = {
        size: 2 * PART,
        sha256: sha256Hex('irrelevant'),
        open: () =>
          new Readable({
            read() {
              produced += 64 * 1024;
              this.push(Buffer.alloc(64 * 1024));
            },
          }),
      };
      await expect(storage.put('endless', endless)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
      expect(produced).toBeLessThan(6 * PART);
      expect(uploadsOf(storage)).toEqual([]);
    });

    it('a failing part aborts the upload with a transient error', async () => {
      server.faults.failNext(1, 503, ['UploadPart']);
      await expect(storage.put('f.bin', bufferBody(randomBytes(3 * PART)))).rejects.toMatchObject({
        code: StorageErrorCode.Transient,
        context: { status: 503, ossCode: 'ServiceUnavailable' },
      });
      expect(storedKeys(storage)).toEqual([]);
      expect(uploadsOf(storage)).toEqual([]);
    });

    it('ifNoneMatch refuses an existing key before uploading parts and at completion', async () => {
      await storage.put('lock', bufferBody('held'));
      const start = server.requests.length;
      await expect(storage.put('lock', bufferBody(randomBytes(2 * PART)), { ifNoneMatch: true })).rejects.toMatchObject({
        code: StorageErrorCode.AlreadyExists,
      });
      expect(operationsSince(start)).toEqual(['InitiateMultipartUpload']);

      // Another writer takes the key while our parts are going up: completion refuses.
      server.faults.add({ fault: { kind: 'delay', ms: 200 }, operations: ['UploadPart'] });
      const racing = storage.put('race', bufferBody(randomBytes(2 * PART)), { ifNoneMatch: true });
      await new Promise((resolve) => setTimeout(resolve, 50));
      await storage.put('race', bufferBody('theirs'));
      await expect(racing).rejects.toMatchObject({ code: StorageErrorCode.AlreadyExists });
      expect((await readAll(storage, 'race')).toString()).toBe('theirs');
      expect(uploadsOf(storage)).toEqual([]);
    });

    it('aborting mid-upload stops it and aborts the multipart upload', async () => {
      const controller = new AbortController();
      let sent = 0;
      const body: PutBody = {
        size: 8 * PART,
        sha256: sha256Hex('irrelevant'),
        open: () =>
          new Readable({
            read() {
              sent += PART;
              if (sent > 3 * PART) controller.abort();
              this.push(randomBytes(PART));
            },
          }),
      };
      await expect(storage.put('aborted', body, { signal: controller.signal })).rejects.toMatchObject({
        code: StorageErrorCode.Aborted,
      });
      expect(uploadsOf(storage)).toEqual([]);
      expect(storedKeys(storage)).toEqual([]);
    });
  });

  describe('reporting the server’s CRC-64 (the engine compares it; the adapter does not)', () => {
    it.each<[string, 'truncate' | 'flip-byte', OssOperation, number]>([
      ['a simple put stored truncated', 'truncate', 'PutObject', 1000],
      ['a simple put stored with a flipped byte', 'flip-byte', 'PutObject', 1000],
      ['a multipart upload assembled truncated', 'truncate', 'CompleteMultipartUpload', 3 * PART],
      ['a multipart upload assembled with a flipped byte', 'flip-byte', 'CompleteMultipartUpload', 3 * PART],
      ['a multipart upload with a part stored wrongly', 'flip-byte', 'UploadPart', 3 * PART],
    ])('%s: put reports the CRC-64 the server stored next to the one sent, and stat the same', async (_, kind, operation, size) => {
      server.faults.add({ fault: { kind }, operations: [operation] });
      const bytes = randomBytes(size);
      const info = await storage.put('bad.bin', bufferBody(bytes));
      expect(server.faults.pending).toBe(0);
      expect(info.sent).toEqual({ crc64ecma: crc64Reference(bytes) });
      expect(info.checksums.crc64ecma).toMatch(/^\d+$/);
      expect(info.checksums.crc64ecma).not.toBe(info.sent!.crc64ecma);
      expect((await storage.stat('bad.bin'))!.checksums).toEqual(info.checksums);
    });

    it('a put stored intact reports equal CRC-64s', async () => {
      const bytes = randomBytes(3 * PART + 17);
      const info = await storage.put('good.bin', bufferBody(bytes));
      expect(info.checksums).toEqual({ crc64ecma: crc64Reference(bytes) });
      expect(info.sent).toEqual(info.checksums);
    });

    it('an endpoint that reports no CRC-64: put reports none, only what was sent', async () => {
      server.faults.add({ fault: { kind: 'omit-crc64' }, operations: ['PutObject'] });
      const info = await storage.put('unverifiable', bufferBody('x'));
      expect(info.checksums).toEqual({});
      expect(info.sent).toEqual({ crc64ecma: crc64Reference(Buffer.from('x')) });
    });

    it('stat reports what the server holds, so bit rot at rest shows on a read-back, not in stat', async () => {
      const bytes = randomBytes(5000);
      const info = await storage.put('rot', bufferBody(bytes));
      server.corruptObject(BUCKET, `${storage.prefix}rot`, 'flip-byte');
      expect((await storage.stat('rot'))!.checksums.crc64ecma).toBe(info.checksums.crc64ecma);
      expect(crc64Reference(await readAll(storage, 'rot'))).not.toBe(info.checksums.crc64ecma);
    });
  });

  describe('reads', () => {
    it('serves ranges, an empty range and a range past the end', async () => {
      const bytes = randomBytes(1000);
      await storage.put('r', bufferBody(bytes));
      expect(await readAll(storage, 'r', { offset: 10, length: 5 })).toEqual(bytes.subarray(10, 15));
      expect(await readAll(storage, 'r', { offset: 0, length: 0 })).toEqual(Buffer.alloc(0));
      expect(await readAll(storage, 'r', { offset: 1000 })).toEqual(Buffer.alloc(0));
      expect(await readAll(storage, 'r', { offset: 5000, length: 10 })).toEqual(Buffer.alloc(0));
      await expect(storage.get('missing', { range: { offset: 0, length: 0 } })).rejects.toMatchObject({
        code: StorageErrorCode.ObjectNotFound,
      });
      await expect(storage.get('r', { range: { offset: -1 } })).rejects.toThrow(RangeError);
    });

    it('refuses an answer that ignored the range instead of handing out the wrong bytes', async () => {
      await storage.put('r', bufferBody('0123456789'));
      server.faults.add({ fault: { kind: 'ignore-range' } });
      await expect(storage.get('r', { range: { offset: 2, length: 3 } })).rejects.toMatchObject({
        code: StorageErrorCode.Unsupported,
      });
    });

    it('a download cut mid-stream resumes with one ranged GET and reads byte-exact', async () => {
      const bytes = randomBytes(3 * 1024 * 1024);
      await storage.put('r', bufferBody(bytes));
      const retries: number[] = [];
      const resuming = adapter({ prefix: storage.prefix, onRetry: ({ attempt }) => retries.push(attempt) });
      server.faults.add({ fault: { kind: 'cut-response', after: 1024 * 1024 } });
      const start = server.requests.length;
      expect((await buffer(await resuming.get('r'))).equals(bytes)).toBe(true);
      const gets = server.requests.slice(start).filter((request) => request.operation === 'GetObject');
      expect(gets.map(({ status }) => status)).toEqual([0, 206]);
      expect(gets[0]!.range).toBeUndefined();
      expect(resumedFrom(gets[1]!.range)).toBeLessThanOrEqual(1024 * 1024);
      expect(retries).toEqual([1]);
      // A ranged read resumes within its range.
      server.faults.add({ fault: { kind: 'cut-response', after: 1000 } });
      expect((await buffer(await resuming.get('r', { range: { offset: 10, length: 5000 } }))).equals(bytes.subarray(10, 5010))).toBe(true);
      expect(server.requests.at(-1)).toMatchObject({ status: 206 });
      const sliceFrom = resumedFrom(server.requests.at(-1)!.range, 5009);
      expect(sliceFrom).toBeGreaterThanOrEqual(10);
      expect(sliceFrom).toBeLessThanOrEqual(1010);
      await resuming.close();
    });

    it('an object replaced between the cut and the resume fails with object_changed, never mixed bytes', async () => {
      await storage.put('r', bufferBody(randomBytes(3 * 1024 * 1024)));
      server.faults.add({ fault: { kind: 'cut-response', after: 1024 * 1024 } });
      const stream = await storage.get('r');
      await storage.put('r', bufferBody(randomBytes(3 * 1024 * 1024)));
      const error = (await buffer(stream).catch((e: unknown) => e)) as StorageError;
      expect(error).toMatchObject({ code: StorageErrorCode.ObjectChanged });
      const received = error.context.received as number;
      expect(received).toBeLessThanOrEqual(1024 * 1024);
      expect(server.requests.at(-1)).toMatchObject({ operation: 'GetObject', range: `bytes=${received}-`, status: 412 });
    });

    it('a download cut on every attempt ends with a transient StorageError after three resumes', async () => {
      await storage.put('r', bufferBody(randomBytes(200_000)));
      server.faults.add({ fault: { kind: 'cut-response', after: 1000 }, times: 4 });
      const start = server.requests.length;
      await expect(buffer(await storage.get('r'))).rejects.toMatchObject({ name: 'StorageError', code: StorageErrorCode.Transient });
      const gets = server.requests.slice(start).filter((request) => request.operation === 'GetObject');
      expect(gets).toHaveLength(4);
      expect(gets[0]!.range).toBeUndefined();
      // Each resume starts after what the one before it handed over (at most the 1000 bytes before its cut).
      gets.slice(1).reduce((previous, request) => {
        const offset = resumedFrom(request.range);
        expect(offset).toBeGreaterThanOrEqual(previous);
        expect(offset - previous).toBeLessThanOrEqual(1000);
        return offset;
      }, 0);
    });

    it('an Archive object must be thawed before it can be read; stat still works', async () => {
      const cold = adapter({ storageClass: 'Archive' });
      await cold.put('frozen', bufferBody('x'));
      expect(server.object(BUCKET, `${cold.prefix}frozen`)?.storageClass).toBe('Archive');
      expect(await cold.stat('frozen')).toMatchObject({ size: 1, storageClass: 'Archive', archive: { state: 'archived' } });
      await expect(cold.get('frozen')).rejects.toMatchObject({
        code: StorageErrorCode.ObjectArchived,
        message: expect.stringContaining('must be thawed (restored) before it can be read'),
        context: { storageClass: 'Archive', state: 'archived' },
      });
      await cold.close();
    });
  });

  describe('archive tiers', () => {
    const MINUTE = 60_000;
    const DAY = 24 * 60 * MINUTE;

    it('tiers to Archive by a server-side copy reported with its CRC-64, refuses reads, thaws, and then reads byte-exact', async () => {
      const bytes = randomBytes(3 * PART + 17); // a multipart object: its CRC-64 is combined from the parts'
      const stored = await storage.put('full.bin', bufferBody(bytes));
      expect(await storage.stat('full.bin')).toMatchObject({ storageClass: 'Standard' });
      expect((await storage.stat('full.bin'))!.archive).toBeUndefined();

      const start = server.requests.length;
      const tiered = await storage.setStorageClass('full.bin', 'Archive');
      expect(operationsSince(start)).toEqual(['HeadObject', 'CopyObject', 'HeadObject']);
      expect(tiered).toMatchObject({
        size: bytes.length,
        storageClass: 'Archive',
        archive: { state: 'archived' },
        checksums: { crc64ecma: stored.checksums.crc64ecma },
      });
      // Idempotent: already in the class, nothing is copied.
      const again = server.requests.length;
      await storage.setStorageClass('full.bin', 'Archive');
      expect(operationsSince(again)).toEqual(['HeadObject']);

      await expect(readAll(storage, 'full.bin')).rejects.toMatchObject({
        code: StorageErrorCode.ObjectArchived,
        context: { key: 'full.bin', state: 'archived' },
      });
      await expect(storage.setStorageClass('full.bin', 'Standard')).rejects.toMatchObject({ code: StorageErrorCode.ObjectArchived });

      const thawing = await storage.requestThaw('full.bin', { days: 30, tier: 'bulk' });
      expect(thawing.archive).toEqual({ state: 'thawing' });
      // Archive restores last at most 7 days: the request was capped, not refused (and Archive has no priorities).
      const { readyAt, expiresAt } = server.object(BUCKET, `${storage.prefix}full.bin`)!.restore!;
      expect(expiresAt.getTime() - readyAt.getTime()).toBe(7 * DAY);
      await expect(readAll(storage, 'full.bin')).rejects.toMatchObject({
        code: StorageErrorCode.ObjectArchived,
        message: expect.stringContaining('is being thawed'),
        context: { state: 'thawing' },
      });
      const repeat = server.requests.length;
      expect((await storage.requestThaw('full.bin', { days: 1 })).archive).toEqual({ state: 'thawing' });
      expect(operationsSince(repeat)).toEqual(['HeadObject']);
      const [listed] = await collect(storage.list('full'));
      expect(listed).toMatchObject({ storageClass: 'Archive', archive: { state: 'thawing' } });

      server.clock.advance(MINUTE);
      const readable = await storage.stat('full.bin');
      expect(readable!.archive).toEqual({ state: 'readable', thawExpires: new Date(expiresAt.toUTCString()) });
      expect((await collect(storage.list('full')))[0]!.archive).toEqual(readable!.archive);
      expect(sha256Hex(await readAll(storage, 'full.bin'))).toBe(sha256Hex(bytes));

      // Back to a hot class once thawed: a plain readable object again.
      const hot = await storage.setStorageClass('full.bin', 'IA');
      expect(hot).toMatchObject({ storageClass: 'IA', checksums: { crc64ecma: stored.checksums.crc64ecma } });
      expect(hot.archive).toBeUndefined();

      server.clock.advance(8 * DAY);
      expect(sha256Hex(await readAll(storage, 'full.bin'))).toBe(sha256Hex(bytes));
    });

    it('a thaw expires: the object is archived again', async () => {
      await storage.put('k', bufferBody('payload'));
      await storage.setStorageClass('k', 'ColdArchive');
      await storage.requestThaw('k', { days: 2, tier: 'expedited' });
      expect(server.object(BUCKET, `${storage.prefix}k`)!.restore).toMatchObject({ tier: 'Expedited' });
      server.clock.advance(60 * MINUTE);
      expect((await storage.stat('k'))!.archive!.state).toBe('readable');
      server.clock.advance(2 * DAY);
      expect((await storage.stat('k'))!.archive).toEqual({ state: 'archived' });
      await expect(storage.get('k')).rejects.toMatchObject({ code: StorageErrorCode.ObjectArchived });
    });

    it('a copy whose bytes differ from the original is reported with the CRC-64 OSS computed for it (core decides)', async () => {
      const stored = await storage.put('k', bufferBody(randomBytes(5000)));
      server.faults.add({ fault: { kind: 'flip-byte' }, operations: ['CopyObject'] });
      const copy = await storage.setStorageClass('k', 'Archive');
      expect(copy).toMatchObject({ size: 5000, storageClass: 'Archive' });
      expect(copy.checksums.crc64ecma).toBeDefined();
      expect(copy.checksums.crc64ecma).not.toBe(stored.checksums.crc64ecma);
    });

    it('a thaw request racing another one, or one finished meanwhile, is not an error', async () => {
      await storage.put('k', bufferBody('x'));
      await storage.setStorageClass('k', 'Archive');
      server.faults.add({ fault: { kind: 'error', status: 409, code: 'RestoreAlreadyInProgress' }, operations: ['RestoreObject'] });
      await expect(storage.requestThaw('k', { days: 1 })).resolves.toMatchObject({ archive: { state: 'archived' } });
    });

    it('refuses what cannot be done, with the code callers check', async () => {
      await storage.put('hot', bufferBody('x'));
      await expect(storage.requestThaw('hot', { days: 1 })).rejects.toMatchObject({
        code: StorageErrorCode.Unsupported,
        message: expect.stringContaining('needs no thaw'),
      });
      await expect(storage.setStorageClass('hot', 'GLACIER')).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });
      await expect(storage.setStorageClass('absent', 'Archive')).rejects.toMatchObject({ code: StorageErrorCode.ObjectNotFound });
      await expect(storage.requestThaw('absent', { days: 1 })).rejects.toMatchObject({ code: StorageErrorCode.ObjectNotFound });
      await expect(storage.requestThaw('hot', { days: 0 })).rejects.toThrow(RangeError);
      expect(storage.capabilities.archiveClasses).toEqual(['Archive', 'ColdArchive', 'DeepColdArchive']);
    });

    it('a copy conditional on the ETag seen first: an object replaced in between is left as it is', async () => {
      await storage.put('k', bufferBody('old'));
      server.faults.add({ fault: { kind: 'delay', ms: 300 }, operations: ['CopyObject'] });
      const tiering = storage.setStorageClass('k', 'Archive');
      const outcome = expect(tiering).rejects.toMatchObject({
        code: StorageErrorCode.Unavailable,
        message: expect.stringContaining('was replaced while'),
      });
      while (!server.requests.some((request) => request.operation === 'CopyObject')) await sleep(5);
      const writer = adapter({ prefix: storage.prefix });
      await writer.put('k', bufferBody('new'));
      await writer.close();
      await outcome;
      expect(server.object(BUCKET, `${storage.prefix}k`)).toMatchObject({ storageClass: 'Standard', bytes: Buffer.from('new') });
    });
  });

  describe('listing and deleting', () => {
    it('skips folder placeholders such as the OSS console creates', async () => {
      for (const key of ['a/1', 'a/2', 'b']) await storage.put(key, bufferBody(key));
      const ossConsole = new OSS({ ...KEYS, endpoint: server.endpoint, region: 'oss-cn-hangzhou', bucket: BUCKET });
      await ossConsole.put(`${storage.prefix}a/`, Buffer.alloc(0));
      expect(storedKeys(storage)).toContain(`${storage.prefix}a/`);
      const keys: string[] = [];
      for await (const info of storage.list('')) keys.push(info.key);
      expect(keys).toEqual(['a/1', 'a/2', 'b']);
    });

    it('deletes in batches of 1,000 keys', async () => {
      const keys = Array.from({ length: 1001 }, (_, i) => `many/${i}`);
      const writer = adapter({ prefix: storage.prefix });
      for (let i = 0; i < keys.length; i += 50) {
        await Promise.all(keys.slice(i, i + 50).map((key) => writer.put(key, bufferBody('x'))));
      }
      await writer.close();
      const start = server.requests.length;
      await storage.delete([...keys, 'never-existed']);
      expect(operationsSince(start)).toEqual(['DeleteMultipleObjects', 'DeleteMultipleObjects']);
      expect(storedKeys(storage)).toEqual([]);
    });
  });

  describe('errors', () => {
    it.each(['v1', 'v4'] as const)('a wrong secret is permission_denied on every operation, and never printed (%s)', async (signatureVersion) => {
      const secret = 'Wr0ngSecretValueThatMustNotLeak';
      const wrong = adapter({ signatureVersion, credentials: { ...KEYS, accessKeySecret: secret } });
      await storage.put('x', bufferBody('x'));
      const attempts = [
        () => wrong.put('x', bufferBody('x')),
        () => wrong.put('big', bufferBody(randomBytes(2 * PART))),
        () => wrong.get('x'),
        () => wrong.stat('x'),
        () => wrong.list('')[Symbol.asyncIterator]().next(),
        () => wrong.delete(['x']),
      ];
      for (const attempt of attempts) {
        const error = await attempt().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toMatchObject({ name: 'StorageError', code: StorageErrorCode.PermissionDenied });
        const printed = `${inspect(error, { depth: 20 })} ${JSON.stringify(error)}`;
        expect(printed).not.toContain(secret);
        expect(printed).not.toContain(KEYS.accessKeySecret);
      }
      await wrong.close();
    });

    it('an unknown access key is permission_denied', async () => {
      const unknown = adapter({ credentials: { ...KEYS, accessKeyId: 'LTAI5tUnknownKey' } });
      await expect(unknown.stat('x')).rejects.toMatchObject({
        code: StorageErrorCode.PermissionDenied,
        context: { ossCode: 'InvalidAccessKeyId' },
      });
      await unknown.close();
    });

    it('a server that is down is transient', async () => {
      const gone = await startOssTestServer({ ...KEYS, buckets: [BUCKET] });
      await gone.close();
      const down = adapter({ endpoint: gone.endpoint });
      const attempts = [
        () => down.put('x', bufferBody('x')),
        () => down.get('x'),
        () => down.stat('x'),
        () => down.list('')[Symbol.asyncIterator]().next(),
        () => down.delete(['x']),
      ];
      for (const attempt of attempts) await expect(attempt()).rejects.toMatchObject({ code: StorageErrorCode.Transient });
      await down.close();
    });

    it('5xx answers, dropped connections and timeouts are transient', async () => {
      await storage.put('x', bufferBody('x'));
      server.faults.failNext(1, 500);
      await expect(storage.stat('x')).rejects.toMatchObject({ code: StorageErrorCode.Transient, context: { status: 500 } });
      server.faults.failNext(1, 503);
      await expect(storage.get('x')).rejects.toMatchObject({ code: StorageErrorCode.Transient });
      server.faults.add({ fault: { kind: 'reset' } });
      await expect(storage.put('y', bufferBody('y'))).rejects.toMatchObject({ code: StorageErrorCode.Transient });
      const impatient = adapter({ prefix: storage.prefix, timeoutMs: 100 });
      server.faults.add({ fault: { kind: 'delay', ms: 400 } });
      await expect(impatient.stat('x')).rejects.toMatchObject({ code: StorageErrorCode.Transient });
      await impatient.close();
    });

    it('a missing bucket is named in the error', async () => {
      const nowhere = adapter({ bucket: 'no-such-bucket' });
      for (const attempt of [() => nowhere.put('x', bufferBody('x')), () => nowhere.list('')[Symbol.asyncIterator]().next()]) {
        await expect(attempt()).rejects.toMatchObject({
          code: StorageErrorCode.Unavailable,
          message: expect.stringContaining(`the bucket 'no-such-bucket' does not exist`),
        });
      }
      await nowhere.close();
    });

    it('works with STS credentials and refuses requests without the token', async () => {
      const sts = await startOssTestServer({ ...KEYS, securityToken: 'CAIS-sts-token-secret', buckets: [BUCKET] });
      try {
        const withToken = adapter({ endpoint: sts.endpoint, credentials: { ...KEYS, securityToken: 'CAIS-sts-token-secret' } });
        await withToken.put('x', bufferBody('x'));
        expect((await readAll(withToken, 'x')).toString()).toBe('x');
        const withoutToken = adapter({ endpoint: sts.endpoint, prefix: withToken.prefix });
        await expect(withoutToken.stat('x')).rejects.toMatchObject({ code: StorageErrorCode.PermissionDenied });
        await Promise.all([withToken.close(), withoutToken.close()]);
      } finally {
        await sts.close();
      }
    });
  });
});

describe('ossStorageFactory end to end', () => {
  const env = { OSS_TEST_KEY_ID: KEYS.accessKeyId, OSS_TEST_KEY_SECRET: KEYS.accessKeySecret };
  beforeAll(() => void Object.assign(process.env, env));
  afterAll(() => {
    for (const name of Object.keys(env)) delete process.env[name];
  });

  it('opens oss://bucket/prefix from the registry with credentials from the environment', async () => {
    const registry = new StorageRegistry().register(ossStorageFactory);
    const storage = await registry.open(
      {
        url: `oss://${BUCKET}/factory/run`,
        options: {
          region: 'oss-cn-hangzhou',
          endpoint: server.endpoint,
          accessKeyIdEnv: 'OSS_TEST_KEY_ID',
          accessKeySecretEnv: 'OSS_TEST_KEY_SECRET',
          signatureVersion: 'v1',
          secure: false,
          storageClass: 'IA',
          partSizeMiB: 0.125,
        },
      },
      { baseDir: '/' },
    );
    expect(storage.description).toBe(`oss://${BUCKET}/factory/run/`);
    await storage.put('db.sqlite3', bufferBody('data'));
    expect(server.object(BUCKET, 'factory/run/db.sqlite3')).toMatchObject({ storageClass: 'IA' });
    expect(server.requests.at(-1)).toMatchObject({ operation: 'PutObject', signature: 'v1' });
    const big = randomBytes(300 * 1024);
    await storage.put('big.sqlite3', bufferBody(big));
    expect(server.object(BUCKET, 'factory/run/big.sqlite3')).toMatchObject({ type: 'Multipart', crc64: crc64Reference(big) });
    await storage.delete(['db.sqlite3', 'big.sqlite3']);
    expect(server.keys(BUCKET).filter((key) => key.startsWith('factory/'))).toEqual([]);
    await storage.close?.();
  });
});
