import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type HeadObjectCommandOutput,
  type S3Client,
  type _Object,
} from '@aws-sdk/client-s3';
import {
  StorageError,
  StorageErrorCode,
  abortedError,
  assertValidKey,
  objectChanged,
  assertValidPrefix,
  destroyOnAbort,
  isObjectNotFound,
  objectNotFound,
  throwIfAborted,
  type BucketLifecycle,
  type Capabilities,
  type GetOptions,
  type ObjectChecksums,
  type ObjectInfo,
  type PutBody,
  type PutOptions,
  type StorageAdapter,
  type StoredObject,
  type RetryOptions,
  type ThawOptions,
} from '@stowage/storage';
import { s3Lifecycle } from './lifecycle.js';
import { archiveFacts, requestS3Thaw, S3_ARCHIVE_CLASS_FACTS, S3_ARCHIVE_CLASSES, setS3StorageClass, type S3ArchiveContext } from './archive.js';
import { base64ToHex, checksumsOf, crc64nvmeBase64, sha256Composite, type ChecksumMode } from './checksums.js';
import { toStorageError, type S3Operation } from './errors.js';
import { CRC64_NVME, PART_MEMORY, PartReader, PartWindow, resumableGet, uploadParts } from '@stowage/storage-http-kit';

/*
 * Design: an object is the S3 object `<prefix>/<key>`. A put reads the body into memory one part
 * at a time (counting and SHA-256-hashing it) and checks it against its declared size and SHA-256
 * before anything becomes visible: a body of at most one part is checked before its single
 * PutObject; a larger one goes up as a multipart upload that is completed only after the check
 * (and aborted on any failure, so no parts are left behind). Every request body is an in-memory
 * buffer sent with the configured flexible checksum (Content-MD5 in mode `none`), which the
 * endpoint checks on receipt, which the SDK can retry and never re-encodes as `aws-chunked`, and signed without
 * a payload hash (`UNSIGNED-PAYLOAD`: those checksums prove the bytes, not the signature). The
 * put reports the full-object checksum it sent; whether the stored object matches is the
 * engine's call, from `stat` (HeadObject with ChecksumMode ENABLED), which reports the
 * endpoint's own checksum.
 */

const MiB = 1024 * 1024;
/** S3's smallest part (except the last) and largest number of parts in a multipart upload. */
const MIN_PART_SIZE = 5 * MiB;
const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PARTS = 10_000;
/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;
/** Keys starting with this are the probe's temporary objects: reserved, and never listed. */
export const PROBE_KEY_PREFIX = '.stowage-probe-';

/** S3 storage classes an adapter can write objects with. */
export const S3_STORAGE_CLASSES = ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'] as const;
export type S3StorageClass = (typeof S3_STORAGE_CLASSES)[number];

/** Settings of an `S3Storage` (the factory derives them from a destination's URL and options). */
export interface S3StorageOptions {
  /** The SDK client; the adapter owns it and destroys it in `close()`. */
  client: S3Client;
  bucket: string;
  /** The folder in the bucket, without leading or trailing `/` (default: the whole bucket). */
  prefix?: string;
  /** For messages (default `s3://<bucket>/<prefix>`); must not contain a secret. */
  description?: string;
  /** The checksum sent with each upload and expected back from HeadObject (default `crc64nvme`). */
  checksumMode?: ChecksumMode;
  /** The endpoint enforces `If-None-Match: *` on writes (default true, as AWS does). */
  conditionalWrites?: boolean;
  /** Storage class of new objects (default: the bucket's, normally STANDARD). */
  storageClass?: S3StorageClass | undefined;
  /** Server-side encryption of new objects. */
  sse?: 'AES256' | 'aws:kms' | undefined;
  /** The KMS key for `sse: 'aws:kms'` (default: the account's AWS-managed key). */
  kmsKeyId?: string | undefined;
  /** Bytes per multipart part, at least 5 MiB (default 16 MiB); bodies up to this size go up in one PutObject. */
  partSize?: number;
  /**
   * Parts of one upload in flight at once (default 4); memory use is about (queueSize + 1) × partSize
   * per put, and the parts of all puts of the process share storage-http-kit's `PART_MEMORY` (64 MiB).
   */
  queueSize?: number;
  /** ListObjectsV2 (default) or the older ListObjects with markers, for endpoints whose V2 paging is broken. */
  listApi?: 'v2' | 'v1';
  /** Keys per listing request, 1–1000 (default 1000). */
  listPageSize?: number;
  /** The `maxParallelism` capability (default 8). */
  maxParallelism?: number;
  /** Called before a download cut mid-stream resumes (at most 3 times per `get`), e.g. to log it. */
  onRetry?: RetryOptions['onRetry'] | undefined;
}

/** What an upload sent, and the ETag it was answered with. */
interface Sent {
  etag: string | undefined;
  /** Base64 full-object checksum sent under the configured mode (none for a multipart `sha256` upload). */
  checksum: string | undefined;
  /** A multipart `sha256` upload's composite checksum, from the part SHA-256s sent (as S3 reports it). */
  composite?: string;
}

/** A storage adapter over an S3 bucket (AWS or an S3-compatible endpoint); keys map to `<prefix>/<key>`. */
export class S3Storage implements StorageAdapter {
  /** `s3://<bucket>/<prefix>` (the factory adds the endpoint or region). */
  readonly description: string;
  /** Server checksums per `checksumMode`, conditional puts per `conditionalWrites`, range reads. */
  readonly capabilities: Capabilities;
  /** The SDK client the adapter sends its requests with. */
  readonly client: S3Client;
  readonly bucket: string;
  /** The folder in the bucket, without leading or trailing `/`; `''` for the whole bucket. */
  readonly prefix: string;
  /** The checksum mode this adapter uploads with. */
  readonly checksumMode: ChecksumMode;
  readonly #root: string;
  readonly #partSize: number;
  readonly #queueSize: number;
  readonly #listApi: 'v2' | 'v1';
  readonly #listPageSize: number;
  readonly #writeParams: {
    StorageClass?: S3StorageClass;
    ServerSideEncryption?: 'AES256' | 'aws:kms';
    SSEKMSKeyId?: string;
    ContentType: string;
  };
  readonly #archive: S3ArchiveContext;
  /** The bucket's lifecycle rules for this prefix (see lifecycle.ts). */
  readonly lifecycle: BucketLifecycle;
  readonly #onRetry: RetryOptions['onRetry'];
  #bucketConfirmed = false;

  constructor(options: S3StorageOptions) {
    const prefix = options.prefix ?? '';
    const invalid = (message: string) => new StorageError(StorageErrorCode.InvalidConfig, message, { context: { bucket: options.bucket, prefix } });
    if (prefix.startsWith('/') || prefix.endsWith('/')) throw invalid(`invalid S3 prefix '${prefix}': it must not start or end with '/'`);
    try {
      assertValidPrefix(prefix);
    } catch (cause) {
      throw new StorageError(StorageErrorCode.InvalidConfig, `invalid S3 prefix '${prefix}'`, { context: { prefix }, cause });
    }
    const partSize = options.partSize ?? 16 * MiB;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
      throw invalid(`partSize must be a whole number of bytes from 5 MiB to 5 GiB, not ${partSize}`);
    }
    if (options.kmsKeyId !== undefined && options.sse !== 'aws:kms') throw invalid(`kmsKeyId needs sse: 'aws:kms'`);

    this.client = options.client;
    this.bucket = options.bucket;
    this.prefix = prefix;
    this.#root = prefix === '' ? '' : `${prefix}/`;
    this.description = options.description ?? `s3://${options.bucket}/${prefix}`;
    this.checksumMode = options.checksumMode ?? 'crc64nvme';
    this.#partSize = partSize;
    this.#onRetry = options.onRetry;
    this.#queueSize = Math.max(1, options.queueSize ?? 4);
    this.#listApi = options.listApi ?? 'v2';
    this.#listPageSize = Math.min(1000, Math.max(1, options.listPageSize ?? 1000));
    this.#writeParams = {
      ContentType: 'application/octet-stream',
      ...(options.storageClass && { StorageClass: options.storageClass }),
      ...(options.sse && { ServerSideEncryption: options.sse }),
      ...(options.kmsKeyId && { SSEKMSKeyId: options.kmsKeyId }),
    };
    this.capabilities = {
      serverChecksums: this.checksumMode === 'none' ? [] : [this.checksumMode],
      conditionalPut: options.conditionalWrites ?? true,
      rangeReads: true,
      maxParallelism: Math.max(1, options.maxParallelism ?? 8),
      archiveClasses: S3_ARCHIVE_CLASSES,
      archiveClassFacts: S3_ARCHIVE_CLASS_FACTS,
    };
    this.#archive = {
      client: this.client,
      bucket: this.bucket,
      description: this.description,
      storageClasses: S3_STORAGE_CLASSES,
      objectKey: (key) => this.#objectKey(key),
      stat: (key, opts) => this.stat(key, opts),
      op: (operation, key, signal) => this.#op(operation, key, signal),
    };
    this.lifecycle = s3Lifecycle({ ...this.#archive, root: this.#root });
    signUploadsWithoutPayloadHash(this.client);
  }

  /** CopyObject onto the same key with the new class, checked by size and full-object checksum (see archive.ts). */
  async setStorageClass(key: string, storageClass: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo> {
    return setS3StorageClass(this.#archive, key, storageClass, options.signal);
  }

  /** RestoreObject with the tier and days asked for, unless a thaw is under way or done (see archive.ts). */
  async requestThaw(key: string, options: ThawOptions): Promise<ObjectInfo> {
    return requestS3Thaw(this.#archive, key, options);
  }

  /**
   * Uploads `body` (one PutObject up to `partSize`, a multipart upload above). Resolves with the
   * stored object's ETag, no checksums of the endpoint's (the write's answer only echoes what was
   * sent: `stat` asks for them) and, in `crc64nvme` mode, the full-object CRC-64/NVME sent; in
   * `sha256` mode, a multipart upload's composite checksum of the part SHA-256s sent.
   */
  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<StoredObject> {
    const objectKey = this.#objectKey(key);
    const op = this.#op('put', key, options.signal);
    throwIfAborted(options.signal, key);
    if (options.ifNoneMatch && !this.capabilities.conditionalPut) {
      throw new StorageError(
        StorageErrorCode.Unsupported,
        `put '${key}' with ifNoneMatch: ${this.description} is configured without conditional writes (conditionalWrites: false)`,
        { context: { key, bucket: this.bucket } },
      );
    }
    try {
      const sent =
        body.size <= this.#partSize
          ? await this.#putSimple(objectKey, body, op, options.ifNoneMatch === true)
          : await this.#putMultipart(objectKey, body, op, options.ifNoneMatch === true);
      return {
        key,
        size: body.size,
        modified: new Date(),
        ...(sent.etag !== undefined && { etag: sent.etag }),
        checksums: {},
        sent: {
          ...(this.checksumMode === 'crc64nvme' && sent.checksum !== undefined && { crc64nvme: sent.checksum }),
          ...(sent.composite !== undefined && { sha256Composite: sent.composite }),
        },
      };
    } catch (error) {
      if (error instanceof StorageError) throw error;
      if (options.signal?.aborted || (error as Error | undefined)?.name === 'AbortError') throw abortedError(key, error);
      throw error; // the body's own stream failed: its error, as it is
    }
  }

  /**
   * Streams the object, or `options.range` of it; rejects with `object_not_found` before any byte.
   * A body cut mid-stream resumes from the byte after the cut (see `resumableGet`); an object
   * replaced in between fails the stream with `object_changed`.
   */
  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const objectKey = this.#objectKey(key);
    const op = this.#op('get', key, options.signal);
    throwIfAborted(options.signal, key);
    const { offset = 0, length } = options.range ?? {};
    if (![offset, length ?? 0].every((n) => Number.isSafeInteger(n) && n >= 0)) {
      throw new RangeError(`invalid range { offset: ${offset}, length: ${length} } for '${key}'`);
    }
    if (length === 0) {
      // No HTTP range means zero bytes; only whether the object exists matters.
      if (!(await this.stat(key, { signal: options.signal }))) throw objectNotFound(key, this.description);
      return destroyOnAbort(Readable.from([]), options.signal, key);
    }
    const end = length === undefined ? '' : offset + length - 1;
    const range = options.range ? `bytes=${offset}-${end}` : undefined;
    let response;
    try {
      response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: range }), sdkOptions(options.signal));
    } catch (error) {
      // A range starting at or after the end of an existing object (S3 answers 416): no bytes.
      if (range && httpStatusOf(error) === 416) return destroyOnAbort(Readable.from([]), options.signal, key);
      throw toStorageError(error, op);
    }
    const etag = response.ETag;
    // A cut body goes on from a ranged GET of the rest of the same object (If-Match its ETag).
    const openAt = async (received: number): Promise<Readable> => {
      try {
        const rest = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: `bytes=${offset + received}-${end}`, IfMatch: etag }),
          sdkOptions(options.signal),
        );
        if (rest.ContentRange?.startsWith(`bytes ${offset + received}-`)) return rest.Body as Readable;
        (rest.Body as Readable | undefined)?.destroy();
      } catch (error) {
        const mapped = toStorageError(error, op);
        throw httpStatusOf(error) === 412 || isObjectNotFound(mapped) ? objectChanged(key, this.description, received, error) : mapped;
      }
      throw new StorageError(
        StorageErrorCode.Transient,
        `the download of '${key}' from ${this.description} broke after ${received} bytes, and the endpoint answered its resume without the range asked for`,
        {
          context: { key, received },
        },
      );
    };
    const output = resumableGet(response.Body as Readable, {
      key,
      length: response.ContentLength,
      openAt,
      onRetry: this.#onRetry,
      toError: (error) => toStorageError(error, op),
    });
    return destroyOnAbort(output, options.signal, key);
  }

  /** HeadObject with `ChecksumMode: ENABLED`; `checksums` holds the full-object checksums S3 reports. */
  async stat(key: string, options: { signal?: AbortSignal | undefined } = {}): Promise<ObjectInfo | undefined> {
    const objectKey = this.#objectKey(key);
    const op = this.#op('stat', key, options.signal);
    throwIfAborted(options.signal, key);
    try {
      const head = await this.#call(op, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey, ChecksumMode: 'ENABLED' }), sdkOptions(options.signal)),
      );
      return infoFromHead(key, head);
    } catch (error) {
      if (!isObjectNotFound(error)) throw error;
      // HeadObject answers a bare 404 for a missing bucket too: tell the two apart once.
      await this.#assertBucketExists(op);
      return undefined;
    }
  }

  /** Pages through ListObjectsV2 (or ListObjects with `listApi: 'v1'`); objects carry no checksums. */
  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    const op = this.#op('list', prefix, options.signal);
    const Prefix = this.#root + prefix;
    let token: string | undefined;
    do {
      throwIfAborted(options.signal, prefix);
      const page =
        this.#listApi === 'v2'
          ? await this.#call(op, () =>
              this.client.send(
                new ListObjectsV2Command({ Bucket: this.bucket, Prefix, MaxKeys: this.#listPageSize, ContinuationToken: token }),
                sdkOptions(options.signal),
              ),
            ).then((out) => ({ contents: out.Contents, next: out.NextContinuationToken, truncated: out.IsTruncated }))
          : await this.#call(op, () =>
              this.client.send(new ListObjectsCommand({ Bucket: this.bucket, Prefix, MaxKeys: this.#listPageSize, Marker: token }), sdkOptions(options.signal)),
            ).then((out) => ({ contents: out.Contents, next: out.NextMarker ?? out.Contents?.at(-1)?.Key, truncated: out.IsTruncated }));
      for (const object of page.contents ?? []) {
        const info = this.#infoFromListing(object);
        if (info) yield info;
      }
      if (page.truncated && !page.next) {
        throw toStorageError(new Error('the endpoint cut the listing short without saying where to go on'), op);
      }
      token = page.truncated ? page.next : undefined;
    } while (token !== undefined);
  }

  /** DeleteObjects in batches of 1,000; keys that do not exist are fine. */
  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    const objectKeys = [...new Set(keys.map((key) => this.#objectKey(key)))];
    throwIfAborted(options.signal);
    for (let start = 0; start < objectKeys.length; start += DELETE_BATCH) {
      const batch = objectKeys.slice(start, start + DELETE_BATCH);
      const op = this.#op('delete', batch.length === 1 ? batch[0]!.slice(this.#root.length) : undefined, options.signal);
      const out = await this.#call(op, () =>
        this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          sdkOptions(options.signal),
        ),
      );
      const failure = out.Errors?.find((error) => error.Code !== 'NoSuchKey');
      if (failure) {
        throw toStorageError({ name: failure.Code, Code: failure.Code, message: failure.Message }, { ...op, key: failure.Key?.slice(this.#root.length) });
      }
    }
  }

  /** Destroys the SDK client (its sockets); the adapter is unusable afterwards. */
  async close(): Promise<void> {
    this.client.destroy();
  }

  /** One PutObject of the whole (checked) body. */
  #putSimple(objectKey: string, body: PutBody, op: S3Operation, ifNoneMatch: boolean): Promise<Sent> {
    return PART_MEMORY.holding(body.size, async () => this.#sendWhole(objectKey, await readWhole(body, op, this.#partSize), op, ifNoneMatch));
  }

  async #sendWhole(objectKey: string, data: Buffer, op: S3Operation, ifNoneMatch: boolean): Promise<Sent> {
    const sums = checksumsOf(data, this.checksumMode);
    const out = await this.#call(op, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: objectKey,
          Body: data,
          ContentLength: data.length,
          ContentMD5: sums.md5,
          ChecksumSHA256: sums.sha256,
          ChecksumCRC64NVME: sums.crc64nvme,
          IfNoneMatch: ifNoneMatch ? '*' : undefined,
          ...this.#writeParams,
        }),
        sdkOptions(op.signal),
      ),
    );
    return { etag: out.ETag, checksum: sums.sha256 ?? sums.crc64nvme };
  }

  /** A multipart upload, completed only once the whole body has passed its check; aborted on any failure. */
  async #putMultipart(objectKey: string, body: PutBody, op: S3Operation, ifNoneMatch: boolean): Promise<Sent> {
    // Keep within S3's 10,000 parts: grow the part size (in whole MiB) for very large bodies.
    const partSize = Math.max(this.#partSize, Math.ceil(body.size / MAX_PARTS / MiB) * MiB);
    if (ifNoneMatch && (await this.stat(op.key!, { signal: op.signal }))) {
      throw toStorageError({ name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } }, op);
    }
    const mode = this.checksumMode;
    const created = await this.#call(op, () =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ...this.#writeParams,
          ...(mode === 'sha256' && { ChecksumAlgorithm: 'SHA256', ChecksumType: 'COMPOSITE' }),
          ...(mode === 'crc64nvme' && { ChecksumAlgorithm: 'CRC64NVME', ChecksumType: 'FULL_OBJECT' }),
        }),
        sdkOptions(op.signal),
      ),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw toStorageError(new Error('CreateMultipartUpload returned no upload id'), op);

    const parts: CompletedPart[] = [];
    /** Each part's CRC-64/NVME and size (mode `crc64nvme`), combined into the full object's at the end. */
    const partCrcs: Array<{ crc: bigint; size: number }> = [];
    // Aborts the parts in flight and the body when one fails or the caller aborts.
    const window = new PartWindow(this.#queueSize, new AbortController());
    const stopParts = window.controller.signal;
    const onAbort = () => window.controller.abort(op.signal?.reason);
    op.signal?.addEventListener('abort', onAbort, { once: true });
    const source = destroyOnAbort(body.open(), stopParts, op.key!);

    const uploadPart = async (data: Buffer, PartNumber: number): Promise<void> => {
      const sums = checksumsOf(data, mode);
      if (sums.crc !== undefined) partCrcs[PartNumber - 1] = { crc: sums.crc, size: data.length };
      const out = await this.#call(op, () =>
        this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: uploadId,
            PartNumber,
            Body: data,
            ContentLength: data.length,
            ContentMD5: sums.md5,
            ChecksumSHA256: sums.sha256,
            ChecksumCRC64NVME: sums.crc64nvme,
          }),
          { abortSignal: stopParts },
        ),
      );
      parts[PartNumber - 1] = { PartNumber, ETag: out.ETag, ChecksumSHA256: sums.sha256, ChecksumCRC64NVME: sums.crc64nvme };
    };

    try {
      const reader = new PartReader(op.key!, body, source, partSize);
      await uploadParts(reader, window, uploadPart);
      await reader.finish();
      const fullCrc = mode === 'crc64nvme' ? crc64nvmeBase64(partCrcs.reduce((whole, part) => CRC64_NVME.combine(whole, part.crc, part.size), 0n)) : undefined;
      const composite = mode === 'sha256' ? sha256Composite(parts.map((part) => part.ChecksumSHA256!)) : undefined;
      const done = await this.#call(op, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
            IfNoneMatch: ifNoneMatch ? '*' : undefined,
            ...(fullCrc !== undefined && { ChecksumCRC64NVME: fullCrc, ChecksumType: 'FULL_OBJECT' }),
          }),
          sdkOptions(op.signal),
        ),
      );
      return { etag: done.ETag, checksum: fullCrc, ...(composite !== undefined && { composite }) };
    } catch (error) {
      const reason = await window.stop(error);
      // Best effort (without the caller's signal, which may be what stopped us): the first error is the one to report.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId })).catch(() => undefined);
      throw op.signal?.aborted ? abortedError(op.key, op.signal.reason) : reason;
    } finally {
      op.signal?.removeEventListener('abort', onAbort);
      source.destroy();
    }
  }

  /** Throws when the bucket does not exist (a HeadBucket 404); remembers a bucket once seen. */
  async #assertBucketExists(op: S3Operation): Promise<void> {
    if (this.#bucketConfirmed) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), sdkOptions(op.signal));
    } catch (error) {
      if (httpStatusOf(error) === 404) throw toStorageError({ name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } }, op);
      if (op.signal?.aborted) throw abortedError(op.key, error);
      return; // other answers (403 without s3:ListBucket, a network error) say nothing either way: ask again next time
    }
    this.#bucketConfirmed = true;
  }

  /** The S3 key of an adapter key, after checking that the key is valid and not reserved. */
  #objectKey(key: string): string {
    assertValidKey(key);
    if (key.startsWith(PROBE_KEY_PREFIX)) {
      throw new StorageError(StorageErrorCode.InvalidKey, `invalid storage key '${key}': names starting with ${PROBE_KEY_PREFIX} are reserved`, {
        context: { key },
      });
    }
    return this.#root + key;
  }

  /** A listed object as the contract's ObjectInfo, or undefined for keys this adapter cannot address. */
  #infoFromListing(object: _Object): ObjectInfo | undefined {
    if (object.Key === undefined || !object.Key.startsWith(this.#root)) return undefined;
    const key = object.Key.slice(this.#root.length);
    try {
      this.#objectKey(key);
    } catch {
      return undefined; // a "folder/" marker, an empty segment, a probe object, …
    }
    const info: ObjectInfo = { key, size: object.Size ?? 0, modified: object.LastModified ?? new Date(0), checksums: {} };
    if (object.ETag !== undefined) info.etag = object.ETag;
    // A listing says the class but not the thaw state: `archive` only comes from `stat`.
    if (object.StorageClass !== undefined && object.StorageClass !== 'STANDARD') info.storageClass = object.StorageClass;
    return info;
  }

  #op(operation: string, key: string | undefined, signal: AbortSignal | undefined): S3Operation {
    return { operation, key, bucket: this.bucket, where: this.description, signal };
  }

  /** Runs one SDK call, mapping whatever it throws onto a StorageError. */
  async #call<T>(op: S3Operation, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw toStorageError(error, op);
    }
  }
}

/** The whole body (at most `partSize` bytes) in memory, after checking it against its declared size and SHA-256. */
async function readWhole(body: PutBody, op: S3Operation, partSize: number): Promise<Buffer> {
  const source = destroyOnAbort(body.open(), op.signal, op.key!);
  try {
    const reader = new PartReader(op.key!, body, source, partSize);
    const data = (await reader.nextPart()) ?? Buffer.alloc(0);
    await reader.finish();
    return data;
  } finally {
    source.destroy();
  }
}

/** The contract's ObjectInfo from a HeadObject answer. */
function infoFromHead(key: string, head: HeadObjectCommandOutput): ObjectInfo {
  const checksums: ObjectChecksums = {};
  // A composite checksum (`…-<parts>`, multipart uploads) is not the SHA-256 of the object.
  if (head.ChecksumSHA256 && (head.ChecksumType === 'COMPOSITE' || head.ChecksumSHA256.includes('-'))) checksums.sha256Composite = head.ChecksumSHA256;
  else if (head.ChecksumSHA256) checksums.sha256 = base64ToHex(head.ChecksumSHA256);
  if (head.ChecksumCRC64NVME) checksums.crc64nvme = head.ChecksumCRC64NVME;
  const info: ObjectInfo = {
    key,
    size: head.ContentLength ?? 0,
    modified: head.LastModified ?? new Date(0),
    checksums,
    ...archiveFacts(head.StorageClass, head.Restore),
  };
  if (head.ETag !== undefined) info.etag = head.ETag;
  return info;
}

/** The commands whose request bodies are object bytes, sent with their flexible checksum or Content-MD5. */
const UPLOADS = new Set(['PutObjectCommand', 'UploadPartCommand']);

/**
 * Has `client` sign uploads with `x-amz-content-sha256: UNSIGNED-PAYLOAD` rather than the SHA-256
 * of their bodies, which the SDK would compute over every byte once more. The bytes' integrity does
 * not rest on the signature: each body goes with the flexible checksum of the mode (Content-MD5 in
 * mode `none`), which the endpoint checks on receipt, and the engine checks the stored object afterwards
 * (the endpoint's checksum, or the bytes read back).
 */
function signUploadsWithoutPayloadHash(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (UPLOADS.has(context.commandName ?? '')) (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'stowageUnsignedPayload', override: true },
  );
}

/** The SDK's per-call options: its `abortSignal` may be left out but not set to undefined. */
export function sdkOptions(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
}

function httpStatusOf(error: unknown): number | undefined {
  const status = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}
