import { createHash, randomBytes } from 'node:crypto';
import { crc64, crc64Combine } from './crc64.js';

/** OSS storage classes. */
export const STORAGE_CLASSES = ['Standard', 'IA', 'Archive', 'ColdArchive', 'DeepColdArchive'] as const;
export type StorageClass = (typeof STORAGE_CLASSES)[number];

/** An object as the server keeps it. */
export interface StoredObject {
  bytes: Buffer;
  /** Quoted upper-case hex: MD5 of the bytes, or `"<MD5 of the parts' MD5s>-<parts>"` for multipart objects. */
  etag: string;
  /** CRC-64/ECMA of the bytes when they were written (bit rot injected later leaves it unchanged). */
  crc64: string;
  /** Base64 MD5, reported for objects written in one PutObject. */
  contentMd5: string | undefined;
  contentType: string;
  lastModified: Date;
  storageClass: StorageClass;
  type: 'Normal' | 'Multipart';
  /** `x-oss-meta-*` headers, lower-case names. */
  meta: Record<string, string>;
  /** The latest RestoreObject of an object in a cold class, on the server's thaw clock (ms). */
  restore?: Restore | undefined;
}

/** Restore priorities, fastest first. */
export const RESTORE_TIERS = ['Expedited', 'Standard', 'Bulk'] as const;
export type RestoreTier = (typeof RESTORE_TIERS)[number];

export interface Restore {
  tier: RestoreTier;
  /** When the restored copy becomes readable. */
  readyAt: number;
  /** When it stops being readable (the object is frozen again). */
  expiresAt: number;
}

export interface StoredPart {
  bytes: Buffer;
  etag: string;
  crc64: string;
  lastModified: Date;
}

export interface MultipartUpload {
  uploadId: string;
  key: string;
  initiated: Date;
  contentType: string;
  storageClass: StorageClass;
  meta: Record<string, string>;
  parts: Map<number, StoredPart>;
}

/** One page of a listing: objects and common prefixes in key order. */
export interface ListingPage {
  entries: ({ kind: 'object'; key: string; object: StoredObject } | { kind: 'prefix'; prefix: string })[];
  truncated: boolean;
  /** The last key or common prefix on the page: where the next page starts after. */
  last: string | undefined;
}

/** A bucket's objects and unfinished multipart uploads. */
export class Bucket {
  readonly objects = new Map<string, StoredObject>();
  readonly uploads = new Map<string, MultipartUpload>();
  /** The lifecycle configuration PutBucketLifecycle stored (checked XML, no declaration). */
  lifecycle: string | undefined;

  constructor(
    readonly name: string,
    readonly created = new Date(),
  ) {}

  /**
   * Keys starting with `prefix` and sorting after `after`, in UTF-8 byte order (as OSS sorts),
   * with keys that share a `delimiter`-ended prefix rolled up into one common prefix; each object
   * and each common prefix counts towards `maxKeys`.
   */
  list(options: { prefix: string; after: string; delimiter: string; maxKeys: number }): ListingPage {
    const { prefix, after, delimiter, maxKeys } = options;
    const keys = [...this.objects.keys()].filter((key) => key.startsWith(prefix) && compareUtf8(key, after) > 0).sort(compareUtf8);
    const page: ListingPage = { entries: [], truncated: false, last: undefined };
    for (const key of keys) {
      const cut = delimiter === '' ? -1 : key.indexOf(delimiter, prefix.length);
      const rollup = cut < 0 ? undefined : key.slice(0, cut + delimiter.length);
      if (rollup !== undefined && (rollup === page.last || compareUtf8(rollup, after) <= 0)) continue;
      if (page.entries.length === maxKeys) {
        page.truncated = true;
        break;
      }
      page.entries.push(rollup === undefined ? { kind: 'object', key, object: this.objects.get(key)! } : { kind: 'prefix', prefix: rollup });
      page.last = rollup ?? key;
    }
    return page;
  }
}

/** Orders strings by their UTF-8 bytes. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function md5(bytes: Uint8Array): Buffer {
  return createHash('md5').update(bytes).digest();
}

/** Quoted upper-case hex, as OSS writes ETags. */
export function quotedHex(digest: Buffer): string {
  return `"${digest.toString('hex').toUpperCase()}"`;
}

/** A fresh object written in one request; `digest`: the MD5 of `bytes` when the request's Content-MD5 check computed it. */
export function normalObject(bytes: Buffer, attributes: Pick<StoredObject, 'contentType' | 'storageClass' | 'meta'>, digest = md5(bytes)): StoredObject {
  return {
    ...attributes,
    bytes,
    etag: quotedHex(digest),
    crc64: crc64(bytes),
    contentMd5: digest.toString('base64'),
    lastModified: nowToTheSecond(),
    type: 'Normal',
  };
}

/**
 * The object a completed multipart upload makes of `parts`, whose joined bytes `alter` may replace
 * (a write fault). The CRC-64 of the parts joined is combined from theirs, as they were computed
 * when each was written.
 */
export function multipartObject(upload: MultipartUpload, parts: readonly StoredPart[], alter: (joined: Buffer) => Buffer): StoredObject {
  const etagOfParts = md5(Buffer.concat(parts.map((part) => Buffer.from(part.etag.replace(/"/g, ''), 'hex'))));
  const joined = Buffer.concat(parts.map((part) => part.bytes));
  const bytes = alter(joined);
  return {
    bytes,
    etag: `"${etagOfParts.toString('hex').toUpperCase()}-${parts.length}"`,
    crc64: bytes === joined ? parts.reduce((whole, part) => crc64Combine(whole, part.crc64, part.bytes.length), '0') : crc64(bytes),
    contentMd5: undefined,
    contentType: upload.contentType,
    lastModified: nowToTheSecond(),
    storageClass: upload.storageClass,
    type: 'Multipart',
    meta: upload.meta,
  };
}

/** A part as written; `digest`: the MD5 of `bytes` when the request's Content-MD5 check computed it. */
export function newPart(bytes: Buffer, digest = md5(bytes)): StoredPart {
  return { bytes, etag: quotedHex(digest), crc64: crc64(bytes), lastModified: nowToTheSecond() };
}

/** OSS upload IDs are 32 upper-case hex digits. */
export function newUploadId(): string {
  return randomBytes(16).toString('hex').toUpperCase();
}

/** OSS keeps modification times to the second. */
function nowToTheSecond(): Date {
  return new Date(Math.floor(Date.now() / 1000) * 1000);
}
