import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import OSS from 'ali-oss';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { crc64 } from './crc64.js';
import { startOssTestServer, type OssTestServer } from './server.js';

const KEYS = { accessKeyId: 'LTAI-test-access-key', accessKeySecret: 'test-secret-do-not-print' };
const BUCKET = 'stowage-test';

let server: OssTestServer;
beforeAll(async () => {
  server = await startOssTestServer({ ...KEYS, buckets: [BUCKET] });
});
afterAll(() => server.close());

/** A real ali-oss client pointed at the test server. */
function client(options: Partial<OSS.Options> = {}): OSS {
  return new OSS({ ...KEYS, endpoint: server.endpoint, region: 'oss-cn-hangzhou', bucket: BUCKET, ...options });
}

/** The response headers of an ali-oss result. */
const headersOf = (result: { res: OSS.NormalSuccessResponse }) => result.res.headers as Record<string, string>;
/** GetObjectMeta, which @types/ali-oss does not declare. */
const getObjectMeta = (oss: OSS, key: string) =>
  (oss as unknown as { getObjectMeta(name: string): Promise<{ res: OSS.NormalSuccessResponse }> }).getObjectMeta(key);
const md5Hex = (bytes: Buffer) => createHash('md5').update(bytes).digest('hex').toUpperCase();
const lastRequest = () => server.requests.at(-1)!;

/** Clears the bucket between tests. */
async function emptyBucket(oss: OSS): Promise<void> {
  const keys = server.keys(BUCKET);
  for (let i = 0; i < keys.length; i += 1000) await oss.deleteMulti(keys.slice(i, i + 1000), { quiet: true });
  for (const upload of server.uploads(BUCKET)) await oss.abortMultipartUpload(upload.key, upload.uploadId);
}

describe.each([
  ['V1', false],
  ['V4', true],
] as const)('%s signatures with the real ali-oss client', (version, authorizationV4) => {
  const signature = authorizationV4 ? 'v4' : 'v1';

  it('accepts a correctly signed request of every kind', async () => {
    const oss = client({ authorizationV4 });
    const key = `signed/${version}/odd key +&=?%#.txt`;
    await oss.put(key, Buffer.from('payload'), { headers: { 'x-oss-meta-note': 'hi', 'x-oss-storage-class': 'IA' } });
    expect(lastRequest()).toMatchObject({ operation: 'PutObject', status: 200, signature, key });
    expect(String((await oss.get(key)).content)).toBe('payload');
    expect((await oss.head(key)).meta).toEqual({ note: 'hi' });
    expect(headersOf(await getObjectMeta(oss, key))['x-oss-hash-crc64ecma']).toBe(crc64(Buffer.from('payload')));
    expect((await oss.listV2({ prefix: 'signed/', 'continuation-token': Buffer.from('signed/').toString('base64url') }, {})).objects).toHaveLength(1);
    await oss.deleteMulti([key]);
    expect(server.requests.slice(-6).map((request) => request.signature)).toEqual(Array(6).fill(signature));
    expect(server.requests.slice(-6).map((request) => request.status)).toEqual([200, 200, 200, 200, 200, 200]);
  });

  it('rejects a wrong secret with 403 SignatureDoesNotMatch, on HEAD too (x-oss-err)', async () => {
    const oss = client({ authorizationV4, accessKeySecret: 'not-the-secret' });
    await expect(oss.put('x', Buffer.from('x'))).rejects.toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
    await expect(oss.head('x')).rejects.toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
    await expect(oss.listV2({}, {})).rejects.toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' });
    expect(server.object(BUCKET, 'x')).toBeUndefined();
  });

  it('rejects an unknown access key with 403 InvalidAccessKeyId', async () => {
    const oss = client({ authorizationV4, accessKeyId: 'LTAI-unknown' });
    await expect(oss.get('x')).rejects.toMatchObject({ status: 403, code: 'InvalidAccessKeyId' });
  });

  it('rejects a request signed more than 15 minutes off the server clock', async () => {
    const oss = client({ authorizationV4, amendTimeSkewed: 20 * 60_000 } as Partial<OSS.Options>);
    await expect(oss.get('x')).rejects.toMatchObject({ status: 403, code: 'RequestTimeTooSkewed' });
  });
});

describe('authentication details', () => {
  it('rejects a V4 signature scoped to another region', async () => {
    const oss = client({ authorizationV4: true, region: 'oss-cn-beijing' });
    await expect(oss.get('x')).rejects.toMatchObject({ status: 400, code: 'InvalidArgument' });
  });

  it('rejects anonymous requests with an OSS XML error and a request id', async () => {
    const response = await fetch(`${server.endpoint}/${BUCKET}/x`);
    expect(response.status).toBe(403);
    expect(response.headers.get('x-oss-request-id')).toMatch(/^[0-9A-F]{24}$/);
    const text = await response.text();
    expect(text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>AccessDenied<\/Code><Message>.+<\/Message>/);
    expect(text).toContain(`<RequestId>${response.headers.get('x-oss-request-id')}</RequestId>`);
    expect(text).toContain(`<HostId>${BUCKET}.oss-cn-hangzhou.aliyuncs.com</HostId>`);
  });

  it('requires the STS token when the server has one', async () => {
    const sts = await startOssTestServer({ ...KEYS, securityToken: 'sts-token', buckets: [BUCKET] });
    try {
      const options = {
        ...KEYS,
        endpoint: sts.endpoint,
        region: 'oss-cn-hangzhou',
        bucket: BUCKET,
        refreshSTSTokenInterval: 3_600_000,
      };
      await new OSS({ ...options, stsToken: 'sts-token' }).put('k', Buffer.from('x'));
      await new OSS({ ...options, stsToken: 'sts-token', authorizationV4: true }).put('k', Buffer.from('x'));
      await expect(new OSS(options).put('k', Buffer.from('x'))).rejects.toMatchObject({
        status: 403,
        code: 'InvalidSecurityToken',
      });
      await expect(new OSS({ ...options, stsToken: 'other' }).put('k', Buffer.from('x'))).rejects.toMatchObject({
        code: 'InvalidSecurityToken',
      });
    } finally {
      await sts.close();
    }
  });

  it('also serves path-style requests addressed to 127.0.0.1', async () => {
    const oss = client();
    await oss.put('path/style', Buffer.from('x'));
    const response = await fetch(`${server.endpoint}/${BUCKET}/path/style`);
    expect(response.status).toBe(403); // reached the object; refused for want of a signature
    expect(lastRequest()).toMatchObject({ operation: 'GetObject', bucket: BUCKET, key: 'path/style' });
  });
});

describe('objects', () => {
  const oss = () => client();
  beforeEach(() => emptyBucket(oss()));

  it('PutObject answers an upper-case MD5 ETag, Content-MD5 and the CRC-64 of the bytes', async () => {
    const bytes = randomBytes(10_000);
    const result = await oss().put('obj', bytes);
    expect(headersOf(result)).toMatchObject({
      etag: `"${md5Hex(bytes)}"`,
      'content-md5': createHash('md5').update(bytes).digest('base64'),
      'x-oss-hash-crc64ecma': crc64(bytes),
    });
    expect(headersOf(result)['x-oss-request-id']).toMatch(/^[0-9A-F]{24}$/);
    expect(server.object(BUCKET, 'obj')).toMatchObject({ type: 'Normal', storageClass: 'Standard' });
    expect(md5Hex(server.object(BUCKET, 'obj')!.bytes)).toBe(md5Hex(bytes));
  });

  it('PutObject refuses a body that does not match its Content-MD5 (400 InvalidDigest)', async () => {
    const wrong = createHash('md5').update('other').digest('base64');
    await expect(oss().put('obj', Buffer.from('body'), { headers: { 'Content-MD5': wrong } })).rejects.toMatchObject({
      status: 400,
      code: 'InvalidDigest',
    });
    expect(server.object(BUCKET, 'obj')).toBeUndefined();
  });

  it('x-oss-forbid-overwrite: true refuses to replace an object (409 FileAlreadyExists)', async () => {
    const forbid = { headers: { 'x-oss-forbid-overwrite': 'true' } };
    await oss().put('once', Buffer.from('first'), forbid);
    await expect(oss().put('once', Buffer.from('second'), forbid)).rejects.toMatchObject({
      status: 409,
      code: 'FileAlreadyExists',
    });
    await oss().put('once', Buffer.from('third'), { headers: { 'x-oss-forbid-overwrite': 'false' } });
    expect(server.object(BUCKET, 'once')?.bytes.toString()).toBe('third');
  });

  it('GetObject and HeadObject report size, ETag, CRC-64, type and storage class', async () => {
    const bytes = randomBytes(777);
    await oss().put('meta', bytes, { headers: { 'x-oss-storage-class': 'IA' } });
    const head = headersOf(await oss().head('meta'));
    expect(head).toMatchObject({
      'content-length': '777',
      etag: `"${md5Hex(bytes)}"`,
      'x-oss-hash-crc64ecma': crc64(bytes),
      'x-oss-object-type': 'Normal',
      'x-oss-storage-class': 'IA',
    });
    expect(new Date(head['last-modified']!).getTime()).toBeGreaterThan(Date.now() - 60_000);
    const got = await oss().get('meta');
    expect(md5Hex(got.content)).toBe(md5Hex(bytes));
    expect(headersOf(got)['x-oss-hash-crc64ecma']).toBe(crc64(bytes));
  });

  it('a missing key is 404 NoSuchKey on GET and HEAD; a missing bucket is NoSuchBucket', async () => {
    await expect(oss().get('absent')).rejects.toMatchObject({ status: 404, code: 'NoSuchKey' });
    await expect(oss().head('absent')).rejects.toMatchObject({ status: 404, code: 'NoSuchKey' });
    await expect(client({ bucket: 'no-such-bucket' }).get('x')).rejects.toMatchObject({ status: 404, code: 'NoSuchBucket' });
    await expect(client({ bucket: 'no-such-bucket' }).put('x', Buffer.from('x'))).rejects.toMatchObject({ code: 'NoSuchBucket' });
  });

  it('reading an Archive object needs a restore (403 InvalidObjectState); HEAD works', async () => {
    await oss().put('cold', Buffer.from('x'), { headers: { 'x-oss-storage-class': 'Archive' } });
    expect(headersOf(await oss().head('cold'))['x-oss-storage-class']).toBe('Archive');
    await expect(oss().get('cold')).rejects.toMatchObject({ status: 403, code: 'InvalidObjectState' });
  });

  describe('ranges', () => {
    const bytes = randomBytes(1000);
    const ranged = async (range: string, standard = false) => {
      const headers = { Range: range, ...(standard ? { 'x-oss-range-behavior': 'standard' } : {}) };
      const result = await oss().getStream('ranged', { headers });
      return {
        status: result.res.status,
        range: headersOf(result)['content-range'],
        body: await buffer(result.stream as Readable),
      };
    };
    beforeEach(() => oss().put('ranged', bytes));

    it('answers 206 with Content-Range for a satisfiable range', async () => {
      expect(await ranged('bytes=10-19')).toEqual({ status: 206, range: 'bytes 10-19/1000', body: bytes.subarray(10, 20) });
      expect(await ranged('bytes=990-')).toEqual({ status: 206, range: 'bytes 990-999/1000', body: bytes.subarray(990) });
      expect(await ranged('bytes=-5')).toEqual({ status: 206, range: 'bytes 995-999/1000', body: bytes.subarray(995) });
      expect(await ranged('bytes=0-1,5-9')).toEqual({ status: 206, range: 'bytes 0-1/1000', body: bytes.subarray(0, 2) });
    });

    it('by default ignores a range it cannot satisfy in full (200, whole object)', async () => {
      expect(await ranged('bytes=990-1099')).toEqual({ status: 200, range: undefined, body: bytes });
      expect(await ranged('bytes=1000-')).toEqual({ status: 200, range: undefined, body: bytes });
      expect(await ranged('bytes=20-10')).toEqual({ status: 200, range: undefined, body: bytes });
    });

    it('with x-oss-range-behavior: standard cuts a range at the end and refuses one past it (416)', async () => {
      expect(await ranged('bytes=990-1099', true)).toEqual({
        status: 206,
        range: 'bytes 990-999/1000',
        body: bytes.subarray(990),
      });
      // ali-oss reads no error body for a streamed GET; the status is all it reports.
      await expect(ranged('bytes=1000-', true)).rejects.toMatchObject({ status: 416 });
    });
  });

  it('DeleteObject answers 204, also for a missing key', async () => {
    await oss().put('gone', Buffer.from('x'));
    expect((await oss().delete('gone')).res.status).toBe(204);
    expect((await oss().delete('gone')).res.status).toBe(204);
    expect(server.keys(BUCKET)).toEqual([]);
  });

  it('DeleteMultipleObjects reports deleted keys, or nothing in quiet mode, and needs Content-MD5', async () => {
    for (const key of ['d/1', 'd/2', 'd/<&>']) await oss().put(key, Buffer.from(key));
    const verbose = await oss().deleteMulti(['d/1', 'd/<&>', 'd/missing']);
    expect(verbose.deleted!.map((entry) => (entry as unknown as { Key: string }).Key)).toEqual(['d/1', 'd/<&>', 'd/missing']);
    expect((await oss().deleteMulti(['d/2'], { quiet: true })).deleted).toEqual([]);
    expect(server.keys(BUCKET)).toEqual([]);
    const response = await fetch(`${server.endpoint}/${BUCKET}/?delete`, { method: 'POST', body: '<Delete/>' });
    expect(response.status).toBe(403); // the signature is checked first; ali-oss always sends Content-MD5
  });
});

describe('listing', () => {
  const oss = () => client();
  const keys = [
    ...Array.from({ length: 25 }, (_, i) => `logs/2024/${String(i).padStart(3, '0')}`),
    ...Array.from({ length: 5 }, (_, i) => `logs/2025/${i}`),
    'logs/readme',
    'other',
  ];
  beforeAll(async () => {
    await emptyBucket(oss());
    for (const key of keys) await oss().put(key, Buffer.from(key));
  });

  it('ListObjects (v1) pages with marker and NextMarker', async () => {
    const seen: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await oss().list({ prefix: 'logs/', 'max-keys': 7, ...(marker ? { marker } : {}) }, {});
      pages++;
      seen.push(...page.objects.map((object) => object.name));
      expect(page.objects.every((object) => object.owner?.id !== undefined)).toBe(true);
      if (!page.isTruncated) break;
      marker = page.nextMarker;
    }
    expect(seen).toEqual(keys.slice(0, -1));
    expect(pages).toBe(5);
  });

  it('ListObjects (v1) rolls keys up into common prefixes with a delimiter, across pages', async () => {
    const first = await oss().list({ prefix: 'logs/', delimiter: '/', 'max-keys': 2 }, {});
    expect(first.prefixes).toEqual(['logs/2024/', 'logs/2025/']);
    expect(first.isTruncated).toBe(true);
    expect(first.nextMarker).toBe('logs/2025/');
    const second = await oss().list({ prefix: 'logs/', delimiter: '/', 'max-keys': 2, marker: first.nextMarker }, {});
    expect(second.objects.map((object) => object.name)).toEqual(['logs/readme']);
    expect(second.prefixes).toBeNull();
    expect(second.isTruncated).toBe(false);
  });

  it('ListObjectsV2 pages with continuation tokens and reports KeyCount', async () => {
    const seen: string[] = [];
    let token: string | undefined;
    for (;;) {
      const page = await oss().listV2({ 'max-keys': 10, ...(token ? { 'continuation-token': token } : {}) }, {});
      expect(page.keyCount).toBe(page.objects.length);
      seen.push(...page.objects.map((object) => object.name));
      if (!page.isTruncated) break;
      token = page.nextContinuationToken!;
    }
    expect(seen).toEqual(keys);
  });

  it('ListObjectsV2 honours start-after, delimiter and max-keys limits', async () => {
    const after = await oss().listV2({ 'start-after': 'logs/2025/3', 'max-keys': 100 }, {});
    expect(after.objects.map((object) => object.name)).toEqual(['logs/2025/4', 'logs/readme', 'other']);
    const rolled = await oss().listV2({ delimiter: '/', 'max-keys': 100 }, {});
    expect(rolled.prefixes).toEqual(['logs/']);
    expect(rolled.keyCount).toBe(2);
    await expect(oss().listV2({ 'max-keys': 1001 }, {})).rejects.toMatchObject({ status: 400, code: 'InvalidArgument' });
    await expect(oss().listV2({ 'continuation-token': 'not a token!' }, {})).rejects.toMatchObject({ code: 'InvalidArgument' });
  });
});

describe('multipart uploads', () => {
  const oss = () => client();
  const PART = 100 * 1024;
  beforeEach(() => emptyBucket(oss()));

  it('initiate, upload parts, list, complete: a "<md5 of md5s>-N" ETag and the CRC-64 of the whole object', async () => {
    const parts = [randomBytes(PART), randomBytes(PART), randomBytes(1234)];
    const { uploadId } = await oss().initMultipartUpload('mp', { headers: { 'x-oss-storage-class': 'IA' } });
    expect(uploadId).toMatch(/^[0-9A-F]{32}$/);
    const uploaded = [];
    for (const [index, part] of parts.entries()) {
      const result = await oss().uploadPart('mp', uploadId, index + 1, part, 0, part.length);
      expect(result.etag).toBe(`"${md5Hex(part)}"`);
      expect(headersOf(result)['x-oss-hash-crc64ecma']).toBe(crc64(part));
      uploaded.push({ number: index + 1, etag: result.etag });
    }
    const listed = await oss().listParts('mp', uploadId, { 'max-parts': 2 } as OSS.ListPartsQuery, {});
    expect(listed.parts.map((part) => (part as unknown as { PartNumber: string }).PartNumber)).toEqual(['1', '2']);
    expect(listed.isTruncated).toBe('true');
    expect((await oss().listUploads({}, {})).uploads).toEqual([expect.objectContaining({ name: 'mp', uploadId })]);

    const complete = await oss().completeMultipartUpload('mp', uploadId, uploaded);
    const whole = Buffer.concat(parts);
    const etagOfParts = createHash('md5')
      .update(Buffer.concat(parts.map((part) => createHash('md5').update(part).digest())))
      .digest('hex');
    expect(complete.etag).toBe(`"${etagOfParts.toUpperCase()}-3"`);
    expect(headersOf(complete)['x-oss-hash-crc64ecma']).toBe(crc64(whole));
    expect(server.object(BUCKET, 'mp')).toMatchObject({ type: 'Multipart', storageClass: 'IA', crc64: crc64(whole) });
    expect(md5Hex(server.object(BUCKET, 'mp')!.bytes)).toBe(md5Hex(whole));
    expect(headersOf(await oss().head('mp'))).toMatchObject({
      'x-oss-object-type': 'Multipart',
      'content-length': String(whole.length),
    });
    expect(server.uploads(BUCKET)).toEqual([]);
    await expect(oss().completeMultipartUpload('mp', uploadId, uploaded)).rejects.toMatchObject({
      status: 404,
      code: 'NoSuchUpload',
    });
  });

  it('ali-oss multipartUpload (parallel parts) round-trips', async () => {
    const bytes = randomBytes(5 * PART + 17);
    await oss().multipartUpload('managed', bytes, { partSize: PART, parallel: 3 });
    expect(md5Hex(server.object(BUCKET, 'managed')!.bytes)).toBe(md5Hex(bytes));
    expect(md5Hex((await oss().get('managed')).content)).toBe(md5Hex(bytes));
  });

  it('completion validates the part list: ETags, order, sizes', async () => {
    const { uploadId } = await oss().initMultipartUpload('mp');
    const one = await oss().uploadPart('mp', uploadId, 1, randomBytes(PART), 0, PART);
    const two = await oss().uploadPart('mp', uploadId, 2, randomBytes(10), 0, 10);
    const three = await oss().uploadPart('mp', uploadId, 3, randomBytes(10), 0, 10);
    const complete = (parts: { number: number; etag: string }[]) => oss().completeMultipartUpload('mp', uploadId, parts);
    await expect(complete([{ number: 1, etag: '"00000000000000000000000000000000"' }])).rejects.toMatchObject({
      status: 400,
      code: 'InvalidPart',
    });
    await expect(complete([{ number: 4, etag: one.etag }])).rejects.toMatchObject({ code: 'InvalidPart' });
    await expect(
      complete([
        { number: 1, etag: one.etag },
        { number: 2, etag: two.etag },
        { number: 3, etag: three.etag },
      ]),
    ).rejects.toMatchObject({ status: 400, code: 'EntityTooSmall' });
    await expect(oss().uploadPart('mp', uploadId, 10_001, randomBytes(1), 0, 1)).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
    await complete([
      { number: 1, etag: one.etag },
      { number: 3, etag: three.etag },
    ]);
    expect(server.object(BUCKET, 'mp')?.bytes.length).toBe(PART + 10);
  });

  it('refuses parts out of order (InvalidPartOrder), sent as raw XML', async () => {
    const { uploadId } = await oss().initMultipartUpload('mp');
    const one = await oss().uploadPart('mp', uploadId, 1, randomBytes(PART), 0, PART);
    const two = await oss().uploadPart('mp', uploadId, 2, randomBytes(PART), 0, PART);
    // ali-oss sorts the parts itself; its lower-level request puts them in the order given.
    const part = (number: number, etag: string) => `<Part><PartNumber>${number}</PartNumber><ETag>${etag}</ETag></Part>`;
    const xml = `<CompleteMultipartUpload>${part(2, two.etag)}${part(1, one.etag)}</CompleteMultipartUpload>`;
    const request = oss() as unknown as {
      request(params: object): Promise<unknown>;
      _objectRequestParams(...a: unknown[]): object;
    };
    const params = {
      ...request._objectRequestParams('POST', 'mp', { subres: { uploadId } }),
      content: Buffer.from(xml),
      mime: 'xml',
      successStatuses: [200],
    };
    await expect(request.request(params)).rejects.toMatchObject({ status: 400, code: 'InvalidPartOrder' });
  });

  it('x-oss-forbid-overwrite applies when the upload completes', async () => {
    const forbid = { headers: { 'x-oss-forbid-overwrite': 'true' } };
    const { uploadId } = await oss().initMultipartUpload('mp', forbid);
    const part = await oss().uploadPart('mp', uploadId, 1, randomBytes(10), 0, 10);
    await oss().put('mp', Buffer.from('got there first'));
    await expect(oss().completeMultipartUpload('mp', uploadId, [{ number: 1, etag: part.etag }], forbid)).rejects.toMatchObject({
      status: 409,
      code: 'FileAlreadyExists',
    });
    await expect(oss().initMultipartUpload('mp', forbid)).rejects.toMatchObject({ code: 'FileAlreadyExists' });
    expect(server.object(BUCKET, 'mp')?.bytes.toString()).toBe('got there first');
  });

  it('abort drops the upload and its parts', async () => {
    const { uploadId } = await oss().initMultipartUpload('mp');
    await oss().uploadPart('mp', uploadId, 1, randomBytes(10), 0, 10);
    expect(server.uploads(BUCKET)).toEqual([{ key: 'mp', uploadId, parts: 1 }]);
    const aborted = (await oss().abortMultipartUpload('mp', uploadId)) as unknown as { res: OSS.NormalSuccessResponse };
    expect(aborted.res.status).toBe(204);
    expect(server.uploads(BUCKET)).toEqual([]);
    await expect(oss().abortMultipartUpload('mp', uploadId)).rejects.toMatchObject({ status: 404, code: 'NoSuchUpload' });
  });
});

describe('buckets', () => {
  it('PutBucket and DeleteBucket', async () => {
    const oss = client({ bucket: 'made-by-test' });
    await oss.putBucket('made-by-test');
    await expect(oss.putBucket('made-by-test')).rejects.toMatchObject({ status: 409, code: 'BucketAlreadyExists' });
    await oss.put('x', Buffer.from('x'));
    await expect(oss.deleteBucket('made-by-test')).rejects.toMatchObject({ status: 409, code: 'BucketNotEmpty' });
    await oss.delete('x');
    await oss.deleteBucket('made-by-test');
    await expect(oss.get('x')).rejects.toMatchObject({ code: 'NoSuchBucket' });
  });
});

describe('faults', () => {
  const oss = () => client();
  beforeEach(async () => {
    server.faults.clear();
    await emptyBucket(oss());
  });

  it('failNext answers 503 ServiceUnavailable for the next requests, then recovers', async () => {
    server.faults.failNext(2);
    await expect(oss().put('f', Buffer.from('x'))).rejects.toMatchObject({ status: 503, code: 'ServiceUnavailable' });
    await expect(oss().head('f')).rejects.toMatchObject({ status: 503, code: 'ServiceUnavailable' });
    await oss().put('f', Buffer.from('x'));
    expect(server.faults.pending).toBe(0);
  });

  it('rules can target operations; a reset drops the connection', async () => {
    server.faults.add({ fault: { kind: 'reset' }, operations: ['GetObject'] });
    await oss().put('f', Buffer.from('x'));
    await expect(oss().get('f')).rejects.toMatchObject({ status: -1 });
    expect(lastRequest()).toMatchObject({ operation: 'GetObject', status: 0 });
    expect(String((await oss().get('f')).content)).toBe('x');
  });

  it('a delay holds the answer back (ali-oss times out)', async () => {
    server.faults.add({ fault: { kind: 'delay', ms: 500 } });
    await expect(oss().get('f', { timeout: 100 })).rejects.toMatchObject({ name: 'ResponseTimeoutError' });
  });

  it('truncate and flip-byte store other bytes than sent and report their checksums', async () => {
    const bytes = randomBytes(250 * 1024);
    server.faults.add({ fault: { kind: 'truncate', keep: 600 } });
    const truncated = await oss().put('t', bytes);
    expect(headersOf(truncated)['x-oss-hash-crc64ecma']).toBe(crc64(bytes.subarray(0, 600)));
    expect(md5Hex(server.object(BUCKET, 't')!.bytes)).toBe(md5Hex(bytes.subarray(0, 600)));

    server.faults.add({ fault: { kind: 'flip-byte' }, operations: ['CompleteMultipartUpload'] });
    await oss().put('untouched', bytes);
    await oss().multipartUpload('flipped', bytes, { partSize: 100 * 1024 });
    const stored = server.object(BUCKET, 'flipped')!.bytes;
    expect(stored.length).toBe(bytes.length);
    expect(stored.equals(bytes)).toBe(false);
    expect(server.object(BUCKET, 'flipped')!.crc64).toBe(crc64(stored));
    expect(server.object(BUCKET, 'untouched')!.bytes.equals(bytes)).toBe(true);
  });

  it('omit-crc64 leaves the checksum header out', async () => {
    server.faults.add({ fault: { kind: 'omit-crc64' }, times: 2 });
    expect(headersOf(await oss().put('o', Buffer.from('x')))['x-oss-hash-crc64ecma']).toBeUndefined();
    expect(headersOf(await oss().head('o'))['x-oss-hash-crc64ecma']).toBeUndefined();
    expect(headersOf(await oss().head('o'))['x-oss-hash-crc64ecma']).toBe(crc64(Buffer.from('x')));
  });

  it('corruptObject is bit rot: the bytes change, the recorded checksums do not', async () => {
    const bytes = randomBytes(100);
    await oss().put('rot', bytes);
    server.corruptObject(BUCKET, 'rot', 'flip-byte');
    const got = await oss().get('rot');
    expect(got.content.equals(bytes)).toBe(false);
    expect(headersOf(got)['x-oss-hash-crc64ecma']).toBe(crc64(bytes));
  });
});

describe('read faults', () => {
  const oss = () => client();
  beforeEach(() => server.faults.clear());

  it('ignore-range answers 200 with the whole object', async () => {
    await oss().put('r', Buffer.from('0123456789'));
    server.faults.add({ fault: { kind: 'ignore-range' } });
    const result = await oss().getStream('r', { headers: { Range: 'bytes=2-4' } });
    expect(result.res.status).toBe(200);
    expect((await buffer(result.stream as Readable)).toString()).toBe('0123456789');
  });

  it('cut-response drops the connection part-way through the body', async () => {
    await oss().put('r', randomBytes(100_000));
    server.faults.add({ fault: { kind: 'cut-response', after: 1000 } });
    const result = await oss().getStream('r');
    expect(headersOf(result)['content-length']).toBe('100000');
    await expect(buffer(result.stream as Readable)).rejects.toMatchObject({ code: 'ECONNRESET' });
  });
});

describe('archive storage classes', () => {
  const oss = () => client();
  const MINUTE = 60_000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;
  beforeEach(() => emptyBucket(oss()));
  /** RestoreObject through ali-oss, which passes the options on as the request's XML. */
  const restore = (key: string, options: { type?: string; Days?: number; JobParameters?: string } = {}) =>
    oss().restore(key, options as Parameters<OSS['restore']>[1]) as unknown as Promise<{ res: OSS.NormalSuccessResponse }>;
  const restoreHeader = async (key: string) => headersOf(await oss().head(key))['x-oss-restore'];

  it('an Archive object is readable only between a completed restore and its expiry', async () => {
    const bytes = randomBytes(5000);
    await oss().put('frozen', bytes, { headers: { 'x-oss-storage-class': 'Archive' } });
    await expect(oss().get('frozen')).rejects.toMatchObject({ status: 403, code: 'InvalidObjectState' });
    expect(await restoreHeader('frozen')).toBeUndefined();

    expect((await restore('frozen', { Days: 2 })).res.status).toBe(202);
    expect(lastRequest()).toMatchObject({ operation: 'RestoreObject', status: 202 });
    expect(await restoreHeader('frozen')).toBe('ongoing-request="true"');
    await expect(oss().get('frozen')).rejects.toMatchObject({ status: 403, code: 'InvalidObjectState' });
    await expect(restore('frozen', { Days: 2 })).rejects.toMatchObject({ status: 409, code: 'RestoreAlreadyInProgress' });

    server.clock.advance(MINUTE);
    const { readyAt, expiresAt } = server.object(BUCKET, 'frozen')!.restore!;
    expect(expiresAt.getTime() - readyAt.getTime()).toBe(2 * DAY);
    expect(await restoreHeader('frozen')).toBe(`ongoing-request="false", expiry-date="${expiresAt.toUTCString()}"`);
    expect(md5Hex((await oss().get('frozen')).content)).toBe(md5Hex(bytes));
    const [listed] = (await oss().listV2({ prefix: 'frozen' }, {})).objects as unknown as {
      storageClass: string;
      restoreInfo: { ongoingRequest: boolean; expiryDate: Date };
    }[];
    expect(listed).toMatchObject({ storageClass: 'Archive', restoreInfo: { ongoingRequest: false, expiryDate: new Date(expiresAt.toUTCString()) } });

    // A restore of a restored object answers 200 (ali-oss expects only 202) and extends its life.
    server.clock.advance(DAY);
    await expect(restore('frozen', { Days: 2 })).rejects.toMatchObject({ status: 200 });
    const extended = server.object(BUCKET, 'frozen')!.restore!.expiresAt;
    expect(extended.getTime() - server.clock.now().getTime()).toBeGreaterThan(2 * DAY - MINUTE);
    expect(extended.getTime()).toBeGreaterThan(expiresAt.getTime());

    server.clock.advance(2 * DAY);
    await expect(oss().get('frozen')).rejects.toMatchObject({ status: 403, code: 'InvalidObjectState' });
    expect(await restoreHeader('frozen')).toBeUndefined();
  });

  it('Cold Archive restores take the time of their priority, which can be raised but not lowered', async () => {
    await oss().put('cold', Buffer.from('cold bytes'), { headers: { 'x-oss-storage-class': 'ColdArchive' } });
    await restore('cold', { type: 'ColdArchive', JobParameters: 'Bulk', Days: 30 });
    expect(server.object(BUCKET, 'cold')!.restore).toMatchObject({ tier: 'Bulk' });
    await expect(restore('cold', { type: 'ColdArchive', JobParameters: 'Bulk' })).rejects.toMatchObject({
      status: 409,
      code: 'RestoreAlreadyInProgress',
    });
    server.clock.advance(30 * MINUTE);
    expect((await restore('cold', { type: 'ColdArchive', JobParameters: 'Expedited' })).res.status).toBe(202);
    await expect(restore('cold', { type: 'ColdArchive', JobParameters: 'Standard' })).rejects.toMatchObject({
      status: 400,
      code: 'InvalidArgument',
    });
    server.clock.advance(HOUR - MINUTE);
    expect(await restoreHeader('cold')).toBe('ongoing-request="true"');
    server.clock.advance(MINUTE);
    expect(String((await oss().get('cold')).content)).toBe('cold bytes');
    const { readyAt, expiresAt } = server.object(BUCKET, 'cold')!.restore!;
    expect(expiresAt.getTime() - readyAt.getTime()).toBe(30 * DAY);
  });

  it('refuses restores of hot objects, bad Days and bad priorities', async () => {
    await oss().put('hot', Buffer.from('x'), { headers: { 'x-oss-storage-class': 'IA' } });
    await expect(restore('hot')).rejects.toMatchObject({ status: 400, code: 'OperationNotSupported' });
    await oss().put('archive', Buffer.from('x'), { headers: { 'x-oss-storage-class': 'Archive' } });
    await expect(restore('archive', { Days: 8 })).rejects.toMatchObject({ status: 400, code: 'InvalidArgument' });
    await oss().put('deep', Buffer.from('x'), { headers: { 'x-oss-storage-class': 'DeepColdArchive' } });
    await expect(restore('deep', { type: 'DeepColdArchive', JobParameters: 'Bulk' })).rejects.toMatchObject({
      code: 'InvalidArgument',
    });
    await expect(restore('deep', { type: 'DeepColdArchive', Days: 366 })).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(restore('absent')).rejects.toMatchObject({ status: 404, code: 'NoSuchKey' });
    expect(server.object(BUCKET, 'deep')!.restore).toBeUndefined();
  });

  it('CopyObject onto the same key changes the storage class and keeps bytes, ETag, CRC-64 and metadata', async () => {
    const bytes = randomBytes(3000);
    await oss().put('tiered', bytes, { headers: { 'x-oss-meta-note': 'kept', 'x-oss-storage-class': 'Standard' } });
    const before = server.object(BUCKET, 'tiered')!;
    const copied = await oss().copy('tiered', 'tiered', {
      headers: { 'x-oss-storage-class': 'Archive', 'x-oss-metadata-directive': 'COPY' },
    });
    expect(lastRequest()).toMatchObject({ operation: 'CopyObject', status: 200 });
    expect(copied.data).toMatchObject({ etag: before.etag });
    expect(headersOf(copied)['x-oss-hash-crc64ecma']).toBe(crc64(bytes));
    expect(server.object(BUCKET, 'tiered')).toMatchObject({
      storageClass: 'Archive',
      etag: before.etag,
      crc64: before.crc64,
      meta: { 'x-oss-meta-note': 'kept' },
    });
    expect(headersOf(await oss().head('tiered'))).toMatchObject({ 'x-oss-storage-class': 'Archive', 'x-oss-hash-crc64ecma': crc64(bytes) });

    // A frozen source cannot be copied; a restored one can, and the copy is not restored.
    await expect(oss().copy('tiered', 'tiered', { headers: { 'x-oss-storage-class': 'Standard' } })).rejects.toMatchObject({
      status: 403,
      code: 'InvalidObjectState',
    });
    await restore('tiered');
    server.clock.advance(MINUTE);
    await oss().copy('thawed-copy', 'tiered', { headers: { 'x-oss-storage-class': 'ColdArchive' } });
    expect(server.object(BUCKET, 'thawed-copy')).toMatchObject({ storageClass: 'ColdArchive', restore: undefined });
    await oss().copy('tiered', 'tiered', { meta: { note: 'replaced' }, headers: {} } as unknown as OSS.CopyObjectOptions);
    expect(server.object(BUCKET, 'tiered')).toMatchObject({ storageClass: 'Standard', meta: { 'x-oss-meta-note': 'replaced' } });
    expect(md5Hex(server.object(BUCKET, 'tiered')!.bytes)).toBe(md5Hex(bytes));
  });

  it('CopyObject: a missing source is NoSuchKey; x-oss-copy-source-if-match; a flipped bit shows in the honest CRC-64', async () => {
    await expect(oss().copy('to', 'absent')).rejects.toMatchObject({ status: 404, code: 'NoSuchKey' });
    const bytes = randomBytes(100);
    await oss().put('src', bytes);
    const { etag } = server.object(BUCKET, 'src')!;
    await expect(oss().copy('src', 'src', { headers: { 'x-oss-storage-class': 'IA', 'x-oss-copy-source-if-match': '"0123"' } })).rejects.toMatchObject({
      status: 412,
      code: 'PreconditionFailed',
    });
    await oss().copy('src', 'src', { headers: { 'x-oss-storage-class': 'IA', 'x-oss-copy-source-if-match': etag } });
    expect(server.object(BUCKET, 'src')).toMatchObject({ storageClass: 'IA' });
    server.faults.add({ fault: { kind: 'flip-byte' } });
    const copied = await oss().copy('src', 'src', { headers: { 'x-oss-storage-class': 'Archive' } });
    expect(headersOf(copied)['x-oss-hash-crc64ecma']).not.toBe(crc64(bytes));
    expect(server.object(BUCKET, 'src')!.crc64).toBe(crc64(server.object(BUCKET, 'src')!.bytes));
  });
});

describe('bucket lifecycle (PutBucketLifecycle, GetBucketLifecycle, DeleteBucketLifecycle)', () => {
  /** ali-oss's lifecycle calls and its signed raw request, which @types/ali-oss does not declare. */
  interface LifecycleClient {
    getBucketLifecycle(bucket: string): Promise<{ rules: Array<Record<string, unknown>> | null }>;
    putBucketLifecycle(bucket: string, rules: object[]): Promise<unknown>;
    deleteBucketLifecycle(bucket: string): Promise<unknown>;
    _bucketRequestParams(method: string, bucket: string, subresource: string): Record<string, unknown>;
    request(params: Record<string, unknown>): Promise<{ status: number }>;
  }
  const oss = () => client() as unknown as LifecycleClient;
  /** A signed PutBucketLifecycle with `xml` as its body, as ali-oss would send it (its own checks skipped). */
  const putRaw = (xml: string, headers: Record<string, string> = {}) =>
    oss().request({ ...oss()._bucketRequestParams('PUT', BUCKET, 'lifecycle'), content: xml, mime: 'xml', headers, successStatuses: [200] });
  const rule = (inner: string) => `<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration><Rule>${inner}</Rule></LifecycleConfiguration>`;

  it('stores a configuration, returns it, replaces it whole on the next put, and deletes it (then NoSuchLifecycle)', async () => {
    await expect(oss().getBucketLifecycle(BUCKET)).rejects.toMatchObject({ status: 404, code: 'NoSuchLifecycle' });
    await oss().putBucketLifecycle(BUCKET, [
      { id: 'cold', prefix: 'full/', status: 'Enabled', transition: { days: 30, storageClass: 'ColdArchive' } },
      { id: 'gone', prefix: 'logs/', status: 'Disabled', expiration: { days: 7 } },
    ]);
    expect((await oss().getBucketLifecycle(BUCKET)).rules).toEqual([
      { id: 'cold', prefix: 'full/', status: 'Enabled', transition: { days: '30', storageClass: 'ColdArchive' } },
      { id: 'gone', prefix: 'logs/', status: 'Disabled', expiration: { days: '7' } },
    ]);
    expect(lastRequest().operation).toBe('GetBucketLifecycle');
    await oss().putBucketLifecycle(BUCKET, [{ id: 'only', prefix: '', status: 'Enabled', transition: { days: 1, storageClass: 'Archive' } }]);
    expect((await oss().getBucketLifecycle(BUCKET)).rules).toEqual([
      { id: 'only', prefix: '', status: 'Enabled', transition: { days: '1', storageClass: 'Archive' } },
    ]);
    await oss().deleteBucketLifecycle(BUCKET);
    expect(lastRequest()).toMatchObject({ operation: 'DeleteBucketLifecycle', status: 204 });
    await expect(oss().getBucketLifecycle(BUCKET)).rejects.toMatchObject({ code: 'NoSuchLifecycle' });
  });

  it('makes up an ID for a rule without one', async () => {
    await putRaw(rule('<Prefix>a/</Prefix><Status>Enabled</Status><Expiration><Days>3</Days></Expiration>'));
    const [stored] = (await oss().getBucketLifecycle(BUCKET)).rules!;
    expect(stored).toMatchObject({ prefix: 'a/', id: expect.stringMatching(/^rule-[0-9a-f]{16}$/) });
    await oss().deleteBucketLifecycle(BUCKET);
  });

  it.each([
    ['no rule', '<?xml version="1.0"?><LifecycleConfiguration></LifecycleConfiguration>', 'MalformedXML'],
    ['another root', '<?xml version="1.0"?><Lifecycle><Rule/></Lifecycle>', 'MalformedXML'],
    ['not XML', '<LifecycleConfiguration><Rule>', 'MalformedXML'],
    ['no action', rule('<ID>x</ID><Prefix>a/</Prefix><Status>Enabled</Status>'), 'MalformedXML'],
    ['no prefix', rule('<ID>x</ID><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>'), 'MalformedXML'],
    ['a bad status', rule('<ID>x</ID><Prefix>a/</Prefix><Status>On</Status><Expiration><Days>1</Days></Expiration>'), 'InvalidArgument'],
    [
      'a transition to Standard',
      rule('<ID>x</ID><Prefix>a/</Prefix><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>Standard</StorageClass></Transition>'),
      'InvalidArgument',
    ],
    [
      'zero days',
      rule('<ID>x</ID><Prefix>a/</Prefix><Status>Enabled</Status><Transition><Days>0</Days><StorageClass>Archive</StorageClass></Transition>'),
      'InvalidArgument',
    ],
    [
      'a duplicate ID',
      '<LifecycleConfiguration>' +
        '<Rule><ID>x</ID><Prefix>a/</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>'.repeat(2) +
        '</LifecycleConfiguration>',
      'InvalidArgument',
    ],
  ])('refuses %s (%s) and keeps what it had', async (_what, xml, code) => {
    await oss().putBucketLifecycle(BUCKET, [{ id: 'kept', prefix: 'k/', status: 'Enabled', expiration: { days: 9 } }]);
    await expect(putRaw(xml)).rejects.toMatchObject({ status: 400, code });
    expect((await oss().getBucketLifecycle(BUCKET)).rules!.map((r) => r.id)).toEqual(['kept']);
    await oss().deleteBucketLifecycle(BUCKET);
  });

  it('checks Content-MD5 when sent', async () => {
    const xml = rule('<ID>x</ID><Prefix>a/</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration>');
    await expect(putRaw(xml, { 'Content-MD5': createHash('md5').update('other').digest('base64') })).rejects.toMatchObject({ code: 'InvalidDigest' });
    await putRaw(xml, { 'Content-MD5': createHash('md5').update(xml).digest('base64') });
    expect((await oss().getBucketLifecycle(BUCKET)).rules!.map((r) => r.id)).toEqual(['x']);
    await oss().deleteBucketLifecycle(BUCKET);
  });
});
