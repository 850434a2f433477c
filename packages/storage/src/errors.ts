import { StowageError } from '@stowage/errors';

/** Stable codes of storage errors. */
export const StorageErrorCode = {
  ObjectNotFound: 'stowage.storage.object_not_found',
  AlreadyExists: 'stowage.storage.already_exists',
  PermissionDenied: 'stowage.storage.permission_denied',
  Transient: 'stowage.storage.transient',
  ChecksumMismatch: 'stowage.storage.checksum_mismatch',
  NoSpace: 'stowage.storage.no_space',
  InvalidKey: 'stowage.storage.invalid_key',
  Unsupported: 'stowage.storage.unsupported',
  Aborted: 'stowage.storage.aborted',
  InvalidConfig: 'stowage.storage.invalid_config',
  UnknownScheme: 'stowage.storage.unknown_scheme',
  Unavailable: 'stowage.storage.unavailable',
  /** The object is in an archive storage class and not thawed: request a thaw, wait, then read. */
  ObjectArchived: 'stowage.storage.object_archived',
  /** The object was replaced while it was being read: what was read so far belongs to another object; read again. */
  ObjectChanged: 'stowage.storage.object_changed',
  /** A registry was asked to register a second factory for a scheme it already has. */
  DuplicateScheme: 'stowage.storage.duplicate_scheme',
} as const;
export type StorageErrorCode = (typeof StorageErrorCode)[keyof typeof StorageErrorCode];

/** An error from a storage adapter or wrapper; `code` is one of `StorageErrorCode`. */
export class StorageError extends StowageError<StorageErrorCode> {
  override readonly name: string = 'StorageError';
}

const STORAGE_CODES: ReadonlySet<string> = new Set(Object.values(StorageErrorCode));

/** The `code` of an error-like value, whatever class (or copy of this package) made it. */
function codeOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}

/**
 * Whether `error` carries one of the `StorageErrorCode`s. Guards check the code, never the class:
 * a custom adapter built against its own copy of `@stowage/storage` throws errors that are not
 * instances of this package's `StorageError` but classify the same.
 */
export function isStorageError(error: unknown): error is StorageError {
  const code = codeOf(error);
  return typeof code === 'string' && STORAGE_CODES.has(code);
}

function guard(code: StorageErrorCode) {
  return (error: unknown): error is StorageError => codeOf(error) === code;
}

export const isObjectNotFound = guard(StorageErrorCode.ObjectNotFound);
export const isAlreadyExists = guard(StorageErrorCode.AlreadyExists);
export const isTransient = guard(StorageErrorCode.Transient);
export const isChecksumMismatch = guard(StorageErrorCode.ChecksumMismatch);
export const isPermissionDenied = guard(StorageErrorCode.PermissionDenied);
export const isNoSpace = guard(StorageErrorCode.NoSpace);
export const isAborted = guard(StorageErrorCode.Aborted);
export const isObjectArchived = guard(StorageErrorCode.ObjectArchived);

export function objectNotFound(key: string, where: string, cause?: unknown): StorageError {
  return new StorageError(StorageErrorCode.ObjectNotFound, `no object '${key}' at ${where}`, {
    context: { key, where },
    cause,
  });
}

/** The object at `key` was replaced (or deleted) after `received` bytes of it were read. */
export function objectChanged(key: string, where: string, received: number, cause?: unknown): StorageError {
  return new StorageError(
    StorageErrorCode.ObjectChanged,
    `'${key}' at ${where} was replaced while it was being read (after ${received} bytes); nothing of the new object was used: read it again`,
    { context: { key, received }, cause },
  );
}

export function abortedError(key: string | undefined, cause?: unknown): StorageError {
  return new StorageError(StorageErrorCode.Aborted, `storage operation aborted${key ? ` (${key})` : ''}`, {
    context: { key },
    cause,
  });
}

/** Throws `aborted` when `signal` has aborted; adapters call it before they start work. */
export function throwIfAborted(signal: AbortSignal | undefined, key?: string): void {
  if (signal?.aborted) throw abortedError(key, signal.reason);
}

/** `get` (or a copy) of an object in an archive class that is not readable yet. */
export function objectArchived(key: string, where: string, storageClass: string, state: 'archived' | 'thawing', cause?: unknown): StorageError {
  const what =
    state === 'thawing'
      ? `is being thawed from the ${storageClass} storage class and is not readable yet; wait for the thaw to finish`
      : `is in the ${storageClass} storage class and must be thawed (restored) before it can be read`;
  return new StorageError(StorageErrorCode.ObjectArchived, `'${key}' at ${where} ${what}`, {
    context: { key, where, storageClass, state },
    cause,
  });
}
