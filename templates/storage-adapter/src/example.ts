import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, opendir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { systemErrorCode } from '@stowage/errors';
import {
  DigestStream,
  StorageError,
  StorageErrorCode,
  abortedError,
  assertBodyMatches,
  assertValidKey,
  assertValidPrefix,
  destroyOnAbort,
  objectNotFound,
  throwIfAborted,
  type Capabilities,
  type GetOptions,
  type ObjectInfo,
  type PutBody,
  type PutOptions,
  type StorageAdapter,
} from '@stowage/storage';

/** Storage codes for the backend's errors (here: errno values); anything else is `unavailable`. */
const ERRNO_CODES: Readonly<Record<string, StorageErrorCode>> = {
  EACCES: StorageErrorCode.PermissionDenied,
  EPERM: StorageErrorCode.PermissionDenied,
  ENOSPC: StorageErrorCode.NoSpace,
  EMFILE: StorageErrorCode.Transient,
  EBUSY: StorageErrorCode.Transient,
};

/** Staging files start with `#`, which `encodeURIComponent` always escapes, so no key maps to one. */
const STAGING_PREFIX = '#';

/**
 * A deliberately small adapter to copy when you write your own. It keeps every object as one file
 * in a flat folder, named after its URL-encoded key, which stands in for your backend's API.
 * Replace the file-system calls with your client's and keep the contract points marked ①–⑥.
 */
export class ExampleStorage implements StorageAdapter {
  readonly description: string;
  // ① Be honest about what the backend can do: the engine and the conformance suite adapt to it.
  readonly capabilities: Capabilities;

  constructor(
    readonly folder: string,
    maxParallelism = 4,
  ) {
    // Never put a secret (password, token) in the description: it shows in logs.
    this.description = `example:${folder}`;
    this.capabilities = {
      serverChecksums: [], // stat reports no checksum, so Stowage verifies uploads by reading them back
      conditionalPut: false, // so `ifNoneMatch` must be refused with `unsupported`
      rangeReads: true,
      maxParallelism,
    };
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<ObjectInfo> {
    const path = this.#pathOf(key);
    if (options.ifNoneMatch) {
      throw new StorageError(StorageErrorCode.Unsupported, `${this.description} cannot put '${key}' only if it is absent`);
    }
    throwIfAborted(options.signal, key);
    // ② Make the object visible atomically and only once its bytes are checked: stage, verify, rename.
    const staging = join(this.folder, `${STAGING_PREFIX}${randomUUID()}`);
    const meter = new DigestStream();
    try {
      await mkdir(this.folder, { recursive: true, mode: 0o700 });
      // ③ The stream from `body.open()` is ours: pipeline consumes it, or destroys it on failure.
      await pipeline(body.open(), meter, createWriteStream(staging, { mode: 0o600 }), { signal: options.signal });
      assertBodyMatches(key, body, { size: meter.size, sha256: meter.digest() });
      await rename(staging, path);
    } catch (error) {
      await rm(staging, { force: true });
      throw this.#storageError(error, key);
    }
    return { key, size: meter.size, modified: new Date(), checksums: { sha256: meter.digest() } };
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const path = this.#pathOf(key);
    throwIfAborted(options.signal, key);
    // ④ A missing object rejects the promise with `object_not_found`, before any byte is streamed.
    const file = await open(path, 'r').catch((error: unknown) => {
      throw this.#storageError(error, key);
    });
    const { offset = 0, length } = options.range ?? {};
    if (length === 0) {
      await file.close();
      return Readable.from([]);
    }
    const stream = file.createReadStream({ start: offset, end: length === undefined ? undefined : offset + length - 1 });
    // ⑤ Errors after the promise resolved go on the stream; an abort becomes an `aborted` StorageError.
    return destroyOnAbort(stream, options.signal, key);
  }

  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    const path = this.#pathOf(key);
    throwIfAborted(options.signal, key);
    try {
      const stats = await stat(path);
      return { key, size: stats.size, modified: stats.mtime, checksums: {} };
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined; // missing is not an error here
      throw this.#storageError(error, key);
    }
  }

  /** A remote backend would page through its listing API here; never buffer a whole bucket. */
  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    const folder = await opendir(this.folder).catch((error: unknown) => {
      if (systemErrorCode(error) === 'ENOENT') return undefined; // nothing stored yet
      throw this.#storageError(error, prefix);
    });
    for await (const entry of folder ?? []) {
      throwIfAborted(options.signal, prefix);
      if (entry.name.startsWith(STAGING_PREFIX)) continue; // never list our own temporary objects
      const key = decodeURIComponent(entry.name);
      const info = key.startsWith(prefix) ? await this.stat(key) : undefined;
      if (info) yield info;
    }
  }

  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    const paths = keys.map((key) => this.#pathOf(key)); // check every key before deleting any
    throwIfAborted(options.signal);
    for (const [index, path] of paths.entries()) {
      await rm(path, { force: true }).catch((error: unknown) => {
        throw this.#storageError(error, keys[index]!);
      });
    }
  }

  /** Validates the key (always, in every method) and maps it to the backend's name for it. */
  #pathOf(key: string): string {
    assertValidKey(key);
    return join(this.folder, encodeURIComponent(key));
  }

  /**
   * ⑥ Map the backend's errors onto storage codes: a missing object is `object_not_found`; what a
   * retry may fix (timeouts, resets, 5xx, 429) is `transient`, the only code that is retried.
   */
  #storageError(error: unknown, key: string): unknown {
    if (error instanceof StorageError) return error;
    if (error instanceof Error && error.name === 'AbortError') return abortedError(key, error);
    const errno = systemErrorCode(error);
    if (errno === 'ENOENT') return objectNotFound(key, this.description, error);
    const code = ERRNO_CODES[errno ?? ''] ?? StorageErrorCode.Unavailable;
    return new StorageError(code, `${this.description}: '${key}': ${(error as Error).message}`, { context: { key }, cause: error });
  }
}
