#!/usr/bin/env node
// Starts s3rver (the S3 emulator the tests run against) on 127.0.0.1 and a free port, and prints
// one line `{"port":N}` on stdout once it listens. Runs until SIGTERM/SIGINT or until its stdin
// closes, so it never outlives the process that spawned it.
//
//   node --openssl-legacy-provider scripts/s3rver.mjs --directory DIR [--port N]
//        [--no-checksums] [--no-conditional-writes] [--request-log FILE] [--corrupt-copies]
//
// s3rver encrypts ListObjectsV2 continuation tokens with DES, which Node 17+ (OpenSSL 3) only
// offers with --openssl-legacy-provider: without it every paginated listing answers 500.
//
// s3rver 3.7 lacks two multipart operations (AbortMultipartUpload answers 405, ListMultipartUploads
// 501). This launcher adds both over s3rver's own upload folder, signature check included, so that
// the adapter's clean-up of failed multipart uploads is exercised for real. It also fixes two races
// of s3rver's file store (below) that made tests flaky.
//
// It has AWS's archive storage classes (GLACIER, DEEP_ARCHIVE: RestoreObject, `x-amz-restore`, copy
// to a new class, bucket lifecycle configuration; see archive-behaviour.mjs), with a thaw clock moved
// by `POST /_stowage/thaw-clock?advance=<ms>`. It also behaves as AWS documents for flexible
// checksums and conditional writes (see aws-behaviour.mjs); `--no-checksums` and `--no-conditional-writes` turn those off, leaving
// s3rver's own behaviour (no checksums, conditions ignored). `--request-log FILE` appends one JSON
// line per request: { method, path, status, bytesOut, range } (bytesOut: response body bytes sent).
// `--corrupt-copies` (a fault for tests) flips the first byte of every CopyObject's copy.
// `POST /_stowage/faults?cut-get-after=<bytes>&times=<n>` (a fault for tests): the next n (default 1)
// GetObject answers send their headers and the first <bytes> body bytes, then drop the connection.
import { createHash, randomUUID } from 'node:crypto';
import { appendFileSync, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import S3rver from 's3rver';
import authentication from 's3rver/lib/middleware/authentication.js';
import S3Error from 's3rver/lib/models/error.js';
import { addArchiveBehaviour } from './archive-behaviour.mjs';
import { addAwsBehaviour, checksumOf, createKeySerialiser } from './aws-behaviour.mjs';

const { values } = parseArgs({
  options: {
    directory: { type: 'string' },
    port: { type: 'string', default: '0' },
    'no-checksums': { type: 'boolean', default: false },
    'no-conditional-writes': { type: 'boolean', default: false },
    'request-log': { type: 'string' },
    'corrupt-copies': { type: 'boolean', default: false },
  },
});
if (!values.directory) {
  process.stderr.write('usage: s3rver.mjs --directory DIR [--port N]\n');
  process.exit(2);
}

const server = new S3rver({ address: '127.0.0.1', port: Number(values.port), directory: values.directory, silent: true });
const checkSignature = authentication();

// s3rver answers a PUT when its hashing stream has finished, which can be before its write stream
// has even opened the object file: a HeadObject or GetObject right after the PUT may then see no
// object, a short one, or (an overwrite) the previous one. Waiting for the file's size was not
// enough: under load the file was not there yet, and that wait failed the PUT with a 500
// InternalError. This launcher writes the object itself, beside it then renamed over it (an S3 PUT
// replaces an object at once), and answers once it is written.
const { store } = server;
store.putObject = async (object) => {
  const path = store.getResourcePath(object.bucket, object.key, 'object');
  await mkdir(dirname(path), { recursive: true });
  const md5 = createHash('md5');
  let size = 0;
  const content = Buffer.isBuffer(object.content) ? Readable.from([object.content]) : object.content;
  const counted = new Transform({
    transform(chunk, _encoding, callback) {
      md5.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  const temp = `${path}.${randomUUID()}.partial`; // not an object's name: never listed
  try {
    await pipeline(content, counted, createWriteStream(temp));
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  const hex = md5.digest('hex');
  await store.putMetadata(object.bucket, object.key, object.metadata, hex);
  return { size, md5: hex };
};
// DeleteObjects deletes its keys in parallel, and each deletion then removes its folder if empty:
// two of them racing for one folder made the request fail with 500. A folder that is already gone,
// or no longer empty, is fine.
const deleteObject = store.deleteObject.bind(store);
store.deleteObject = (bucket, key) =>
  deleteObject(bucket, key).catch((error) => {
    if (error.code !== 'ENOENT' && error.code !== 'ENOTEMPTY') throw error;
  });
// Completing a multipart upload: s3rver streamed every part through MD5 once more for the object's
// ETag. AWS gives a multipart object the MD5 of its parts' binary MD5s followed by `-<parts>`, and so
// does this launcher, from the MD5s s3rver kept of the parts on upload; the parts are joined as they are.
store.putObjectMultipart = async (bucket, uploadId, parts) => {
  const uploadDir = join(store.getResourcePath(bucket, undefined, 'uploads'), String(uploadId));
  const [key, metadata] = await Promise.all([readFile(join(uploadDir, 'key'), 'utf8'), readFile(join(uploadDir, 'metadata'), 'utf8').then(JSON.parse)]);
  const objectPath = store.getResourcePath(bucket, key, 'object');
  await mkdir(dirname(objectPath), { recursive: true });
  const ordered = [...parts].sort((a, b) => a.number - b.number);
  const partMd5s = [];
  let size = 0;
  const object = await open(objectPath, 'w');
  try {
    for (const part of ordered) {
      const partPath = join(uploadDir, String(part.number));
      const bytes = await readFile(partPath);
      await object.write(bytes);
      size += bytes.length;
      partMd5s.push(Buffer.from((await readFile(`${partPath}.md5`, 'utf8')).trim(), 'hex'));
    }
  } finally {
    await object.close();
  }
  const md5 = `${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${ordered.length}`;
  await store.putMetadata(bucket, key, metadata, md5);
  await rm(uploadDir, { recursive: true, force: true });
  return { md5, size };
};

/** The folder where s3rver keeps the multipart uploads of `bucket`, one sub-folder per upload id. */
const uploadsFolder = (ctx, bucket) => ctx.app.store.getResourcePath(bucket, undefined, 'uploads');

async function abortMultipartUpload(ctx, bucket) {
  const folder = join(uploadsFolder(ctx, bucket), String(ctx.query.uploadId));
  if (!(await stat(folder).catch(() => undefined))) {
    throw new S3Error('NoSuchUpload', 'The specified upload does not exist.', { UploadId: ctx.query.uploadId });
  }
  await rm(folder, { recursive: true, force: true });
  ctx.status = 204;
}

async function listMultipartUploads(ctx, bucket) {
  const folder = uploadsFolder(ctx, bucket);
  const prefix = String(ctx.query.prefix ?? '');
  const uploads = [];
  for (const uploadId of await readdir(folder).catch(() => [])) {
    const key = await readFile(join(folder, uploadId, 'key'), 'utf8').catch(() => undefined);
    if (key === undefined || !key.startsWith(prefix)) continue;
    const { birthtime } = await stat(join(folder, uploadId));
    uploads.push({ Key: key, UploadId: uploadId, Initiated: birthtime.toISOString(), StorageClass: 'STANDARD' });
  }
  ctx.body = {
    ListMultipartUploadsResult: {
      '@': { xmlns: 'http://s3.amazonaws.com/doc/2006-03-01/' },
      Bucket: bucket,
      Prefix: prefix,
      MaxUploads: 1000,
      IsTruncated: false,
      Upload: uploads,
    },
  };
}

const serialised = createKeySerialiser();
const aws = addAwsBehaviour(server, { checksums: !values['no-checksums'], conditionalWrites: !values['no-conditional-writes'] }, serialised);
const archive = addArchiveBehaviour(server, { serialised, checksumOf, corruptCopies: values['corrupt-copies'] });

/** One handler running `outer`, whose `next` runs `inner` (either may be missing). */
const nest = (outer, inner) => (outer && inner ? (ctx, bucket, key, next) => outer(ctx, bucket, key, () => inner(ctx, bucket, key, next)) : (outer ?? inner));

// Koa composes its middleware when the server starts listening: insert ours just before s3rver's
// router (the last middleware), after its logging, error handling and XML encoding. Requests are
// checked for a valid signature before anything of theirs is looked at.
server.middleware.splice(server.middleware.length - 1, 0, async (ctx, next) => {
  if (archive.control(ctx)) return;
  const [, bucket, ...keyParts] = ctx.path.split('/');
  const key = decodeURIComponent(keyParts.join('/'));
  const abort = ctx.method === 'DELETE' && bucket && key && 'uploadId' in ctx.query;
  const list = ctx.method === 'GET' && bucket && !key && 'uploads' in ctx.query;
  const handler = nest(archive.handlerFor(ctx, bucket, key), aws?.handlerFor(ctx, bucket, key));
  if (!abort && !list && !handler) return next();
  ctx.params = { bucket, key: key || undefined };
  await checkSignature(ctx, async () => {
    if (!(await ctx.app.store.getBucket(bucket))) {
      throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: bucket });
    }
    if (handler) return handler(ctx, bucket, key, next);
    await (abort ? abortMultipartUpload(ctx, bucket) : listMultipartUploads(ctx, bucket));
  });
});

/** GetObject answers still to cut: `after` body bytes each. */
const cuts = [];
server.middleware.unshift(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/_stowage/faults') {
    const after = Number(ctx.query['cut-get-after']);
    const times = Number(ctx.query.times ?? 1);
    if (!Number.isSafeInteger(after) || after < 0 || !Number.isSafeInteger(times) || times < 1) {
      ctx.status = 400;
      ctx.body = 'cut-get-after=<bytes>[&times=<n>] expected';
      return;
    }
    for (let i = 0; i < times; i++) cuts.push(after);
    ctx.status = 204;
    return;
  }
  const [, bucket, ...keyParts] = ctx.path.split('/');
  if (ctx.method !== 'GET' || !bucket || keyParts.join('/') === '' || cuts.length === 0) return next();
  const after = cuts.shift();
  const { res } = ctx;
  let sent = 0;
  const cut = (write) =>
    function (chunk, ...rest) {
      if (!chunk || typeof chunk === 'function' || res.destroyed) return res.destroyed ? false : write.call(this, chunk, ...rest);
      const bytes = Buffer.from(chunk);
      if (sent + bytes.length < after) {
        sent += bytes.length;
        return write.call(this, bytes, ...rest);
      }
      // Let the bytes before the cut leave, then drop the connection without ending the body.
      const socket = res.socket;
      write.call(this, bytes.subarray(0, after - sent), () => socket?.destroy());
      sent = after;
      return false;
    };
  res.write = cut(res.write);
  res.end = cut(res.end);
  await next();
});

const requestLog = values['request-log'];
if (requestLog) {
  server.middleware.unshift(async (ctx, next) => {
    let bytesOut = 0;
    const { res } = ctx;
    const count = (write) =>
      function (chunk, ...rest) {
        if (chunk && typeof chunk !== 'function') bytesOut += Buffer.byteLength(chunk);
        return write.call(this, chunk, ...rest);
      };
    res.write = count(res.write);
    // Logged as the last bytes are handed over, before they can reach the client: a client that has
    // read a whole answer finds its line in the log ('finish' may come after the client looks).
    const end = res.end;
    res.end = count(function (...args) {
      log();
      return end.apply(this, args);
    });
    let logged = false;
    const log = () => {
      if (logged) return;
      logged = true;
      appendFileSync(
        requestLog,
        `${JSON.stringify({ method: ctx.method, path: ctx.path, status: res.statusCode, bytesOut, range: ctx.get('range') || undefined })}\n`,
      );
    };
    // A response cut short (a fault) never finishes: log it when its connection closes.
    res.once('finish', log).once('close', log);
    await next();
  });
}

const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);

let closing = false;
function shutdown() {
  if (closing) return;
  closing = true;
  server.close().finally(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown).on('close', shutdown).resume();
