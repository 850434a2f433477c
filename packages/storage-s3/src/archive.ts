import { CopyObjectCommand, RestoreObjectCommand, type S3Client, type Tier } from '@aws-sdk/client-s3';
import {
  StorageError,
  StorageErrorCode,
  objectArchived,
  objectNotFound,
  throwIfAborted,
  type ArchiveClassFacts,
  type ObjectInfo,
  type ThawOptions,
  type ThawTier,
} from '@stowage/storage';
import { toStorageError, type S3Operation } from './errors.js';

/*
 * S3's archive classes: GLACIER (Flexible Retrieval) and DEEP_ARCHIVE objects cannot be read until
 * a RestoreObject has made a temporary copy readable; HeadObject's `x-amz-restore` says where that
 * stands. `setStorageClass` is a CopyObject onto the same key with the new class, conditional on
 * the ETag a HeadObject just saw; it reports what a HeadObject says of the copy (size, full-object
 * checksum, ETag), which the caller checks (core against the manifest). CopyObject copies up to
 * 5 GiB; larger objects (which Stowage's artifacts rarely are) are left to a bucket lifecycle rule.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** AWS's documented thaw times (the upper end) and minimum storage durations. */
export const S3_ARCHIVE_CLASS_FACTS: Readonly<Record<string, ArchiveClassFacts>> = {
  GLACIER: { thawMs: { expedited: 5 * MINUTE, standard: 5 * HOUR, bulk: 12 * HOUR }, minimumStorageDays: 90 },
  DEEP_ARCHIVE: { thawMs: { standard: 12 * HOUR, bulk: 48 * HOUR }, minimumStorageDays: 180 },
};
export const S3_ARCHIVE_CLASSES = Object.keys(S3_ARCHIVE_CLASS_FACTS);
/** The largest object one CopyObject copies. */
const MAX_COPY_SIZE = 5 * 1024 ** 3;
const TIERS: Readonly<Record<ThawTier, Tier>> = { expedited: 'Expedited', standard: 'Standard', bulk: 'Bulk' };

/** What the archive operations need of the adapter. */
export interface S3ArchiveContext {
  client: S3Client;
  bucket: string;
  description: string;
  /** Storage classes the adapter may move objects to. */
  storageClasses: readonly string[];
  /** The S3 key of an adapter key (validated). */
  objectKey(key: string): string;
  stat(key: string, options: { signal?: AbortSignal }): Promise<ObjectInfo | undefined>;
  op(operation: string, key: string, signal: AbortSignal | undefined): S3Operation;
}

/**
 * `storageClass` and, for an archive class, `archive` from what S3 reports: HeadObject's
 * `x-amz-storage-class` (absent for STANDARD) and `x-amz-restore`, or a listing's StorageClass.
 */
export function archiveFacts(storageClass: string | undefined, restore: string | undefined): Pick<ObjectInfo, 'storageClass' | 'archive'> {
  if (storageClass === undefined) return {};
  if (!(storageClass in S3_ARCHIVE_CLASS_FACTS)) return { storageClass };
  if (restore === undefined) return { storageClass, archive: { state: 'archived' } };
  if (/ongoing-request="true"/.test(restore)) return { storageClass, archive: { state: 'thawing' } };
  const expiry = /expiry-date="([^"]+)"/.exec(restore)?.[1];
  const thawExpires = expiry === undefined ? undefined : new Date(expiry);
  return { storageClass, archive: { state: 'readable', ...(thawExpires && !Number.isNaN(thawExpires.getTime()) && { thawExpires }) } };
}

/** See `StorageAdapter.setStorageClass`. */
export async function setS3StorageClass(s3: S3ArchiveContext, key: string, storageClass: string, signal: AbortSignal | undefined): Promise<ObjectInfo> {
  const objectKey = s3.objectKey(key);
  const op = s3.op('setStorageClass', key, signal);
  if (!s3.storageClasses.includes(storageClass)) {
    throw new StorageError(
      StorageErrorCode.Unsupported,
      `S3 has no storage class '${storageClass}' to move objects to (use one of ${s3.storageClasses.join(', ')})`,
      {
        context: { key, storageClass },
      },
    );
  }
  const options = signal ? { signal } : {};
  const before = await s3.stat(key, options);
  if (!before) throw objectNotFound(key, s3.description);
  if ((before.storageClass ?? 'STANDARD') === storageClass) return before;
  if (before.archive !== undefined && before.archive.state !== 'readable')
    throw objectArchived(key, s3.description, before.storageClass!, before.archive.state);
  if (before.size > MAX_COPY_SIZE) {
    throw new StorageError(
      StorageErrorCode.Unsupported,
      `'${key}' at ${s3.description} is larger than 5 GiB, which one CopyObject cannot re-tier; use a bucket lifecycle rule`,
      {
        context: { key, size: before.size },
      },
    );
  }
  throwIfAborted(signal, key);
  try {
    await s3.client.send(
      new CopyObjectCommand({
        Bucket: s3.bucket,
        Key: objectKey,
        CopySource: `${s3.bucket}/${objectKey.split('/').map(encodeURIComponent).join('/')}`,
        StorageClass: storageClass as never,
        MetadataDirective: 'COPY',
        ...(before.etag !== undefined && { CopySourceIfMatch: before.etag }),
      }),
      signal ? { abortSignal: signal } : {},
    );
  } catch (error) {
    const mapped = toStorageError(error, op);
    if (mapped.code !== StorageErrorCode.AlreadyExists) throw mapped;
    throw new StorageError(
      StorageErrorCode.Unavailable,
      `'${key}' at ${s3.description} was replaced while it was being moved to ${storageClass}; the new object was left as it is: check it, then try again`,
      { context: { key, storageClass }, cause: error },
    );
  }
  const after = await s3.stat(key, options);
  if (!after) throw objectNotFound(key, s3.description);
  if ((after.storageClass ?? 'STANDARD') !== storageClass) {
    throw new StorageError(StorageErrorCode.Unavailable, `${s3.description} kept '${key}' in ${after.storageClass ?? 'STANDARD'} instead of ${storageClass}`, {
      context: { key, storageClass },
    });
  }
  return after;
}

/** See `StorageAdapter.requestThaw`: a RestoreObject, unless a thaw is already under way or done. */
export async function requestS3Thaw(s3: S3ArchiveContext, key: string, { tier = 'standard', days, signal }: ThawOptions): Promise<ObjectInfo> {
  const objectKey = s3.objectKey(key);
  if (!Number.isSafeInteger(days) || days < 1) throw new RangeError(`days must be a positive integer, not ${days}`);
  const options = signal ? { signal } : {};
  const info = await s3.stat(key, options);
  if (!info) throw objectNotFound(key, s3.description);
  if (info.archive === undefined) {
    throw new StorageError(
      StorageErrorCode.Unsupported,
      `'${key}' at ${s3.description} is in the ${info.storageClass ?? 'STANDARD'} storage class, which needs no thaw`,
      {
        context: { key, storageClass: info.storageClass },
      },
    );
  }
  if (info.archive.state !== 'archived') return info;
  const storageClass = info.storageClass!;
  if (S3_ARCHIVE_CLASS_FACTS[storageClass]?.thawMs[tier] === undefined) {
    throw new StorageError(
      StorageErrorCode.Unsupported,
      `the ${tier} thaw tier is not offered for ${storageClass} objects ('${key}' at ${s3.description}); use standard or bulk`,
      {
        context: { key, storageClass, tier },
      },
    );
  }
  try {
    await s3.client.send(
      new RestoreObjectCommand({ Bucket: s3.bucket, Key: objectKey, RestoreRequest: { Days: days, GlacierJobParameters: { Tier: TIERS[tier] } } }),
      signal ? { abortSignal: signal } : {},
    );
  } catch (error) {
    // Someone else's thaw got there first.
    if ((error as { name?: unknown }).name !== 'RestoreAlreadyInProgress') throw toStorageError(error, s3.op('requestThaw', key, signal));
  }
  const after = await s3.stat(key, options);
  if (!after) throw objectNotFound(key, s3.description);
  return after;
}
