import { systemErrorCode } from '@stowage/errors';
import { StorageError, StorageErrorCode, abortedError, objectNotFound } from '@stowage/storage';
import { isNetworkError } from '@stowage/storage-http-kit';

/** What an S3 call was doing, for the message and context of the error it may map to. */
export interface S3Operation {
  /** `put`, `get`, `stat`, `list`, `delete`, `probe`, … */
  operation: string;
  /** The adapter's key (not the full object key), when there is one. */
  key?: string | undefined;
  bucket: string;
  /** The adapter's description, e.g. `s3://bucket/prefix`. */
  where: string;
  signal?: AbortSignal | undefined;
}

/** The fields of an SDK service error that the mapping reads. */
interface SdkErrorShape {
  name?: unknown;
  Code?: unknown;
  message?: unknown;
  $fault?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown; requestId?: unknown };
}

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound']);
const DENIED = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'ExpiredToken',
  'InvalidAccessKeyId',
  'InvalidToken',
  'SignatureDoesNotMatch',
  'TokenRefreshRequired',
  'CredentialsProviderError',
]);
const TRANSIENT = new Set([
  'ConditionalRequestConflict', // 409: a concurrent conditional write; retrying sorts it out
  'InternalError',
  'OperationAborted',
  'RequestTimeout',
  'RequestTimeoutException',
  'ServiceUnavailable',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TimeoutError',
  'TooManyRequestsException',
]);
const CORRUPTED = new Set(['BadDigest', 'InvalidDigest', 'XAmzContentSHA256Mismatch', 'XAmzContentChecksumMismatch']);
/**
 * Maps an error of the AWS SDK (a service error, a network error, a credential-provider error)
 * onto a `StorageError`. Messages name the bucket and the key, never a credential; the SDK error
 * is kept as `cause`. A `StorageError` passes through unchanged.
 */
export function toStorageError(error: unknown, op: S3Operation): StorageError {
  if (error instanceof StorageError) return error;
  const sdk = (error ?? {}) as SdkErrorShape;
  const name = typeof sdk.name === 'string' ? sdk.name : undefined;
  if (op.signal?.aborted || name === 'AbortError') return abortedError(op.key, error);

  // A response without a body (HEAD) leaves the SDK only the status: it names the error 'Unknown'.
  const s3Code = typeof sdk.Code === 'string' ? sdk.Code : name === 'Unknown' ? undefined : name;
  const status = typeof sdk.$metadata?.httpStatusCode === 'number' ? sdk.$metadata.httpStatusCode : undefined;
  const errno = systemErrorCode(error);
  const detail = typeof sdk.message === 'string' && sdk.message !== 'UnknownError' ? sdk.message : undefined;
  const context = {
    key: op.key,
    bucket: op.bucket,
    operation: op.operation,
    s3Code,
    httpStatus: status,
    requestId: typeof sdk.$metadata?.requestId === 'string' ? sdk.$metadata.requestId : undefined,
  };
  const subject = `${op.operation}${op.key === undefined ? '' : ` '${op.key}'`} at ${op.where}`;
  const make = (code: StorageErrorCode, message: string) => new StorageError(code, message, { context, cause: error });
  const because = [s3Code, detail].filter(Boolean).join(': ') || `HTTP ${status ?? '?'}`;

  if (s3Code === 'NoSuchBucket') {
    return make(StorageErrorCode.Unavailable, `${subject} failed: bucket '${op.bucket}' does not exist`);
  }
  if (s3Code !== undefined && NOT_FOUND.has(s3Code)) return objectNotFound(op.key ?? '', op.where, error);
  if (s3Code === 'PreconditionFailed' || status === 412) {
    return make(StorageErrorCode.AlreadyExists, `'${op.key ?? ''}' already exists at ${op.where}`);
  }
  if (s3Code === 'InvalidObjectState') {
    return make(
      StorageErrorCode.ObjectArchived,
      `${subject} failed: the object is archived (GLACIER or DEEP_ARCHIVE) and must be restored before it can be read`,
    );
  }
  if ((s3Code !== undefined && DENIED.has(s3Code)) || status === 401 || status === 403) {
    return make(StorageErrorCode.PermissionDenied, `${subject} was refused (${because}): check the credentials and their permissions on bucket '${op.bucket}'`);
  }
  if (s3Code === 'KeyTooLongError') {
    return make(StorageErrorCode.InvalidKey, `${subject} failed: the key with the destination's prefix is longer than S3 allows`);
  }
  // The SDK's own check of a response checksum (full GetObject on AWS) throws a plain Error.
  const sdkChecksumMismatch = typeof sdk.message === 'string' && sdk.message.startsWith('Checksum mismatch');
  if (sdkChecksumMismatch) {
    return make(
      StorageErrorCode.ChecksumMismatch,
      `${subject} failed: the bytes read do not match the checksum the endpoint reports for the object (${because})`,
    );
  }
  if (s3Code !== undefined && CORRUPTED.has(s3Code)) {
    return make(StorageErrorCode.ChecksumMismatch, `${subject} failed: the endpoint received different bytes than were sent (${because})`);
  }
  if (s3Code === 'NotImplemented' || status === 501) {
    return make(StorageErrorCode.Unsupported, `${subject} failed: the endpoint does not implement this request (${because})`);
  }
  const transient =
    (s3Code !== undefined && TRANSIENT.has(s3Code)) ||
    isNetworkError(error) ||
    status === 429 ||
    (status !== undefined && status >= 500) ||
    sdk.$retryable !== undefined;
  if (transient) {
    const cause = errno ?? because;
    return make(StorageErrorCode.Transient, `${subject} failed for now (${cause}); retrying may succeed`);
  }
  return make(StorageErrorCode.Unavailable, `${subject} failed: ${because}`);
}
