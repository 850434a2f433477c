// What AWS S3 does and s3rver 3.7 does not, added over s3rver's own store for the launcher
// (scripts/s3rver.mjs). Each feature can be left off, so that the adapter's fallbacks stay tested.
//
// Flexible checksums (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html):
// - PutObject and UploadPart check the body against `x-amz-checksum-sha256|crc32|crc64nvme` (one at
//   most) and `Content-MD5`, answering 400 BadDigest on a mismatch; the checksum is stored with the
//   object. An object uploaded without one gets a full-object CRC64NVME, as AWS has done since 2024-12.
// - CreateMultipartUpload takes `x-amz-checksum-algorithm` and `-type`: SHA256 is composite only,
//   CRC64NVME full-object only, CRC32 either (composite by default). Each part must then carry its
//   checksum. CompleteMultipartUpload checks the part checksums it lists against the stored parts
//   (InvalidPart) and a full-object checksum it sends against the whole object (BadDigest); the object
//   gets the composite checksum (the checksum of the concatenated binary part checksums, then
//   `-<parts>`) or the full-object one. Without an algorithm, CRC64NVME full-object, as for PutObject.
// - HeadObject and GetObject return the stored checksum and `x-amz-checksum-type` only with
//   `x-amz-checksum-mode: ENABLED`, and never for a range.
// - Stored checksums are what was verified at upload: like AWS, a HeadObject does not re-read the bytes.
// Conditional writes (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-requests.html):
// - PutObject and CompleteMultipartUpload honour `If-None-Match: *` (412 PreconditionFailed when the
//   key exists) and `If-Match: <etag>` (412 when it differs, 404 NoSuchKey when there is no object);
//   HeadObject and GetObject honour `If-Match` (412). Writes and deletes of one key are serialised,
//   so a condition and the write it guards are atomic, as on AWS.
import { createHash } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { CRC64_NVME } from '@stowage/test-server-crc64';
import S3Object from 's3rver/lib/models/object.js';
import S3Error from 's3rver/lib/models/error.js';

/** The algorithms served, by their header suffix, with S3's name, digest and allowed multipart types. */
const ALGORITHMS = {
  sha256: { name: 'SHA256', digest: (data) => createHash('sha256').update(data).digest(), types: ['COMPOSITE'] },
  crc32: { name: 'CRC32', digest: crc32Digest, types: ['COMPOSITE', 'FULL_OBJECT'] },
  crc64nvme: { name: 'CRC64NVME', digest: crc64nvmeDigest, types: ['FULL_OBJECT'] },
};
const header = (algorithm) => `x-amz-checksum-${algorithm}`;
const UNSUPPORTED = ['crc32c', 'sha1'];

function crc32Digest(data) {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(data));
  return out;
}

/** The test servers' own CRC-64 (WebAssembly), independent of the adapter's. */
function crc64nvmeDigest(data) {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(CRC64_NVME.of(data));
  return out;
}

/** CRC-64/NVME's reflected polynomial. */
const CRC64NVME_POLY = 0x9a6c9329ac4bc9b5n;

/** A GF(2) 64×64 matrix (rows as BigInts) applied to a vector. */
function gf2Times(matrix, vector) {
  let sum = 0n;
  for (let row = 0; vector !== 0n; row++, vector >>= 1n) if (vector & 1n) sum ^= matrix[row];
  return sum;
}

const gf2Square = (matrix) => matrix.map((row) => gf2Times(matrix, row));

/**
 * The reflected CRC-64 of A‖B from crc(A), crc(B) and B's length in bytes (zlib's crc32_combine,
 * written with BigInts; independent of the adapter's own implementation).
 */
function crc64Combine(polynomial, first, second, secondLength) {
  let odd = [polynomial];
  for (let n = 1; n < 64; n++) odd.push(1n << BigInt(n - 1)); // one zero bit
  let even = gf2Square(odd); // two
  odd = gf2Square(even); // four
  for (let remaining = secondLength; remaining > 0; remaining = Math.floor(remaining / 2)) {
    even = gf2Square(odd); // the first time: one zero byte
    if (remaining % 2 === 1) first = gf2Times(even, first);
    [odd, even] = [even, odd];
  }
  return first ^ second;
}

const base64Of = async (algorithm, data) => Buffer.from(await ALGORITHMS[algorithm].digest(data)).toString('base64');

/** The base64 checksum of `data` under `algorithm` (`sha256`, `crc32`, `crc64nvme`). */
export const checksumOf = base64Of;

/** `serialised(bucket, key, fn)`: runs `fn` once earlier writes to the same key are done. */
export function createKeySerialiser() {
  const keyLocks = new Map();
  return async (bucket, key, fn) => {
    const id = `${bucket}/${key}`;
    const previous = keyLocks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => undefined);
    keyLocks.set(id, settled);
    try {
      return await run;
    } finally {
      if (keyLocks.get(id) === settled) keyLocks.delete(id);
    }
  };
}

/**
 * Installs the features on `server` (an unstarted S3rver), as middleware just before s3rver's router.
 * `features`: `{ checksums: boolean, conditionalWrites: boolean }`; `serialised` orders writes to
 * one key (see createKeySerialiser; shared with the archive behaviour).
 */
export function addAwsBehaviour(server, features, serialised) {
  if (!features.checksums && !features.conditionalWrites) return;
  const { store } = server;
  if (features.checksums) {
    // s3rver keeps these request headers in the object's metadata and returns them as response headers.
    S3Object.ALLOWED_METADATA.push(...Object.keys(ALGORITHMS).map(header), 'x-amz-checksum-type');
  }
  const uploadFolder = (bucket, uploadId) => join(store.getResourcePath(bucket, undefined, 'uploads'), String(uploadId));

  async function checkConditions(ctx, bucket, key) {
    if (!features.conditionalWrites) return;
    const noneMatch = ctx.get('if-none-match');
    const match = ctx.get('if-match');
    if (!noneMatch && !match) return;
    const metadata = (await store.existsObject(bucket, key)) ? await store.getMetadata(bucket, key) : undefined;
    if (noneMatch) {
      if (noneMatch !== '*')
        throw new S3Error('NotImplemented', 'A header you provided implies functionality that is not implemented', { Header: 'If-None-Match' });
      if (metadata) throw preconditionFailed('If-None-Match');
    }
    if (match) {
      if (!metadata) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
      if (match !== '*' && unquote(match) !== unquote(metadata.etag)) throw preconditionFailed('If-Match');
    }
  }

  /**
   * Reads a request body whole and puts it back as a stream for s3rver; an `aws-chunked` body (what
   * the SDK streams with a trailing checksum) is decoded, its trailer headers added to the request's.
   */
  async function takeBody(ctx) {
    let body = Buffer.concat(await ctx.req.toArray());
    const encodings = ctx
      .get('content-encoding')
      .split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    if (encodings.includes('aws-chunked') || ctx.get('x-amz-content-sha256').startsWith('STREAMING-')) {
      body = decodeAwsChunked(body, ctx.headers);
      const others = encodings.filter((name) => name !== 'aws-chunked');
      if (others.length > 0) ctx.headers['content-encoding'] = others.join(',');
      else delete ctx.headers['content-encoding'];
    }
    ctx.req = Readable.from([body], { objectMode: false });
    return body;
  }

  /** The checksums sent with a body, checked against it; `{ algorithm, value }` of the one sent, if any. */
  async function checkBody(ctx, body) {
    const md5 = ctx.get('content-md5');
    if (md5 && md5 !== createHash('md5').update(body).digest('base64')) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    for (const name of UNSUPPORTED) {
      if (ctx.get(header(name))) throw new S3Error('NotImplemented', `this test server does not support ${name} checksums`, { Header: header(name) });
    }
    const sent = Object.keys(ALGORITHMS).filter((algorithm) => ctx.get(header(algorithm)));
    if (sent.length > 1) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
    const [algorithm] = sent;
    if (algorithm === undefined) return undefined;
    const value = ctx.get(header(algorithm));
    if (value !== (await base64Of(algorithm, body))) {
      throw new S3Error('BadDigest', `The ${ALGORITHMS[algorithm].name} you specified did not match the calculated checksum.`);
    }
    return { algorithm, value };
  }

  async function putObject(ctx, bucket, key, next) {
    const body = features.checksums ? await takeBody(ctx) : undefined;
    const sent = body && (await checkBody(ctx, body));
    await serialised(bucket, key, async () => {
      await checkConditions(ctx, bucket, key);
      if (body) {
        const checksum = sent ?? { algorithm: 'crc64nvme', value: await base64Of('crc64nvme', body) };
        for (const algorithm of Object.keys(ALGORITHMS)) delete ctx.headers[header(algorithm)];
        ctx.headers[header(checksum.algorithm)] = checksum.value; // stored as metadata by s3rver
        ctx.headers['x-amz-checksum-type'] = 'FULL_OBJECT';
        ctx.set(header(checksum.algorithm), checksum.value);
        ctx.set('x-amz-checksum-type', 'FULL_OBJECT');
      }
      await next();
    });
  }

  async function createMultipartUpload(ctx, bucket, _key, next) {
    const requested = ctx.get('x-amz-checksum-algorithm').toLowerCase();
    if (requested && !(requested in ALGORITHMS)) {
      throw new S3Error('NotImplemented', `this test server does not support ${requested} checksums`, { Header: 'x-amz-checksum-algorithm' });
    }
    const algorithm = requested || 'crc64nvme';
    const type = ctx.get('x-amz-checksum-type').toUpperCase() || ALGORITHMS[algorithm].types[0];
    if (!ALGORITHMS[algorithm].types.includes(type)) {
      throw new S3Error('InvalidRequest', `The ${type} checksum type cannot be used with the ${ALGORITHMS[algorithm].name} checksum algorithm.`);
    }
    delete ctx.headers['x-amz-checksum-type']; // the object's type is set when the upload completes
    await next();
    const uploadId = ctx.body?.InitiateMultipartUploadResult?.UploadId;
    await writeFile(join(uploadFolder(bucket, uploadId), 'checksum.json'), JSON.stringify({ algorithm, type, explicit: requested !== '' }));
    ctx.set('x-amz-checksum-algorithm', ALGORITHMS[algorithm].name);
    ctx.set('x-amz-checksum-type', type);
  }

  async function uploadSettings(bucket, uploadId) {
    const text = await readFile(join(uploadFolder(bucket, uploadId), 'checksum.json'), 'utf8').catch(() => undefined);
    if (text === undefined) throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: uploadId });
    return JSON.parse(text);
  }

  async function uploadPart(ctx, bucket, _key, next) {
    const { uploadId, partNumber } = ctx.query;
    const settings = await uploadSettings(bucket, uploadId);
    const body = await takeBody(ctx);
    const sent = await checkBody(ctx, body);
    if (settings.explicit && sent?.algorithm !== settings.algorithm) {
      throw new S3Error(
        'InvalidRequest',
        `The upload was created using a ${ALGORITHMS[settings.algorithm].name} checksum. The part ${partNumber} must carry one.`,
      );
    }
    await next();
    // The checksum sent was just checked against the body; compute the upload's only when it differs.
    const value = sent?.algorithm === settings.algorithm ? sent.value : await base64Of(settings.algorithm, body);
    await writeFile(join(uploadFolder(bucket, uploadId), `${Number(partNumber)}.checksum`), value);
    if (sent) ctx.set(header(sent.algorithm), sent.value);
  }

  async function completeMultipartUpload(ctx, bucket, key, next) {
    /** Completes the upload if its conditions hold, then runs `after` before the next write to the key. */
    const conditionalWrite = (after = async () => {}) =>
      serialised(bucket, key, async () => {
        await checkConditions(ctx, bucket, key);
        await next();
        await after();
      });
    if (!features.checksums) return conditionalWrite();
    const { uploadId } = ctx.query;
    const settings = await uploadSettings(bucket, uploadId);
    const { algorithm, type } = settings;
    const xml = (await takeBody(ctx)).toString('utf8');
    const element = `Checksum${ALGORITHMS[algorithm].name}`;
    const parts = [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map(([, part]) => ({
      number: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(part)?.[1]),
      checksum: new RegExp(`<${element}>([^<]*)</${element}>`).exec(part)?.[1],
    }));
    const folder = uploadFolder(bucket, uploadId);
    const stored = [];
    for (const part of parts) {
      const value = await readFile(join(folder, `${part.number}.checksum`), 'utf8').catch(() => undefined);
      const missing = type === 'COMPOSITE' && settings.explicit && part.checksum === undefined;
      if (value === undefined || missing || (part.checksum !== undefined && part.checksum !== value)) {
        throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found or its checksum did not match.', { PartNumber: part.number });
      }
      stored.push(value);
    }
    let checksum;
    if (type === 'COMPOSITE') {
      const joined = Buffer.concat(stored.map((value) => Buffer.from(value, 'base64')));
      checksum = `${await base64Of(algorithm, joined)}-${stored.length}`;
    } else if (algorithm === 'crc64nvme') {
      // As AWS does: the full-object CRC from the parts' (checked at upload) and their sizes, without re-reading them.
      const ordered = [...parts].sort((a, b) => a.number - b.number);
      let crc = 0n;
      for (const part of ordered) {
        const { size } = await stat(join(folder, String(part.number)));
        crc = crc64Combine(CRC64NVME_POLY, crc, Buffer.from(stored[parts.indexOf(part)], 'base64').readBigUInt64BE(), size);
      }
      const out = Buffer.alloc(8);
      out.writeBigUInt64BE(crc);
      checksum = out.toString('base64');
      const sent = ctx.get(header(algorithm));
      if (sent && sent !== checksum) {
        throw new S3Error('BadDigest', `The ${ALGORITHMS[algorithm].name} you specified did not match the calculated checksum.`);
      }
    } else {
      const ordered = [...parts].sort((a, b) => a.number - b.number);
      const whole = Buffer.concat(await Promise.all(ordered.map((part) => readFile(join(folder, String(part.number))))));
      checksum = await base64Of(algorithm, whole);
      const sent = ctx.get(header(algorithm));
      if (sent && sent !== checksum) {
        throw new S3Error('BadDigest', `The ${ALGORITHMS[algorithm].name} you specified did not match the calculated checksum.`);
      }
    }
    await conditionalWrite(async () => {
      const path = store.getResourcePath(bucket, key, 'metadata.json');
      const metadata = JSON.parse(await readFile(path, 'utf8'));
      for (const other of Object.keys(ALGORITHMS)) delete metadata[header(other)];
      Object.assign(metadata, { [header(algorithm)]: checksum, 'x-amz-checksum-type': type });
      await writeFile(path, JSON.stringify(metadata, null, 2));
    });
    Object.assign(ctx.body.CompleteMultipartUploadResult, { [element]: checksum, ChecksumType: type });
  }

  async function readObject(ctx, bucket, key, next) {
    if (features.conditionalWrites && ctx.get('if-match') && (await store.existsObject(bucket, key))) {
      const { etag } = await store.getMetadata(bucket, key);
      const match = ctx.get('if-match');
      if (match !== '*' && unquote(match) !== unquote(etag)) throw preconditionFailed('If-Match');
    }
    await next();
    const reported = features.checksums && ctx.get('x-amz-checksum-mode').toUpperCase() === 'ENABLED' && !ctx.get('range');
    if (!reported) {
      for (const algorithm of Object.keys(ALGORITHMS)) ctx.remove(header(algorithm));
      ctx.remove('x-amz-checksum-type');
    }
  }

  /** The handler for a request, or undefined when s3rver's own behaviour is the right one. */
  function handlerFor(ctx, bucket, key) {
    if (!bucket || !key) return undefined;
    const { query, method } = ctx;
    const params = Object.keys(query).filter((name) => name !== 'x-id'); // the SDK names its operation there
    const copy = 'x-amz-copy-source' in ctx.headers;
    if (method === 'PUT' && !copy && params.length === 0) return putObject;
    if (method === 'POST' && 'uploadId' in query) return completeMultipartUpload;
    if (method === 'DELETE' && params.length === 0) return (_ctx, b, k, next) => serialised(b, k, next);
    if ((method === 'GET' || method === 'HEAD') && params.length === 0) return readObject;
    if (!features.checksums) return undefined;
    if (method === 'POST' && 'uploads' in query) return createMultipartUpload;
    if (method === 'PUT' && !copy && 'uploadId' in query) return uploadPart;
    return undefined;
  }

  return { handlerFor };
}

/**
 * The payload of an aws-chunked body (`<hex size>[;chunk-signature=…]\r\n<bytes>\r\n` … a zero-size
 * chunk, then trailer lines `name:value\r\n` and an empty line), its trailers set in `headers`.
 */
function decodeAwsChunked(framed, headers) {
  const chunks = [];
  let at = 0;
  const line = () => {
    const end = framed.indexOf('\r\n', at);
    if (end < 0) throw new S3Error('IncompleteBody', 'The aws-chunked body ended early.');
    const text = framed.subarray(at, end).toString('latin1');
    at = end + 2;
    return text;
  };
  for (;;) {
    const size = Number.parseInt(line().split(';')[0], 16);
    if (!Number.isSafeInteger(size) || at + size > framed.length) throw new S3Error('IncompleteBody', 'The aws-chunked body is malformed.');
    if (size === 0) break;
    chunks.push(framed.subarray(at, at + size));
    at += size + 2;
  }
  for (let trailer = line(); trailer !== '' && at <= framed.length; trailer = at < framed.length ? line() : '') {
    const colon = trailer.indexOf(':');
    if (colon > 0) headers[trailer.slice(0, colon).trim().toLowerCase()] = trailer.slice(colon + 1).trim();
  }
  const payload = Buffer.concat(chunks);
  const declared = headers['x-amz-decoded-content-length'];
  if (declared !== undefined && Number(declared) !== payload.length)
    throw new S3Error('IncompleteBody', 'The aws-chunked body does not have its declared length.');
  return payload;
}

function unquote(etag) {
  return String(etag).replace(/"/g, '');
}

function preconditionFailed(condition) {
  return new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: condition });
}
