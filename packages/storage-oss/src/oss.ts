import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import OSS from 'ali-oss';
import {
  StorageError,
  StorageErrorCode,
  abortedError,
  assertValidKey,
  assertValidPrefix,
  destroyOnAbort,
  objectArchived,
  objectChanged,
  objectNotFound,
  throwIfAborted,
  type BucketLifecycle,
  type Capabilities,
  type GetOptions,
  type ObjectInfo,
  type PutBody,
  type PutOptions,
  type RetryOptions,
  type StorageAdapter,
  type ArchiveClassFacts,
  type StoredObject,
  type ThawOptions,
  type ThawTier,
} from '@stowage/storage';
import { PART_MEMORY, PartReader, PartWindow, isNetworkError, resumableGet, uploadParts } from '@stowage/storage-http-kit';
import { crc64ecma, crc64ecmaCombine } from './crc64.js';
import { ossLifecycle, type AliOssLifecycleClient } from './lifecycle.js';

/*
 * Design: the bytes read from a body are counted and SHA-256-hashed and must match the body's
 * declared size and SHA-256 before anything becomes visible (a body up to one part is checked
 * before it is sent; a larger one before its multipart upload is completed). A put reports the
 * server's `x-oss-hash-crc64ecma` for what it stored next to our CRC-64 of the bytes sent, for
 * simple and multipart uploads alike, and does not judge them: the engine compares the two.
 *
 * Bodies are read one part (`partSize`) at a time: a body no larger than one part is a single
 * PutObject with Content-MD5; a larger one is a multipart upload with up to `parallel` parts in
 * flight, each with Content-MD5, the whole
 * object's CRC combined from the parts' CRCs. Any failure aborts the multipart upload.
 *
 * Archive tiers: `setStorageClass` is a CopyObject onto the same key, conditional on the ETag
 * seen by a HEAD just before (so a concurrent replacement is never re-tiered by mistake); it
 * reports the size and CRC-64 a HEAD gives afterwards, which the caller checks. `requestThaw` is a RestoreObject;
 * HEAD's `x-oss-restore` (a listing's RestoreInfo) tells archived, thawing and readable apart.
 *
 * Aborting destroys the request bodies in flight (ali-oss has no cancellation of its own).
 * Errors are mapped from OSS error codes and HTTP statuses; their messages and causes are
 * rebuilt from plain facts, so neither the secret nor the STS token can leak through them.
 */

/** Credentials for OSS: an AccessKey pair, plus an STS token for temporary credentials. */
export interface OssCredentials {
  accessKeyId: string;
  accessKeySecret: string;
  securityToken?: string;
}

/** OSS storage classes an adapter can write objects in. */
export type OssStorageClass = 'Standard' | 'IA' | 'Archive' | 'ColdArchive';

export interface OssStorageOptions {
  bucket: string;
  /** Key prefix inside the bucket: `''` or ending with `/` (e.g. `backups/orders/`). */
  prefix?: string;
  /** Region id, with or without the `oss-` prefix: `cn-hangzhou` or `oss-cn-hangzhou`. */
  region: string;
  /** Endpoint overriding the region's public one, e.g. `oss-cn-hangzhou-internal.aliyuncs.com` or `http://127.0.0.1:9000`. */
  endpoint?: string;
  credentials: OssCredentials;
  /** Storage class of new objects (default Standard). Archive and ColdArchive objects need a restore before `get`. */
  storageClass?: OssStorageClass;
  /** Bytes per multipart part, and the largest body sent in one PutObject (default 8 MiB, at least 100 KiB). */
  partSize?: number;
  /** Parts uploaded at once (default 4), within storage-http-kit's `PART_MEMORY` (64 MiB) shared by the parts of all puts of the process. */
  parallel?: number;
  /** Request signature: `v4` (default, OSS4-HMAC-SHA256) or `v1` (HMAC-SHA1). */
  signatureVersion?: 'v1' | 'v4';
  /** HTTPS (default true) unless the endpoint names its protocol. */
  secure?: boolean;
  /** Timeout of each request in ms (default 60 000). */
  timeoutMs?: number;
  /** Called before a download cut mid-stream resumes (at most 3 times per `get`), e.g. to log it. */
  onRetry?: RetryOptions['onRetry'] | undefined;
}

/** What ali-oss answers with: status and lower-case headers. */
interface AliResponse {
  status: number;
  headers: Record<string, string | undefined>;
}

interface RequestOptions {
  headers?: Record<string, string>;
  mime?: string;
}

/** The part of the ali-oss client this adapter uses, typed after ali-oss 6's source. */
interface AliOssClient extends AliOssLifecycleClient {
  copy(name: string, sourceName: string, options: RequestOptions): Promise<{ res: AliResponse }>;
  restore(name: string, options: { type: string; Days: number; JobParameters?: string }): Promise<{ res: AliResponse }>;
  putStream(name: string, stream: Readable, options: RequestOptions & { contentLength: number }): Promise<{ res: AliResponse }>;
  head(name: string): Promise<{ res: AliResponse }>;
  getStream(name: string, options: RequestOptions): Promise<{ stream: Readable; res: AliResponse }>;
  listV2(query: Record<string, string | number>): Promise<{
    objects: {
      name: string;
      lastModified: string;
      etag: string;
      size: number;
      storageClass?: string;
      restoreInfo?: { ongoingRequest: boolean; expiryDate?: Date };
    }[];
    isTruncated: boolean;
    nextContinuationToken: string | null;
  }>;
  deleteMulti(names: string[], options: RequestOptions & { quiet: boolean }): Promise<unknown>;
  initMultipartUpload(name: string, options: RequestOptions): Promise<{ uploadId: string }>;
  uploadPart(
    name: string,
    uploadId: string,
    partNumber: number,
    stream: Readable,
    start: number,
    end: number,
    options: RequestOptions,
  ): Promise<{ etag: string; res: AliResponse }>;
  completeMultipartUpload(name: string, uploadId: string, parts: { number: number; etag: string }[], options: RequestOptions): Promise<{ res: AliResponse }>;
  abortMultipartUpload(name: string, uploadId: string): Promise<unknown>;
}

/** What an ali-oss (or urllib, or Node.js) error may carry. */
interface AliError {
  name?: unknown;
  message?: unknown;
  status?: unknown;
  code?: unknown;
  requestId?: unknown;
}

/** The largest part count OSS accepts. */
const MAX_PARTS = 10_000;
const MIN_PART_SIZE = 100 * 1024;
const LIST_PAGE = 1000;
const DELETE_BATCH = 1000;
const CRC_HEADER = 'x-oss-hash-crc64ecma';
const OCTET_STREAM = 'application/octet-stream';
/** Storage classes whose objects must be restored before they can be read, and how many days a restore lasts at most. */
const MAX_THAW_DAYS: Readonly<Record<string, number>> = { Archive: 7, ColdArchive: 365, DeepColdArchive: 365 };
const ARCHIVE_CLASSES = Object.keys(MAX_THAW_DAYS);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Aliyun's documented thaw times (the upper end) and minimum storage durations. */
const OSS_ARCHIVE_CLASS_FACTS: Readonly<Record<string, ArchiveClassFacts>> = {
  Archive: { thawMs: { expedited: MINUTE, standard: MINUTE, bulk: MINUTE }, minimumStorageDays: 60 },
  ColdArchive: { thawMs: { expedited: HOUR, standard: 5 * HOUR, bulk: 12 * HOUR }, minimumStorageDays: 180 },
  DeepColdArchive: { thawMs: { expedited: 12 * HOUR, standard: 48 * HOUR }, minimumStorageDays: 180 },
};
/** Classes `setStorageClass` moves objects to. */
const STORAGE_CLASSES = new Set(['Standard', 'IA', ...ARCHIVE_CLASSES]);
/** The largest object one CopyObject copies (larger ones need UploadPartCopy, not implemented). */
const MAX_COPY_SIZE = 5 * 1024 ** 3;
const THAW_TIERS: Readonly<Record<ThawTier, string>> = { expedited: 'Expedited', standard: 'Standard', bulk: 'Bulk' };
const PERMISSION_CODES = new Set([
  'AccessDenied',
  'SignatureDoesNotMatch',
  'InvalidAccessKeyId',
  'InvalidSecurityToken',
  'SecurityTokenExpired',
  'RequestTimeTooSkewed',
]);
/** urllib's names for requests that got no answer (ali-oss passes them on as `name`). */
const NETWORK_ERROR_NAMES = new Set(['ResponseTimeoutError', 'ConnectionTimeoutError', 'RequestError', 'ResponseError']);

/** A storage adapter over a bucket prefix of Aliyun OSS, through the ali-oss client. */
export class OssStorage implements StorageAdapter {
  readonly description: string;
  readonly capabilities: Capabilities = {
    serverChecksums: ['crc64ecma'],
    conditionalPut: true,
    rangeReads: true,
    maxParallelism: 16,
    archiveClasses: ARCHIVE_CLASSES,
    archiveClassFacts: OSS_ARCHIVE_CLASS_FACTS,
  };
  /** The bucket objects are stored in. */
  readonly bucket: string;
  /** Prepended to every key to form the object name: `''` or ending with `/`. */
  readonly prefix: string;

  /** The bucket's lifecycle rules for this prefix (see lifecycle.ts). */
  readonly lifecycle: BucketLifecycle;

  readonly #client: AliOssClient;
  readonly #agents: [HttpAgent, HttpsAgent];
  readonly #secrets: string[];
  readonly #storageClass: OssStorageClass;
  readonly #partSize: number;
  readonly #parallel: number;
  readonly #onRetry: RetryOptions['onRetry'];

  constructor(options: OssStorageOptions) {
    const prefix = options.prefix ?? '';
    assertValidPrefix(prefix);
    if (prefix !== '' && !prefix.endsWith('/')) throw new RangeError(`an OSS prefix ends with '/': '${prefix}'`);
    this.bucket = options.bucket;
    this.prefix = prefix;
    this.description = `oss://${options.bucket}/${prefix}`;
    this.#storageClass = options.storageClass ?? 'Standard';
    this.#partSize = options.partSize ?? 8 * 1024 * 1024;
    this.#parallel = options.parallel ?? 4;
    this.#onRetry = options.onRetry;
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < MIN_PART_SIZE) {
      throw new RangeError(`partSize must be an integer of at least ${MIN_PART_SIZE} bytes`);
    }
    if (!Number.isSafeInteger(this.#parallel) || this.#parallel < 1) throw new RangeError('parallel must be a positive integer');

    const { accessKeyId, accessKeySecret, securityToken } = options.credentials;
    this.#secrets = [accessKeySecret, securityToken ?? ''].filter((secret) => secret !== '');
    this.#agents = [
      new HttpAgent({ keepAlive: true, maxSockets: this.capabilities.maxParallelism }),
      new HttpsAgent({ keepAlive: true, maxSockets: this.capabilities.maxParallelism }),
    ];
    const region = options.region.replace(/^oss-/, '');
    const clientOptions = {
      accessKeyId,
      accessKeySecret,
      ...(securityToken ? { stsToken: securityToken, refreshSTSTokenInterval: Number.MAX_SAFE_INTEGER } : {}),
      bucket: options.bucket,
      region: `oss-${region}`,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      secure: options.secure ?? true,
      authorizationV4: (options.signatureVersion ?? 'v4') === 'v4',
      timeout: options.timeoutMs ?? 60_000,
      agent: this.#agents[0],
      httpsAgent: this.#agents[1],
      retryMax: 0,
    };
    this.#client = new OSS(clientOptions) as unknown as AliOssClient;
    this.lifecycle = ossLifecycle({
      client: this.#client,
      bucket: this.bucket,
      description: this.description,
      root: prefix,
      storageClasses: ARCHIVE_CLASSES,
      call: (operation, request, signal) => this.#call(operation, 'lifecycle', request, signal),
    });
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<StoredObject> {
    const name = this.#nameOf(key);
    throwIfAborted(options.signal, key);
    // Aborting (the caller's signal, or a failed part) destroys the body and requests in flight.
    const controller = new AbortController();
    const abort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', abort, { once: true });
    const source = destroyOnAbort(body.open(), controller.signal, key);
    const headers: Record<string, string> = {
      'x-oss-storage-class': this.#storageClass,
      ...(options.ifNoneMatch ? { 'x-oss-forbid-overwrite': 'true' } : {}),
    };
    try {
      return body.size <= this.#partSize
        ? await this.#putSimple(key, name, body, source, headers, controller.signal)
        : await this.#putMultipart(key, name, body, source, headers, controller);
    } catch (error) {
      throw options.signal?.aborted ? abortedError(key, options.signal.reason) : error;
    } finally {
      options.signal?.removeEventListener('abort', abort);
      source.destroy();
    }
  }

  /** One PutObject: the whole body is read and checked first, then sent with its Content-MD5. */
  #putSimple(key: string, name: string, body: PutBody, source: Readable, headers: Record<string, string>, signal: AbortSignal): Promise<StoredObject> {
    return PART_MEMORY.holding(body.size, () => this.#sendWhole(key, name, body, source, headers, signal));
  }

  async #sendWhole(key: string, name: string, body: PutBody, source: Readable, headers: Record<string, string>, signal: AbortSignal): Promise<StoredObject> {
    const reader = new PartReader(key, body, source, this.#partSize);
    const bytes = (await reader.nextPart()) ?? Buffer.alloc(0);
    await reader.finish();
    const crc = crc64ecma(bytes);
    assertDeclaredCrc(key, body, crc);
    const { res } = await this.#call('put', key, () =>
      this.#client.putStream(name, requestBody(bytes, signal, key), {
        contentLength: bytes.length,
        headers: { ...headers, 'Content-MD5': md5Base64(bytes) },
        mime: OCTET_STREAM,
      }),
    );
    return stored(key, bytes.length, res, crc);
  }

  /** A multipart upload: parts are sent as they are read, and completed only once the body checked out. */
  async #putMultipart(
    key: string,
    name: string,
    body: PutBody,
    source: Readable,
    headers: Record<string, string>,
    controller: AbortController,
  ): Promise<StoredObject> {
    // OSS takes at most 10,000 parts; a body too large for that many gets larger parts.
    const partSize = Math.max(this.#partSize, Math.ceil(body.size / MAX_PARTS));
    const { uploadId } = await this.#call('put', key, () => this.#client.initMultipartUpload(name, { headers, mime: OCTET_STREAM }));
    const parts: { number: number; etag: string; crc: string; size: number }[] = [];
    const window = new PartWindow(this.#parallel, controller);
    let completed = false;
    try {
      const reader = new PartReader(key, body, source, partSize);
      await uploadParts(reader, window, async (bytes, number) => {
        parts[number - 1] = await this.#uploadPart(key, name, uploadId, number, bytes, controller.signal);
      });
      await reader.finish();
      const crc = parts.reduce((whole, part) => crc64ecmaCombine(whole, part.crc, part.size), crc64ecma(new Uint8Array(0)));
      assertDeclaredCrc(key, body, crc);
      const { res } = await this.#call('put', key, () =>
        this.#client.completeMultipartUpload(
          name,
          uploadId,
          parts.map(({ number, etag }) => ({ number, etag })),
          { headers: headers['x-oss-forbid-overwrite'] ? { 'x-oss-forbid-overwrite': 'true' } : {} },
        ),
      );
      completed = true;
      return stored(key, body.size, res, crc);
    } catch (error) {
      const reason = await window.stop(error);
      if (!completed) {
        // Best effort: the error that got us here is the one to report.
        await this.#client.abortMultipartUpload(name, uploadId).catch(() => undefined);
      }
      throw reason;
    }
  }

  async #uploadPart(key: string, name: string, uploadId: string, number: number, bytes: Buffer, signal: AbortSignal) {
    const crc = crc64ecma(bytes);
    const result = await this.#call('put', key, () =>
      this.#client.uploadPart(name, uploadId, number, requestBody(bytes, signal, key), 0, bytes.length, {
        headers: { 'Content-MD5': md5Base64(bytes) },
      }),
    );
    return { number, etag: result.etag, crc, size: bytes.length };
  }

  /**
   * Streams the object, or `options.range` of it. A body cut mid-stream resumes from the byte after
   * the cut (see `resumableGet`); an object replaced in between fails the stream with `object_changed`.
   */
  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const name = this.#nameOf(key);
    throwIfAborted(options.signal, key);
    const { offset = 0, length } = options.range ?? {};
    if (![offset, length ?? 0].every((n) => Number.isSafeInteger(n) && n >= 0)) {
      throw new RangeError(`invalid range { offset: ${offset}, length: ${length} } for '${key}'`);
    }
    if (length === 0) {
      if (!(await this.stat(key, options))) throw objectNotFound(key, this.description);
      return destroyOnAbort(Readable.from([]), options.signal, key);
    }
    const ranged = offset > 0 || length !== undefined;
    const end = length === undefined ? '' : offset + length - 1;
    const headers: Record<string, string> = ranged ? { Range: `bytes=${offset}-${end}`, 'x-oss-range-behavior': 'standard' } : {};
    let result: { stream: Readable; res: AliResponse };
    try {
      // No signal here: a stream that arrives after an abort is destroyed below, by destroyOnAbort.
      result = await this.#call('get', key, () => this.#client.getStream(name, { headers }));
    } catch (error) {
      // A range starting at or past the end of an object that exists: nothing to read.
      if (error instanceof StorageError && error.context.status === 416) {
        return destroyOnAbort(Readable.from([]), options.signal, key);
      }
      throw await this.#explainGetError(key, name, error);
    }
    if (ranged && result.res.status !== 206) {
      result.stream.destroy();
      throw new StorageError(StorageErrorCode.Unsupported, `${this.description} ignored the byte range asked for '${key}'`, {
        context: { key, status: result.res.status },
      });
    }
    const etag = result.res.headers.etag;
    // A cut body goes on from a ranged GET of the rest of the same object (If-Match its ETag).
    const openAt = async (received: number): Promise<Readable> => {
      const from = offset + received;
      const rest = await this.#call('get', key, () =>
        this.#client.getStream(name, {
          headers: { Range: `bytes=${from}-${end}`, 'x-oss-range-behavior': 'standard', ...(etag && { 'If-Match': etag }) },
        }),
      ).catch((error: unknown) => {
        const status = error instanceof StorageError ? error.context.status : undefined;
        throw status === 412 || status === 404 ? objectChanged(key, this.description, received, error) : error;
      });
      if (rest.res.status === 206 && rest.res.headers['content-range']?.startsWith(`bytes ${from}-`)) return rest.stream;
      rest.stream.destroy();
      throw new StorageError(
        StorageErrorCode.Transient,
        `the download of '${key}' from ${this.description} broke after ${received} bytes, and the server answered its resume without the range asked for`,
        { context: { key, received, status: rest.res.status } },
      );
    };
    const contentLength = Number(result.res.headers['content-length']);
    const output = resumableGet(result.stream, {
      key,
      length: Number.isSafeInteger(contentLength) ? contentLength : undefined,
      openAt,
      onRetry: this.#onRetry,
      toError: (error) => this.#error(error, 'get', key),
    });
    return destroyOnAbort(output, options.signal, key);
  }

  /**
   * ali-oss reads no error document for a streamed GET, so a failed get reports only its HTTP
   * status. For a 403 a HEAD tells more: its error code arrives in `x-oss-err`, and an object that
   * HEAD can see but GET cannot read is in a cold storage class that needs a restore.
   */
  async #explainGetError(key: string, name: string, error: unknown): Promise<unknown> {
    if (!(error instanceof StorageError) || error.context.status !== 403 || error.context.ossCode !== undefined) return error;
    let head: AliResponse;
    try {
      head = (await this.#client.head(name)).res;
    } catch (headError) {
      return this.#error(headError, 'get', key);
    }
    const info = this.#infoOf(key, head);
    if (info.archive === undefined || info.archive.state === 'readable') return error;
    return objectArchived(key, this.description, info.storageClass!, info.archive.state);
  }

  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    const name = this.#nameOf(key);
    let res: AliResponse;
    try {
      ({ res } = await this.#call('stat', key, () => this.#client.head(name), options.signal));
    } catch (error) {
      if (error instanceof StorageError && error.code === StorageErrorCode.ObjectNotFound) return undefined;
      throw error;
    }
    return this.#infoOf(key, res);
  }

  /** The facts a HEAD answer gives about `key`. */
  #infoOf(key: string, res: AliResponse): ObjectInfo {
    const crc = res.headers[CRC_HEADER];
    const storageClass = res.headers['x-oss-storage-class'];
    return {
      key,
      size: Number(res.headers['content-length']),
      modified: new Date(res.headers['last-modified'] ?? Number.NaN),
      ...etagOf(res.headers.etag),
      checksums: crc === undefined ? {} : { crc64ecma: crc },
      ...classFacts(storageClass, parseRestore(res.headers['x-oss-restore'])),
    };
  }

  /**
   * CopyObject onto the same key with the new class, if the ETag is still the one a HEAD just
   * saw; then a HEAD must report the new class. Its size and CRC-64 are reported as they are, for
   * the caller to check (core against the manifest).
   */
  async setStorageClass(key: string, storageClass: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo> {
    const name = this.#nameOf(key);
    if (!STORAGE_CLASSES.has(storageClass)) {
      throw new StorageError(StorageErrorCode.Unsupported, `OSS has no storage class '${storageClass}' (use one of ${[...STORAGE_CLASSES].join(', ')})`, {
        context: { key, storageClass },
      });
    }
    const before = await this.stat(key, options);
    if (!before) throw objectNotFound(key, this.description);
    if (before.storageClass === storageClass) return before;
    if (before.archive !== undefined && before.archive.state !== 'readable') {
      throw objectArchived(key, this.description, before.storageClass!, before.archive.state);
    }
    if (before.size > MAX_COPY_SIZE) {
      throw new StorageError(
        StorageErrorCode.Unsupported,
        `'${key}' at ${this.description} is larger than 5 GiB, which one CopyObject cannot re-tier; use a bucket lifecycle rule`,
        { context: { key, size: before.size } },
      );
    }
    try {
      await this.#call(
        'setStorageClass',
        key,
        () =>
          this.#client.copy(name, name, {
            headers: {
              'x-oss-storage-class': storageClass,
              'x-oss-metadata-directive': 'COPY',
              ...(before.etag === undefined ? {} : { 'x-oss-copy-source-if-match': `"${before.etag}"` }),
            },
          }),
        options.signal,
      );
    } catch (error) {
      if (!(error instanceof StorageError && error.context.ossCode === 'PreconditionFailed')) throw error;
      throw new StorageError(
        StorageErrorCode.Unavailable,
        `'${key}' at ${this.description} was replaced while it was being moved to ${storageClass}; ` +
          'the new object was left as it is: check it, then try again',
        { context: { key, storageClass }, cause: error },
      );
    }
    const after = await this.stat(key, options);
    if (!after) throw objectNotFound(key, this.description);
    if (after.storageClass !== storageClass) {
      throw new StorageError(
        StorageErrorCode.Unavailable,
        `${this.description} kept '${key}' in ${after.storageClass ?? 'an unreported class'} instead of ${storageClass}`,
        { context: { key, storageClass } },
      );
    }
    return after;
  }

  /**
   * RestoreObject for `days` (capped at what the class allows: 7 for Archive, 365 otherwise);
   * an object already thawing or readable is left as it is.
   */
  async requestThaw(key: string, options: ThawOptions): Promise<ObjectInfo> {
    const name = this.#nameOf(key);
    const { tier = 'standard', days, signal } = options;
    if (!Number.isSafeInteger(days) || days < 1) throw new RangeError(`days must be a positive integer, not ${days}`);
    const info = await this.stat(key, { ...(signal && { signal }) });
    if (!info) throw objectNotFound(key, this.description);
    if (info.archive === undefined) {
      throw new StorageError(
        StorageErrorCode.Unsupported,
        `'${key}' at ${this.description} is in the ${info.storageClass ?? 'Standard'} storage class, which needs no thaw`,
        { context: { key, storageClass: info.storageClass } },
      );
    }
    if (info.archive.state !== 'archived') return info;
    const storageClass = info.storageClass!;
    await this.#call(
      'requestThaw',
      key,
      () =>
        this.#client
          .restore(name, { type: storageClass, Days: Math.min(days, MAX_THAW_DAYS[storageClass]!), JobParameters: THAW_TIERS[tier] })
          .catch((error: AliError) => {
            // Someone else's thaw got there first: 409 while under way, 200 once done (ali-oss expects only 202).
            if (error.status === 200 || error.code === 'RestoreAlreadyInProgress') return undefined;
            throw error;
          }),
      signal,
    );
    const after = await this.stat(key, { ...(signal && { signal }) });
    if (!after) throw objectNotFound(key, this.description);
    return after;
  }

  /** ListObjectsV2, 1,000 keys a page; folder placeholders (keys ending in `/`) are not objects here. */
  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    const fullPrefix = this.prefix + prefix;
    let token: string | undefined;
    do {
      const query = {
        'max-keys': LIST_PAGE,
        ...(fullPrefix === '' ? {} : { prefix: fullPrefix }),
        ...(token === undefined ? {} : { 'continuation-token': token }),
      };
      const page = await this.#call('list', prefix, () => this.#client.listV2(query), options.signal);
      for (const object of page.objects) {
        if (object.name.endsWith('/')) continue;
        yield {
          key: object.name.slice(this.prefix.length),
          size: object.size,
          modified: new Date(object.lastModified),
          ...etagOf(object.etag),
          checksums: {},
          ...classFacts(object.storageClass, object.restoreInfo && { ongoing: object.restoreInfo.ongoingRequest, expires: object.restoreInfo.expiryDate }),
        };
      }
      if (page.isTruncated && !page.nextContinuationToken) {
        const message = `${this.description} sent a truncated listing without a continuation token`;
        throw new StorageError(StorageErrorCode.Unavailable, message, { context: { prefix } });
      }
      token = page.isTruncated ? page.nextContinuationToken! : undefined;
    } while (token !== undefined);
  }

  /** DeleteMultipleObjects in quiet mode, 1,000 keys a request. */
  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    const names = keys.map((key) => this.#nameOf(key));
    for (let start = 0; start < names.length; start += DELETE_BATCH) {
      const batch = names.slice(start, start + DELETE_BATCH);
      await this.#call('delete', keys[start]!, () => this.#client.deleteMulti(batch, { quiet: true }), options.signal);
    }
  }

  async close(): Promise<void> {
    for (const agent of this.#agents) agent.destroy();
  }

  /** The object name of `key`, after checking the key. */
  #nameOf(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }

  /** Runs one ali-oss request, mapping its errors; checks `signal` before and after. */
  async #call<T>(operation: string, key: string, request: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    throwIfAborted(signal, key);
    let result: T;
    try {
      result = await request();
    } catch (error) {
      throw signal?.aborted ? abortedError(key, signal.reason) : this.#error(error, operation, key);
    }
    throwIfAborted(signal, key);
    return result;
  }

  /** Maps an ali-oss, urllib or Node.js error onto a StorageError whose message holds no secret. */
  #error(error: unknown, operation: string, key: string): StorageError {
    if (error instanceof StorageError) return error;
    const { name, message, status, code, requestId } = (error ?? {}) as AliError;
    const httpStatus = typeof status === 'number' ? status : undefined;
    // Only an answer from the server carries an OSS error code (ali-oss copies network error names into `code`).
    const ossCode = httpStatus !== undefined && httpStatus > 0 && typeof code === 'string' ? code : undefined;
    const facts = {
      key,
      operation,
      ...(httpStatus === undefined ? {} : { status: httpStatus }),
      ...(ossCode === undefined ? {} : { ossCode }),
      ...(typeof requestId === 'string' ? { requestId } : {}),
    };
    // urllib appends the request line, timings and headers to the first line; keep the first line's start.
    const firstLine = String(message ?? error).split('\n')[0]!;
    const summary = this.#redact(firstLine.replace(/, (GET|PUT|POST|HEAD|DELETE) \S+ .*$/, ''));
    const errorName = typeof name === 'string' ? name : undefined;
    const label = `${ossCode ?? errorName ?? 'error'}${httpStatus && httpStatus > 0 ? ` (HTTP ${httpStatus})` : ''}`;
    const storageCode = storageCodeOf(ossCode, httpStatus, errorName, isNetworkError(error));
    const where = `'${key}' at ${this.description}`;
    let text = `${operation} ${where} failed: ${label}: ${summary}`;
    if (storageCode === StorageErrorCode.ObjectNotFound) text = `no object ${where}`;
    else if (storageCode === StorageErrorCode.AlreadyExists) text = `${where} already exists`;
    else if (ossCode === 'NoSuchBucket') {
      text = `the bucket '${this.bucket}' does not exist (${operation} ${where}); create it or correct the URL`;
    }
    return new StorageError(storageCode, text, { context: facts, cause: Object.assign(new Error(summary), facts) });
  }

  /** Blanks out the secret and the STS token should any text ever contain them. */
  #redact(text: string): string {
    return this.#secrets.reduce((redacted, secret) => redacted.split(secret).join('[redacted]'), text);
  }
}

/** The storage error code of an OSS error code, HTTP status (-1/-2: no answer), error name, or a broken connection. */
function storageCodeOf(ossCode: string | undefined, status: number | undefined, name: string | undefined, brokenConnection: boolean): StorageErrorCode {
  if (ossCode === 'NoSuchKey' || (ossCode === undefined && status === 404)) return StorageErrorCode.ObjectNotFound;
  if (ossCode === 'FileAlreadyExists') return StorageErrorCode.AlreadyExists;
  if (ossCode === 'InvalidObjectName') return StorageErrorCode.InvalidKey;
  if (ossCode === 'InvalidObjectState') return StorageErrorCode.ObjectArchived;
  if ((ossCode !== undefined && PERMISSION_CODES.has(ossCode)) || status === 401 || status === 403) {
    return StorageErrorCode.PermissionDenied;
  }
  const unanswered = status === -1 || status === -2 || (name !== undefined && NETWORK_ERROR_NAMES.has(name));
  if (unanswered || status === 429 || (status !== undefined && status >= 500) || brokenConnection) {
    return StorageErrorCode.Transient;
  }
  return StorageErrorCode.Unavailable;
}

/** What a put resolves with: the CRC-64 the server reports for what it stored, and the one of the bytes sent. */
function stored(key: string, size: number, res: AliResponse, sent: string): StoredObject {
  const reported = res.headers[CRC_HEADER];
  return {
    key,
    size,
    modified: dateOf(res),
    ...etagOf(res.headers.etag),
    checksums: reported === undefined ? {} : { crc64ecma: reported },
    sent: { crc64ecma: sent },
  };
}

/** A request body over `bytes` that is destroyed (failing its request) when `signal` aborts. */
function requestBody(bytes: Buffer, signal: AbortSignal, key: string): Readable {
  return destroyOnAbort(Readable.from([bytes], { objectMode: false }), signal, key);
}

function assertDeclaredCrc(key: string, body: PutBody, crc: string): void {
  if (body.crc64ecma !== undefined && body.crc64ecma !== crc) {
    throw checksumMismatch(key, `the body for '${key}' was declared with CRC-64 ${body.crc64ecma} but the bytes read have CRC-64 ${crc}`);
  }
}

function checksumMismatch(key: string, message: string): StorageError {
  return new StorageError(StorageErrorCode.ChecksumMismatch, message, { context: { key } });
}

function md5Base64(bytes: Buffer): string {
  return createHash('md5').update(bytes).digest('base64');
}

/** A restore as `x-oss-restore` or a listing's RestoreInfo describes it. */
interface RestoreFacts {
  ongoing: boolean;
  expires: Date | undefined;
}

/** `ongoing-request="true"`, or `ongoing-request="false", expiry-date="<HTTP date>"`. */
function parseRestore(header: string | undefined): RestoreFacts | undefined {
  if (header === undefined) return undefined;
  const expiry = /expiry-date="([^"]+)"/.exec(header)?.[1];
  return { ongoing: /ongoing-request="true"/.test(header), expires: expiry === undefined ? undefined : new Date(expiry) };
}

/** `storageClass`, and `archive` for an object in an archive class. */
function classFacts(storageClass: string | undefined, restore: RestoreFacts | undefined): Pick<ObjectInfo, 'storageClass' | 'archive'> {
  if (storageClass === undefined) return {};
  if (!(storageClass in MAX_THAW_DAYS)) return { storageClass };
  if (restore === undefined) return { storageClass, archive: { state: 'archived' } };
  if (restore.ongoing) return { storageClass, archive: { state: 'thawing' } };
  const thawExpires = restore.expires !== undefined && !Number.isNaN(restore.expires.getTime()) ? restore.expires : undefined;
  return { storageClass, archive: { state: 'readable', ...(thawExpires && { thawExpires }) } };
}

/** `{ etag }` without OSS's quotes, or nothing. */
function etagOf(etag: string | undefined): { etag?: string } {
  return etag ? { etag: etag.replace(/^"|"$/g, '') } : {};
}

/** When the server answered, by its Date header (the object's Last-Modified is not in a write's answer). */
function dateOf(res: AliResponse): Date {
  const date = new Date(res.headers.date ?? Number.NaN);
  return Number.isNaN(date.getTime()) ? new Date() : date;
}
