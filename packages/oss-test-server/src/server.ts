/*
 * An Aliyun OSS protocol server for tests, written from Aliyun's API reference: object, listing
 * and multipart APIs over in-memory buckets, V1 and V4 header signatures, OSS XML errors
 * (`x-oss-err` on HEAD), `x-oss-request-id`, `x-oss-hash-crc64ecma` on writes and reads, ETags
 * as OSS forms them, `x-oss-forbid-overwrite`, Content-MD5 checks, and fault injection.
 *
 * Addressing: a Host that is a domain name selects the bucket by its first label (virtual-hosted
 * style, `bucket.oss-cn-hangzhou.aliyuncs.com`); a Host that is an IP address or `localhost`
 * means path style (`/bucket/key`). ali-oss given an IP endpoint such as `http://127.0.0.1:PORT`
 * connects there but sends `Host: <bucket>.oss-<region>.aliyuncs.com` with the key as the path,
 * so the real client reaches this server unchanged.
 *
 * Every request body is read in full before the request is handled, which makes each write one
 * synchronous step: `x-oss-forbid-overwrite` is atomic, as on OSS.
 *
 * Cold classes (Archive, ColdArchive, DeepColdArchive): GetObject, and CopyObject from such a
 * source, fail with 403 InvalidObjectState until a RestoreObject has completed. Restores are
 * timed by the server's own thaw clock, which tests move forward with `clock.advance`, so an
 * hours-long Cold Archive thaw takes no time at all; signatures are checked against real time.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SIGNED_SUBRESOURCES, authenticate, header, type OssCredentials, type QueryParameter, type SignatureVersion } from './auth.js';
import { crc64 as crc64Of } from './crc64.js';
import { OssError, ossErrors } from './errors.js';
import { OssFaults, type OssFault, type OssOperation } from './faults.js';
import {
  Bucket,
  RESTORE_TIERS,
  STORAGE_CLASSES,
  compareUtf8,
  md5,
  multipartObject,
  newPart,
  newUploadId,
  normalObject,
  type RestoreTier,
  type StorageClass,
  type StoredObject,
  type StoredPart,
} from './store.js';
import { checkedLifecycle, noSuchLifecycle } from './lifecycle.js';
import { XmlSyntaxError, childText, childrenNamed, element, parseXml, textElement, xmlDocument, type XmlElement } from './xml.js';

export interface OssTestServerOptions extends OssCredentials {
  /** Buckets that exist from the start (more with `createBucket` or PutBucket). */
  buckets?: readonly string[];
  /** The region V4 signatures must be scoped to, without `oss-` (default `cn-hangzhou`). */
  region?: string;
  /** Smallest size of a multipart part other than the last (default 100 KiB, as on OSS). */
  minPartSize?: number;
}

/** One request the server answered (or dropped), for tests that check what a client sent. */
export interface OssRequestRecord {
  /** Undefined when the request matched no implemented operation. */
  operation: OssOperation | undefined;
  method: string;
  bucket: string | undefined;
  key: string;
  /** Signature version that authenticated the request; undefined when it was not authenticated. */
  signature: SignatureVersion | undefined;
  /** HTTP status answered; 0 when the connection was reset by a fault. */
  status: number;
  /** The request's Range header, if it had one. */
  range: string | undefined;
  requestId: string;
  /** When the request arrived and when its answer was sent (`performance.now()` ms; undefined while open or dropped). */
  startedAt: number;
  endedAt: number | undefined;
}

/** A copy of a stored object, as tests inspect it. */
export interface OssObjectSnapshot {
  bytes: Buffer;
  etag: string;
  crc64: string;
  contentType: string;
  lastModified: Date;
  storageClass: StorageClass;
  type: 'Normal' | 'Multipart';
  meta: Record<string, string>;
  /** The latest restore of a cold object, as `Date`s on the thaw clock. */
  restore: { tier: RestoreTier; readyAt: Date; expiresAt: Date } | undefined;
}

/** The clock restores are timed by: real time plus however far tests moved it. */
export interface ThawClock {
  now(): Date;
  /** Moves the clock `ms` forward: restores under way finish, restored copies expire. */
  advance(ms: number): void;
}

export interface OssTestServer {
  /** `http://127.0.0.1:<port>`: give it to ali-oss as `endpoint`. */
  readonly endpoint: string;
  readonly port: number;
  /** The region V4 signatures are checked against, e.g. `cn-hangzhou`. */
  readonly region: string;
  /** Pending fault rules; add some to make the next requests fail or store the wrong bytes. */
  readonly faults: OssFaults;
  /** Times restores of cold objects (see `RESTORE_DURATIONS`). */
  readonly clock: ThawClock;
  /** Every request so far, oldest first. */
  readonly requests: readonly OssRequestRecord[];
  /** Creates an empty bucket. */
  createBucket(name: string): void;
  /** The stored object, or undefined. */
  object(bucket: string, key: string): OssObjectSnapshot | undefined;
  /** The bucket's keys in listing order. */
  keys(bucket: string): string[];
  /** The bucket's unfinished multipart uploads. */
  uploads(bucket: string): { key: string; uploadId: string; parts: number }[];
  /** Bit rot: changes a stored object's bytes but not its recorded ETag and CRC-64. */
  corruptObject(bucket: string, key: string, how: 'flip-byte' | 'truncate'): void;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  body: Buffer;
  bucketName: string;
  key: string;
  query: readonly QueryParameter[];
  requestId: string;
  /** A fault that changes how the request is handled (stored bytes, checksum header, range, body). */
  fault: OssFault | undefined;
}

const OWNER_ID = '1300000000000000';
const MAX_KEYS_LIMIT = 1000;
const MAX_PARTS = 10_000;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/**
 * How long a restore takes, per cold class and priority: the upper end of what Aliyun documents
 * (Archive about a minute whatever the priority; Cold Archive 1 h / 2–5 h / 5–12 h; Deep Cold
 * Archive 12 h / 48 h, no Bulk). The classes not listed need no restore.
 */
export const RESTORE_DURATIONS: Readonly<Partial<Record<StorageClass, Partial<Record<RestoreTier, number>>>>> = {
  Archive: { Expedited: MINUTE, Standard: MINUTE, Bulk: MINUTE },
  ColdArchive: { Expedited: HOUR, Standard: 5 * HOUR, Bulk: 12 * HOUR },
  DeepColdArchive: { Expedited: 12 * HOUR, Standard: 48 * HOUR },
};
/** The longest a restored copy stays readable, in days, per cold class (the shortest is 1). */
const MAX_RESTORE_DAYS: Readonly<Partial<Record<StorageClass, number>>> = { Archive: 7, ColdArchive: 365, DeepColdArchive: 365 };
const RESPONSE_OVERRIDES: Readonly<Record<string, string>> = {
  'response-content-type': 'Content-Type',
  'response-content-language': 'Content-Language',
  'response-expires': 'Expires',
  'response-cache-control': 'Cache-Control',
  'response-content-disposition': 'Content-Disposition',
  'response-content-encoding': 'Content-Encoding',
};

/** Starts an OSS test server on 127.0.0.1 at a random free port. */
export async function startOssTestServer(options: OssTestServerOptions): Promise<OssTestServer> {
  const credentials: OssCredentials = {
    accessKeyId: options.accessKeyId,
    accessKeySecret: options.accessKeySecret,
    ...(options.securityToken === undefined ? {} : { securityToken: options.securityToken }),
  };
  const region = options.region ?? 'cn-hangzhou';
  const minPartSize = options.minPartSize ?? 100 * 1024;
  const buckets = new Map<string, Bucket>();
  const faults = new OssFaults();
  const requests: OssRequestRecord[] = [];
  let clockOffset = 0;
  const clock: ThawClock = {
    now: () => new Date(Date.now() + clockOffset),
    advance(ms) {
      if (!(ms >= 0)) throw new RangeError('the thaw clock only moves forward');
      clockOffset += ms;
    },
  };

  const createBucket = (name: string) => {
    if (!/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(name)) {
      throw new OssError(400, 'InvalidBucketName', 'The specified bucket is not valid.', { BucketName: name });
    }
    if (buckets.has(name)) throw ossErrors.bucketAlreadyExists(name);
    buckets.set(name, new Bucket(name));
  };
  for (const name of options.buckets ?? []) createBucket(name);

  const bucketOf = (name: string) => {
    const bucket = buckets.get(name);
    if (!bucket) throw ossErrors.noSuchBucket(name);
    return bucket;
  };

  const hostIdOf = (bucket: string | undefined) => `${bucket ? `${bucket}.` : ''}oss-${region}.aliyuncs.com`;

  /**
   * Answers with `status`, the common OSS headers and `body` (none for HEAD); with `cutAfter`,
   * only that many bytes of the body are sent before the connection is dropped.
   */
  const reply = (
    ex: Pick<Exchange, 'req' | 'res' | 'requestId'>,
    status: number,
    headers: Record<string, string>,
    body: string | Buffer = '',
    cutAfter?: number,
  ) => {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    ex.res.writeHead(status, {
      Server: 'AliyunOSS',
      Date: new Date().toUTCString(),
      'x-oss-request-id': ex.requestId,
      'Content-Length': String(bytes.length),
      ...(bytes.length > 0 ? { 'Content-Type': 'application/xml' } : {}),
      ...headers,
    });
    if (cutAfter === undefined) ex.res.end(ex.req.method === 'HEAD' ? undefined : bytes);
    else ex.res.write(bytes.subarray(0, cutAfter), () => ex.res.destroy());
  };

  const replyXml = (ex: Exchange, root: string, headers: Record<string, string> = {}) =>
    reply(ex, 200, { 'Content-Type': 'application/xml', ...headers }, xmlDocument(root));

  const replyError = (ex: Pick<Exchange, 'req' | 'res' | 'requestId'>, bucket: string | undefined, error: OssError) => {
    const xml = xmlDocument(
      element(
        'Error',
        textElement('Code', error.code),
        textElement('Message', error.message),
        textElement('RequestId', ex.requestId),
        textElement('HostId', hostIdOf(bucket)),
        ...Object.entries(error.details).map(([name, value]) => textElement(name, value)),
      ),
    );
    // HEAD answers have no body; OSS puts the error document, base64-encoded, in x-oss-err.
    const headers: Record<string, string> = { 'Content-Type': 'application/xml' };
    if (ex.req.method === 'HEAD') headers['x-oss-err'] = Buffer.from(xml).toString('base64');
    reply(ex, error.status, headers, xml);
  };

  const handlers: Record<OssOperation, (ex: Exchange) => void> = {
    PutBucket(ex) {
      createBucket(ex.bucketName);
      reply(ex, 200, { Location: `/${ex.bucketName}` });
    },

    DeleteBucket(ex) {
      const bucket = bucketOf(ex.bucketName);
      if (bucket.objects.size > 0 || bucket.uploads.size > 0) throw ossErrors.bucketNotEmpty(ex.bucketName);
      buckets.delete(ex.bucketName);
      reply(ex, 204, {});
    },

    ListObjects(ex) {
      const bucket = bucketOf(ex.bucketName);
      const q = queryOf(ex);
      const encode = keyEncoder(q.get('encoding-type'));
      const prefix = q.get('prefix') ?? '';
      const marker = q.get('marker') ?? '';
      const delimiter = q.get('delimiter') ?? '';
      const maxKeys = integerParameter(q, 'max-keys', 100, 0, MAX_KEYS_LIMIT);
      const page = bucket.list({ prefix, after: marker, delimiter, maxKeys });
      replyXml(
        ex,
        element(
          'ListBucketResult',
          textElement('Name', bucket.name),
          textElement('Prefix', encode(prefix)),
          textElement('Marker', encode(marker)),
          textElement('MaxKeys', maxKeys),
          textElement('Delimiter', encode(delimiter)),
          textElement('EncodingType', q.get('encoding-type')),
          textElement('IsTruncated', page.truncated),
          page.truncated ? textElement('NextMarker', encode(page.last ?? '')) : '',
          ...listingEntries(page.entries, encode, true, restoreInfo),
        ),
      );
    },

    ListObjectsV2(ex) {
      const bucket = bucketOf(ex.bucketName);
      const q = queryOf(ex);
      const encode = keyEncoder(q.get('encoding-type'));
      const prefix = q.get('prefix') ?? '';
      const delimiter = q.get('delimiter') ?? '';
      const token = q.get('continuation-token');
      const startAfter = q.get('start-after');
      const maxKeys = integerParameter(q, 'max-keys', 100, 0, MAX_KEYS_LIMIT);
      const after = token !== undefined ? decodeContinuationToken(token) : (startAfter ?? '');
      const page = bucket.list({ prefix, after, delimiter, maxKeys });
      replyXml(
        ex,
        element(
          'ListBucketResult',
          textElement('Name', bucket.name),
          textElement('Prefix', encode(prefix)),
          textElement('ContinuationToken', token),
          textElement('StartAfter', startAfter === undefined ? undefined : encode(startAfter)),
          textElement('MaxKeys', maxKeys),
          textElement('Delimiter', encode(delimiter)),
          textElement('EncodingType', q.get('encoding-type')),
          textElement('IsTruncated', page.truncated),
          page.truncated ? textElement('NextContinuationToken', Buffer.from(page.last ?? '').toString('base64url')) : '',
          textElement('KeyCount', page.entries.length),
          ...listingEntries(page.entries, encode, q.get('fetch-owner') === 'true', restoreInfo),
        ),
      );
    },

    ListMultipartUploads(ex) {
      const bucket = bucketOf(ex.bucketName);
      const q = queryOf(ex);
      if (q.get('delimiter')) throw ossErrors.notImplemented('ListMultipartUploads with a delimiter');
      const encode = keyEncoder(q.get('encoding-type'));
      const prefix = q.get('prefix') ?? '';
      const keyMarker = q.get('key-marker') ?? '';
      const uploadIdMarker = q.get('upload-id-marker') ?? '';
      const maxUploads = integerParameter(q, 'max-uploads', 1000, 0, 1000);
      const matching = [...bucket.uploads.values()]
        .filter((upload) => upload.key.startsWith(prefix))
        .filter((upload) => {
          const order = compareUtf8(upload.key, keyMarker);
          return order > 0 || (order === 0 && uploadIdMarker !== '' && upload.uploadId > uploadIdMarker);
        })
        .sort((a, b) => compareUtf8(a.key, b.key) || (a.uploadId < b.uploadId ? -1 : 1));
      const page = matching.slice(0, maxUploads);
      const truncated = matching.length > page.length;
      const last = page.at(-1);
      replyXml(
        ex,
        element(
          'ListMultipartUploadsResult',
          textElement('Bucket', bucket.name),
          textElement('EncodingType', q.get('encoding-type')),
          textElement('KeyMarker', encode(keyMarker)),
          textElement('UploadIdMarker', uploadIdMarker),
          textElement('NextKeyMarker', truncated ? encode(last?.key ?? '') : ''),
          textElement('NextUploadIdMarker', truncated ? (last?.uploadId ?? '') : ''),
          textElement('Delimiter', ''),
          textElement('Prefix', encode(prefix)),
          textElement('MaxUploads', maxUploads),
          textElement('IsTruncated', truncated),
          ...page.map((upload) =>
            element(
              'Upload',
              textElement('Key', encode(upload.key)),
              textElement('UploadId', upload.uploadId),
              textElement('Initiated', upload.initiated.toISOString()),
            ),
          ),
        ),
      );
    },

    DeleteMultipleObjects(ex) {
      const bucket = bucketOf(ex.bucketName);
      if (header(ex.req.headers, 'content-md5') === undefined) {
        throw new OssError(400, 'MissingArgument', 'Missing Some Required Arguments.', { ArgumentName: 'Content-MD5' });
      }
      checkContentMd5(ex);
      const request = parseBody(ex, 'Delete');
      const objects = childrenNamed(request, 'Object');
      if (objects.length === 0 || objects.length > 1000) throw ossErrors.malformedXml();
      const keys = objects.map((object) => childText(object, 'Key'));
      if (keys.some((key) => key === undefined || key === '')) throw ossErrors.malformedXml();
      const encode = keyEncoder(queryOf(ex).get('encoding-type'));
      for (const key of keys) bucket.objects.delete(key!);
      const quiet = childText(request, 'Quiet')?.trim().toLowerCase() === 'true';
      replyXml(
        ex,
        element(
          'DeleteResult',
          textElement('EncodingType', queryOf(ex).get('encoding-type')),
          ...(quiet ? [] : keys.map((key) => element('Deleted', textElement('Key', encode(key!))))),
        ),
      );
    },

    PutObject(ex) {
      const bucket = bucketOf(ex.bucketName);
      checkObjectName(ex.key);
      const checked = checkContentMd5(ex);
      checkOverwrite(ex, bucket);
      const bytes = applyWriteFault(ex.body, ex.fault);
      const object = normalObject(bytes, objectAttributes(ex), bytes === ex.body ? checked : undefined);
      bucket.objects.set(ex.key, object);
      reply(ex, 200, {
        ETag: object.etag,
        'Content-MD5': object.contentMd5!,
        ...crcHeader(object.crc64, ex.fault),
      });
    },

    CopyObject(ex) {
      const bucket = bucketOf(ex.bucketName);
      checkObjectName(ex.key);
      const { bucketName: sourceBucket, key: sourceKey } = copySource(header(ex.req.headers, 'x-oss-copy-source')!);
      const source = bucketOf(sourceBucket).objects.get(sourceKey);
      if (!source) throw ossErrors.noSuchKey(sourceKey);
      assertReadable(source, sourceKey);
      const ifMatch = header(ex.req.headers, 'x-oss-copy-source-if-match');
      if (ifMatch !== undefined && unquote(ifMatch) !== unquote(source.etag)) {
        throw new OssError(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.', {
          Condition: 'x-oss-copy-source-if-match',
        });
      }
      const directive = header(ex.req.headers, 'x-oss-metadata-directive') ?? 'COPY';
      if (directive !== 'COPY' && directive !== 'REPLACE') {
        throw ossErrors.invalidArgument('Invalid metadata directive.', 'x-oss-metadata-directive', directive);
      }
      checkOverwrite(ex, bucket);
      const attributes = objectAttributes(ex);
      const kept = directive === 'COPY' ? { contentType: source.contentType, meta: { ...source.meta } } : {};
      const bytes = applyWriteFault(source.bytes, ex.fault);
      const object: StoredObject = {
        ...source,
        ...attributes,
        ...kept,
        ...(bytes === source.bytes ? {} : { bytes, crc64: crc64Of(bytes) }),
        lastModified: new Date(Math.floor(Date.now() / 1000) * 1000),
        restore: undefined,
      };
      bucket.objects.set(ex.key, object);
      replyXml(ex, element('CopyObjectResult', textElement('LastModified', object.lastModified.toISOString()), textElement('ETag', object.etag)), {
        ETag: object.etag,
        ...crcHeader(object.crc64, ex.fault),
      });
    },

    PutBucketLifecycle(ex) {
      const bucket = bucketOf(ex.bucketName);
      checkContentMd5(ex);
      bucket.lifecycle = checkedLifecycle(ex.body);
      reply(ex, 200, {});
    },

    GetBucketLifecycle(ex) {
      const bucket = bucketOf(ex.bucketName);
      if (bucket.lifecycle === undefined) throw noSuchLifecycle(bucket.name);
      replyXml(ex, bucket.lifecycle);
    },

    DeleteBucketLifecycle(ex) {
      bucketOf(ex.bucketName).lifecycle = undefined;
      reply(ex, 204, {});
    },

    RestoreObject(ex) {
      const object = objectOf(ex);
      const durations = RESTORE_DURATIONS[object.storageClass];
      if (!durations) {
        throw new OssError(400, 'OperationNotSupported', 'The operation is not supported for this resource.', { Key: ex.key });
      }
      const request = ex.body.length === 0 ? undefined : parseBody(ex, 'RestoreRequest');
      const daysText = request === undefined ? '1' : (childText(request, 'Days') ?? '1');
      const maxDays = MAX_RESTORE_DAYS[object.storageClass]!;
      const days = /^\d{1,3}$/.test(daysText.trim()) ? Number(daysText) : NaN;
      if (!(days >= 1 && days <= maxDays)) {
        throw ossErrors.invalidArgument(`The Days must be an integer from 1 to ${maxDays}.`, 'Days', daysText);
      }
      const jobParameters = request === undefined ? undefined : childrenNamed(request, 'JobParameters')[0];
      const tierText = (jobParameters && childText(jobParameters, 'Tier')) ?? 'Standard';
      const duration = durations[tierText as RestoreTier];
      if (duration === undefined) throw ossErrors.invalidArgument('The Tier is invalid.', 'Tier', tierText);
      const tier = tierText as RestoreTier;
      const now = clock.now().getTime();
      const state = restoreState(object);
      if (state === 'restored') {
        // A restored copy's life is extended, as OSS does for a repeated request.
        object.restore!.expiresAt = Math.max(object.restore!.expiresAt, now + days * DAY);
        reply(ex, 200, {});
        return;
      }
      if (state === 'ongoing') {
        const current = object.restore!;
        const faster = RESTORE_TIERS.indexOf(tier) < RESTORE_TIERS.indexOf(current.tier);
        if (!faster) {
          if (tier === current.tier) {
            throw new OssError(409, 'RestoreAlreadyInProgress', 'The restore operation is in progress.', { Key: ex.key });
          }
          throw ossErrors.invalidArgument('The priority of a restore in progress can only be raised.', 'Tier', tier);
        }
        const readyAt = Math.min(current.readyAt, now + duration);
        object.restore = { tier, readyAt, expiresAt: readyAt + (current.expiresAt - current.readyAt) };
        reply(ex, 202, {});
        return;
      }
      object.restore = { tier, readyAt: now + duration, expiresAt: now + duration + days * DAY };
      reply(ex, 202, {});
    },

    GetObject(ex) {
      const object = objectOf(ex);
      assertReadable(object, ex.key);
      const ifMatch = header(ex.req.headers, 'if-match');
      if (ifMatch !== undefined && unquote(ifMatch) !== unquote(object.etag)) {
        throw new OssError(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.', { Condition: 'If-Match' });
      }
      const headers = objectHeaders(object, ex.fault);
      for (const [name, value] of queryOf(ex)) {
        const overridden = RESPONSE_OVERRIDES[name];
        if (overridden) headers[overridden] = value;
      }
      const size = object.bytes.length;
      const rangeHeader = ex.fault?.kind === 'ignore-range' ? undefined : header(ex.req.headers, 'range');
      const range = parseRange(rangeHeader, size, header(ex.req.headers, 'x-oss-range-behavior') === 'standard');
      const cutAfter = ex.fault?.kind === 'cut-response' ? ex.fault.after : undefined;
      if (!range) {
        reply(ex, 200, headers, object.bytes, cutAfter);
        return;
      }
      const [start, end] = range;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
      reply(ex, 206, headers, object.bytes.subarray(start, end + 1), cutAfter);
    },

    HeadObject(ex) {
      const object = objectOf(ex);
      reply(ex, 200, { ...objectHeaders(object, ex.fault), 'Content-Length': String(object.bytes.length) });
    },

    GetObjectMeta(ex) {
      const object = objectOf(ex);
      reply(ex, 200, {
        ETag: object.etag,
        'Last-Modified': object.lastModified.toUTCString(),
        'Content-Length': String(object.bytes.length),
        ...crcHeader(object.crc64, ex.fault),
      });
    },

    DeleteObject(ex) {
      bucketOf(ex.bucketName).objects.delete(ex.key);
      reply(ex, 204, {});
    },

    InitiateMultipartUpload(ex) {
      const bucket = bucketOf(ex.bucketName);
      checkObjectName(ex.key);
      checkOverwrite(ex, bucket);
      const uploadId = newUploadId();
      bucket.uploads.set(uploadId, { uploadId, key: ex.key, initiated: new Date(), parts: new Map(), ...objectAttributes(ex) });
      replyXml(ex, element('InitiateMultipartUploadResult', textElement('Bucket', bucket.name), textElement('Key', ex.key), textElement('UploadId', uploadId)));
    },

    UploadPart(ex) {
      const upload = uploadOf(ex);
      const partNumber = integerParameter(queryOf(ex), 'partNumber', 0, 1, MAX_PARTS);
      const checked = checkContentMd5(ex);
      const bytes = applyWriteFault(ex.body, ex.fault);
      const part = newPart(bytes, bytes === ex.body ? checked : undefined);
      upload.parts.set(partNumber, part);
      reply(ex, 200, { ETag: part.etag, ...crcHeader(part.crc64, ex.fault) });
    },

    CompleteMultipartUpload(ex) {
      const bucket = bucketOf(ex.bucketName);
      const upload = uploadOf(ex);
      checkContentMd5(ex);
      const listed = childrenNamed(parseBody(ex, 'CompleteMultipartUpload'), 'Part').map((part) => ({
        number: Number(childText(part, 'PartNumber')),
        etag: (childText(part, 'ETag') ?? '').trim(),
      }));
      if (listed.length === 0 || listed.some(({ number }) => !Number.isInteger(number))) throw ossErrors.malformedXml();
      const parts: StoredPart[] = [];
      for (const [index, { number, etag }] of listed.entries()) {
        if (index > 0 && number <= listed[index - 1]!.number) throw ossErrors.invalidPartOrder();
        const part = upload.parts.get(number);
        if (!part || unquote(part.etag).toUpperCase() !== unquote(etag).toUpperCase()) throw ossErrors.invalidPart(number);
        parts.push(part);
      }
      for (const [index, part] of parts.slice(0, -1).entries()) {
        if (part.bytes.length < minPartSize) throw ossErrors.entityTooSmall(listed[index]!.number);
      }
      checkOverwrite(ex, bucket);
      const object = multipartObject(upload, parts, (joined) => applyWriteFault(joined, ex.fault));
      bucket.objects.set(ex.key, object);
      bucket.uploads.delete(upload.uploadId);
      replyXml(
        ex,
        element(
          'CompleteMultipartUploadResult',
          textElement('Location', `http://${hostIdOf(bucket.name)}/${encodeURIComponent(ex.key).replace(/%2F/g, '/')}`),
          textElement('Bucket', bucket.name),
          textElement('Key', ex.key),
          textElement('ETag', object.etag),
        ),
        { ETag: object.etag, ...crcHeader(object.crc64, ex.fault) },
      );
    },

    AbortMultipartUpload(ex) {
      const upload = uploadOf(ex);
      bucketOf(ex.bucketName).uploads.delete(upload.uploadId);
      reply(ex, 204, {});
    },

    ListParts(ex) {
      const upload = uploadOf(ex);
      const q = queryOf(ex);
      const maxParts = integerParameter(q, 'max-parts', 1000, 0, 1000);
      const marker = integerParameter(q, 'part-number-marker', 0, 0, MAX_PARTS);
      const numbers = [...upload.parts.keys()].filter((n) => n > marker).sort((a, b) => a - b);
      const page = numbers.slice(0, maxParts);
      replyXml(
        ex,
        element(
          'ListPartsResult',
          textElement('Bucket', ex.bucketName),
          textElement('Key', upload.key),
          textElement('UploadId', upload.uploadId),
          textElement('PartNumberMarker', marker),
          textElement('NextPartNumberMarker', page.at(-1) ?? 0),
          textElement('MaxParts', maxParts),
          textElement('IsTruncated', numbers.length > page.length),
          ...page.map((number) => {
            const part = upload.parts.get(number)!;
            return element(
              'Part',
              textElement('PartNumber', number),
              textElement('LastModified', part.lastModified.toISOString()),
              textElement('ETag', part.etag),
              textElement('HashCrc64ecma', part.crc64),
              textElement('Size', part.bytes.length),
            );
          }),
        ),
      );
    },
  };

  function objectOf(ex: Exchange): StoredObject {
    const object = bucketOf(ex.bucketName).objects.get(ex.key);
    if (!object) throw ossErrors.noSuchKey(ex.key);
    return object;
  }

  function uploadOf(ex: Exchange) {
    const uploadId = queryOf(ex).get('uploadId') ?? '';
    const upload = bucketOf(ex.bucketName).uploads.get(uploadId);
    if (!upload || upload.key !== ex.key) throw ossErrors.noSuchUpload(uploadId);
    return upload;
  }

  /** Where a cold object's restore stands now; an expired restore is forgotten. */
  function restoreState(object: StoredObject): 'frozen' | 'ongoing' | 'restored' {
    const { restore } = object;
    const now = clock.now().getTime();
    if (restore === undefined) return 'frozen';
    if (now < restore.readyAt) return 'ongoing';
    if (now < restore.expiresAt) return 'restored';
    object.restore = undefined;
    return 'frozen';
  }

  function assertReadable(object: StoredObject, key: string): void {
    if (RESTORE_DURATIONS[object.storageClass] && restoreState(object) !== 'restored') throw ossErrors.invalidObjectState(key);
  }

  /** `x-oss-restore` (and a listing's RestoreInfo) of a cold object a restore was asked for. */
  function restoreInfo(object: StoredObject): string | undefined {
    const state = restoreState(object);
    if (state === 'frozen') return undefined;
    if (state === 'ongoing') return 'ongoing-request="true"';
    return `ongoing-request="false", expiry-date="${new Date(object.restore!.expiresAt).toUTCString()}"`;
  }

  function checkOverwrite(ex: Exchange, bucket: Bucket): void {
    const forbid = header(ex.req.headers, 'x-oss-forbid-overwrite');
    if (forbid?.toLowerCase() === 'true' && bucket.objects.has(ex.key)) throw ossErrors.fileAlreadyExists(ex.key);
  }

  function objectAttributes(ex: Exchange): Pick<StoredObject, 'contentType' | 'storageClass' | 'meta'> {
    const storageClass = header(ex.req.headers, 'x-oss-storage-class') ?? 'Standard';
    if (!(STORAGE_CLASSES as readonly string[]).includes(storageClass)) {
      throw ossErrors.invalidArgument('Invalid storage class.', 'x-oss-storage-class', storageClass);
    }
    const meta = Object.fromEntries(
      Object.keys(ex.req.headers)
        .filter((name) => name.startsWith('x-oss-meta-'))
        .map((name) => [name, header(ex.req.headers, name)!]),
    );
    return {
      contentType: header(ex.req.headers, 'content-type') ?? 'application/octet-stream',
      storageClass: storageClass as StorageClass,
      meta,
    };
  }

  function objectHeaders(object: StoredObject, fault: OssFault | undefined): Record<string, string> {
    const restore = restoreInfo(object);
    return {
      ...(restore === undefined ? {} : { 'x-oss-restore': restore }),
      'Content-Type': object.contentType,
      ETag: object.etag,
      'Last-Modified': object.lastModified.toUTCString(),
      'Accept-Ranges': 'bytes',
      'x-oss-object-type': object.type,
      'x-oss-storage-class': object.storageClass,
      ...(object.contentMd5 === undefined ? {} : { 'Content-MD5': object.contentMd5 }),
      ...crcHeader(object.crc64, fault),
      ...object.meta,
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomBytes(12).toString('hex').toUpperCase();
    const record: OssRequestRecord = {
      operation: undefined,
      method: req.method ?? '',
      bucket: undefined,
      key: '',
      signature: undefined,
      status: 0,
      range: header(req.headers, 'range'),
      requestId,
      startedAt: performance.now(),
      endedAt: undefined,
    };
    requests.push(record);
    res.on('finish', () => Object.assign(record, { status: res.statusCode, endedAt: performance.now() }));
    try {
      const body = await readBody(req);
      const target = parseTarget(req);
      Object.assign(record, { bucket: target.bucket, key: target.key });
      const operation = operationOf(record.method, target, header(req.headers, 'x-oss-copy-source') !== undefined);
      record.operation = operation;
      const fault = faults.take(operation);
      if (fault?.kind === 'delay') await sleep(fault.ms);
      if (fault?.kind === 'reset') {
        req.socket.destroy();
        return;
      }
      if (fault?.kind === 'error') {
        throw new OssError(fault.status, fault.code, fault.message ?? `Injected fault: ${fault.code}.`);
      }
      record.signature = authenticate({ method: record.method, headers: req.headers, ...target }, credentials, region);
      handlers[operation]({ req, res, body, bucketName: target.bucket!, key: target.key, query: target.query, requestId, fault });
    } catch (error) {
      if (res.headersSent || res.destroyed) return;
      const ossError = error instanceof OssError ? error : error instanceof XmlSyntaxError ? ossErrors.malformedXml() : ossErrors.internalError(String(error));
      replyError({ req, res, requestId }, record.bucket, ossError);
    }
  }

  const server = createServer((req, res) => void handle(req, res));
  // Longer than clients keep idle connections, so a client never reuses one the server is closing.
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const storedBucket = (name: string) => {
    const bucket = buckets.get(name);
    if (!bucket) throw new Error(`the OSS test server has no bucket '${name}'`);
    return bucket;
  };

  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    region,
    faults,
    clock,
    requests,
    createBucket,
    object(bucket, key) {
      const object = storedBucket(bucket).objects.get(key);
      if (!object) return undefined;
      const { bytes, etag, crc64, contentType, lastModified, storageClass, type, meta, restore } = object;
      return {
        bytes: Buffer.from(bytes),
        etag,
        crc64,
        contentType,
        lastModified,
        storageClass,
        type,
        meta: { ...meta },
        restore: restore && { tier: restore.tier, readyAt: new Date(restore.readyAt), expiresAt: new Date(restore.expiresAt) },
      };
    },
    keys: (bucket) => [...storedBucket(bucket).objects.keys()].sort(compareUtf8),
    uploads: (bucket) => [...storedBucket(bucket).uploads.values()].map(({ key, uploadId, parts }) => ({ key, uploadId, parts: parts.size })),
    corruptObject(bucket, key, how) {
      const object = storedBucket(bucket).objects.get(key);
      if (!object) throw new Error(`the OSS test server has no object '${key}' in '${bucket}'`);
      object.bytes = applyWriteFault(object.bytes, { kind: how });
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** Bucket, key and query of a request, by virtual-hosted or path-style addressing. */
function parseTarget(req: IncomingMessage): { bucket: string | undefined; key: string; query: QueryParameter[] } {
  const url = req.url ?? '/';
  const mark = url.indexOf('?');
  const path = decodeComponent(mark < 0 ? url : url.slice(0, mark), false);
  const query = (mark < 0 ? '' : url.slice(mark + 1))
    .split('&')
    .filter((pair) => pair !== '')
    .map((pair): QueryParameter => {
      const equals = pair.indexOf('=');
      return equals < 0 ? [decodeComponent(pair, true), ''] : [decodeComponent(pair.slice(0, equals), true), decodeComponent(pair.slice(equals + 1), true)];
    });
  const host = (req.headers.host ?? '').replace(/^\[(.*)\](:\d+)?$|:\d+$/, '$1');
  if (host === '' || host === 'localhost' || isIP(host) !== 0) {
    const [bucket = '', ...rest] = path.slice(1).split('/');
    return { bucket: bucket === '' ? undefined : bucket, key: rest.join('/'), query };
  }
  const label = host.split('.')[0]!;
  return { bucket: label.startsWith('oss-') ? undefined : label, key: path.slice(1), query };
}

function decodeComponent(text: string, plusIsSpace: boolean): string {
  try {
    return decodeURIComponent(plusIsSpace ? text.replace(/\+/g, ' ') : text);
  } catch {
    throw new OssError(400, 'InvalidURI', 'Could not parse the specified URI.');
  }
}

/** The OSS operation a request asks for, from its method, target and sub-resources. */
function operationOf(method: string, target: { bucket: string | undefined; key: string; query: readonly QueryParameter[] }, copy: boolean): OssOperation {
  const names = new Set(target.query.map(([name]) => name));
  const subresources = [...names].filter((name) => SIGNED_SUBRESOURCES.has(name) && !(name in RESPONSE_OVERRIDES));
  const only = (...allowed: string[]) => subresources.length === allowed.length && allowed.every((name) => names.has(name));
  if (target.bucket === undefined) throw ossErrors.notImplemented('Service-level requests (ListBuckets)');
  if (target.key === '') {
    if (method === 'GET' && only('uploads')) return 'ListMultipartUploads';
    if (method === 'GET' && (only() || only('continuation-token'))) {
      return target.query.some(([name, value]) => name === 'list-type' && value === '2') ? 'ListObjectsV2' : 'ListObjects';
    }
    if (method === 'POST' && only('delete')) return 'DeleteMultipleObjects';
    if (method === 'PUT' && only()) return 'PutBucket';
    if (method === 'DELETE' && only()) return 'DeleteBucket';
    if (method === 'PUT' && only('lifecycle')) return 'PutBucketLifecycle';
    if (method === 'GET' && only('lifecycle')) return 'GetBucketLifecycle';
    if (method === 'DELETE' && only('lifecycle')) return 'DeleteBucketLifecycle';
  } else {
    if ((method === 'GET' || method === 'HEAD') && only('objectMeta')) return 'GetObjectMeta';
    if (method === 'PUT' && only('partNumber', 'uploadId')) return 'UploadPart';
    if (method === 'PUT' && only()) return copy ? 'CopyObject' : 'PutObject';
    if (method === 'GET' && only('uploadId')) return 'ListParts';
    if (method === 'GET' && only()) return 'GetObject';
    if (method === 'HEAD' && only()) return 'HeadObject';
    if (method === 'DELETE' && only('uploadId')) return 'AbortMultipartUpload';
    if (method === 'DELETE' && only()) return 'DeleteObject';
    if (method === 'POST' && only('uploads')) return 'InitiateMultipartUpload';
    if (method === 'POST' && only('uploadId')) return 'CompleteMultipartUpload';
    if (method === 'POST' && only('restore')) return 'RestoreObject';
  }
  const what = subresources.length === 0 ? '' : `?${subresources.join('&')}`;
  throw ossErrors.notImplemented(`${method} on ${target.key === '' ? 'a bucket' : 'an object'}${what ? ` with ${what}` : ''}`);
}

/** Bucket and key of an `x-oss-copy-source: /<bucket>/<URL-encoded key>` header. */
function copySource(text: string): { bucketName: string; key: string } {
  const match = /^\/([^/?]+)\/([^?]+)$/.exec(text);
  if (!match) {
    throw ossErrors.invalidArgument('The x-oss-copy-source header is invalid (versions are not implemented).', 'x-oss-copy-source', text);
  }
  return { bucketName: match[1]!, key: decodeComponent(match[2]!, false) };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function queryOf(ex: Pick<Exchange, 'query'>): Map<string, string> {
  const map = new Map<string, string>();
  for (const [name, value] of ex.query) if (!map.has(name)) map.set(name, value);
  return map;
}

function integerParameter(query: Map<string, string>, name: string, fallback: number, min: number, max: number): number {
  const text = query.get(name);
  if (text === undefined) {
    if (fallback < min) throw ossErrors.invalidArgument(`${name} is required.`, name, '');
    return fallback;
  }
  const value = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) {
    throw ossErrors.invalidArgument(`${name} must be an integer from ${min} to ${max}.`, name, text);
  }
  return value;
}

function keyEncoder(encodingType: string | undefined): (text: string) => string {
  if (encodingType === undefined) return (text) => text;
  if (encodingType !== 'url') throw ossErrors.invalidArgument('The encoding-type must be url.', 'encoding-type', encodingType);
  return (text) => encodeURIComponent(text);
}

function decodeContinuationToken(token: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(token)) {
    throw ossErrors.invalidArgument('The continuation token provided is incorrect.', 'continuation-token', token);
  }
  return Buffer.from(token, 'base64url').toString();
}

function listingEntries(
  entries: ReturnType<Bucket['list']>['entries'],
  encode: (text: string) => string,
  withOwner: boolean,
  restoreInfo: (object: StoredObject) => string | undefined,
): string[] {
  return entries.map((entry) =>
    entry.kind === 'prefix'
      ? element('CommonPrefixes', textElement('Prefix', encode(entry.prefix)))
      : element(
          'Contents',
          textElement('Key', encode(entry.key)),
          textElement('LastModified', entry.object.lastModified.toISOString()),
          textElement('ETag', entry.object.etag),
          textElement('Type', entry.object.type),
          textElement('Size', entry.object.bytes.length),
          textElement('StorageClass', entry.object.storageClass),
          textElement('RestoreInfo', restoreInfo(entry.object)),
          withOwner ? element('Owner', textElement('ID', OWNER_ID), textElement('DisplayName', OWNER_ID)) : '',
        ),
  );
}

function parseBody(ex: Exchange, rootName: string): XmlElement {
  const root = parseXml(ex.body.toString('utf8'));
  if (root.name !== rootName) throw ossErrors.malformedXml();
  return root;
}

/** Checks the request's Content-MD5, if it has one, and returns the body's MD5 it computed. */
function checkContentMd5(ex: Exchange): Buffer | undefined {
  const sent = header(ex.req.headers, 'content-md5');
  if (sent === undefined) return undefined;
  if (!/^[A-Za-z0-9+/]{22}==$/.test(sent)) throw ossErrors.invalidDigest();
  const digest = md5(ex.body);
  if (digest.toString('base64') !== sent) {
    throw ossErrors.invalidDigest('The Content-MD5 you specified did not match what we received.');
  }
  return digest;
}

function checkObjectName(key: string): void {
  const length = Buffer.byteLength(key);
  if (length === 0 || length > 1023 || key.startsWith('/') || key.startsWith('\\')) throw ossErrors.invalidObjectName(key);
}

/**
 * The byte range `[start, end]` a Range header asks for, or undefined for the whole object.
 * OSS's default behaviour ignores a range it cannot satisfy in full (whole object, 200); with
 * `x-oss-range-behavior: standard` a range running past the end is cut short and one starting
 * past it is refused with 416 InvalidRange.
 */
function parseRange(text: string | undefined, size: number, standard: boolean): [number, number] | undefined {
  // OSS serves only the first of several ranges.
  const match = text === undefined ? null : /^bytes=(\d*)-(\d*)(,.*)?$/.exec(text.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  const [first, last] = [match[1] === '' ? undefined : Number(match[1]), match[2] === '' ? undefined : Number(match[2])];
  if (first === undefined) {
    // A suffix: the last `last` bytes.
    if (last === 0) return undefined;
    if (last! > size) return standard && size > 0 ? [0, size - 1] : undefined;
    return [size - last!, size - 1];
  }
  if (last !== undefined && last < first) return undefined;
  if (first >= size) {
    if (standard) throw ossErrors.invalidRange();
    return undefined;
  }
  if (last === undefined) return [first, size - 1];
  if (last >= size) return standard ? [first, size - 1] : undefined;
  return [first, last];
}

/** The bytes a write fault makes the server store instead of `bytes`. */
function applyWriteFault(bytes: Buffer, fault: OssFault | undefined): Buffer {
  if (fault?.kind === 'truncate') return Buffer.from(bytes.subarray(0, fault.keep ?? Math.floor(bytes.length / 2)));
  if (fault?.kind === 'flip-byte' && bytes.length > 0) {
    const altered = Buffer.from(bytes);
    const middle = Math.floor(altered.length / 2);
    altered[middle] = altered[middle]! ^ 0xff;
    return altered;
  }
  return bytes;
}

function crcHeader(crc64: string, fault: OssFault | undefined): Record<string, string> {
  return fault?.kind === 'omit-crc64' ? {} : { 'x-oss-hash-crc64ecma': crc64 };
}

function unquote(etag: string): string {
  return etag.replace(/^"|"$/g, '');
}
