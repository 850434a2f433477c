import { describe, expect, it } from 'vitest';
import { StorageError, StorageErrorCode } from '@stowage/storage';
import { toStorageError, type S3Operation } from './errors.js';

const op: S3Operation = { operation: 'get', key: 'full/a.sqlite3', bucket: 'backups', where: 's3://backups/prod' };
const serviceError = (name: string, status: number, message = 'a message from S3') =>
  Object.assign(new Error(message), {
    name,
    Code: name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status, requestId: 'REQ1' },
  });
const networkError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:9`), { code, $metadata: {} });

describe('toStorageError', () => {
  const cases: Array<[string, unknown, StorageErrorCode]> = [
    ['NoSuchKey', serviceError('NoSuchKey', 404), StorageErrorCode.ObjectNotFound],
    ['a bare 404 (HeadObject)', serviceError('NotFound', 404, 'UnknownError'), StorageErrorCode.ObjectNotFound],
    ['NoSuchBucket', serviceError('NoSuchBucket', 404), StorageErrorCode.Unavailable],
    ['AccessDenied', serviceError('AccessDenied', 403), StorageErrorCode.PermissionDenied],
    ['InvalidAccessKeyId', serviceError('InvalidAccessKeyId', 403), StorageErrorCode.PermissionDenied],
    ['SignatureDoesNotMatch', serviceError('SignatureDoesNotMatch', 403), StorageErrorCode.PermissionDenied],
    ['ExpiredToken', serviceError('ExpiredToken', 400), StorageErrorCode.PermissionDenied],
    ['a bare 403', serviceError('Forbidden', 403, 'UnknownError'), StorageErrorCode.PermissionDenied],
    [
      'no credentials at all',
      Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
      StorageErrorCode.PermissionDenied,
    ],
    ['PreconditionFailed', serviceError('PreconditionFailed', 412), StorageErrorCode.AlreadyExists],
    ['ConditionalRequestConflict', serviceError('ConditionalRequestConflict', 409), StorageErrorCode.Transient],
    ['InternalError', serviceError('InternalError', 500), StorageErrorCode.Transient],
    ['SlowDown', serviceError('SlowDown', 503), StorageErrorCode.Transient],
    ['a 429', serviceError('TooManyRequests', 429), StorageErrorCode.Transient],
    ['RequestTimeout', serviceError('RequestTimeout', 400), StorageErrorCode.Transient],
    ['ECONNREFUSED', networkError('ECONNREFUSED'), StorageErrorCode.Transient],
    ['ECONNRESET', networkError('ECONNRESET'), StorageErrorCode.Transient],
    ['ETIMEDOUT', networkError('ETIMEDOUT'), StorageErrorCode.Transient],
    ['ENOTFOUND', networkError('ENOTFOUND'), StorageErrorCode.Transient],
    ['a socket timeout', Object.assign(new Error('the request socket timed out'), { name: 'TimeoutError' }), StorageErrorCode.Transient],
    ['BadDigest', serviceError('BadDigest', 400), StorageErrorCode.ChecksumMismatch],
    [
      'an SDK response checksum mismatch',
      new Error('Checksum mismatch: expected "a" but received "b" in response header "x-amz-checksum-crc32".'),
      StorageErrorCode.ChecksumMismatch,
    ],
    ['NotImplemented', serviceError('NotImplemented', 501), StorageErrorCode.Unsupported],
    ['KeyTooLongError', serviceError('KeyTooLongError', 400), StorageErrorCode.InvalidKey],
    ['InvalidObjectState (archived)', serviceError('InvalidObjectState', 403), StorageErrorCode.ObjectArchived],
    ['an AbortError', Object.assign(new Error('Request aborted'), { name: 'AbortError' }), StorageErrorCode.Aborted],
    ['InvalidArgument', serviceError('InvalidArgument', 400), StorageErrorCode.Unavailable],
  ];
  for (const [label, error, code] of cases) {
    it(`maps ${label} to ${code.split('.').at(-1)}`, () => {
      const mapped = toStorageError(error, op);
      expect(mapped).toBeInstanceOf(StorageError);
      expect(mapped.code).toBe(code);
      if (code !== StorageErrorCode.Aborted && code !== StorageErrorCode.ObjectNotFound) expect(mapped.cause).toBe(error);
    });
  }

  it('names the bucket in messages and context', () => {
    expect(toStorageError(serviceError('NoSuchBucket', 404), op).message).toBe(
      "get 'full/a.sqlite3' at s3://backups/prod failed: bucket 'backups' does not exist",
    );
    const denied = toStorageError(serviceError('InvalidAccessKeyId', 403, 'The AWS Access Key Id you provided does not exist in our records.'), op);
    expect(denied.message).toBe(
      "get 'full/a.sqlite3' at s3://backups/prod was refused (InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records.): check the credentials and their permissions on bucket 'backups'",
    );
    expect(denied.context).toEqual({
      key: 'full/a.sqlite3',
      bucket: 'backups',
      operation: 'get',
      s3Code: 'InvalidAccessKeyId',
      httpStatus: 403,
      requestId: 'REQ1',
    });
  });

  it('reports an abort as aborted whatever the SDK threw, and passes StorageErrors through', () => {
    const signal = AbortSignal.abort();
    expect(toStorageError(networkError('ECONNRESET'), { ...op, signal }).code).toBe(StorageErrorCode.Aborted);
    const original = new StorageError(StorageErrorCode.ChecksumMismatch, 'mine');
    expect(toStorageError(original, op)).toBe(original);
  });
});
