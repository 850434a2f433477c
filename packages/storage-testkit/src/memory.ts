import { Readable } from 'node:stream';
import {
  StorageError,
  StorageErrorCode,
  abortedError,
  assertBodyMatches,
  assertValidKey,
  assertValidPrefix,
  destroyOnAbort,
  objectArchived,
  objectNotFound,
  sha256Hex,
  throwIfAborted,
  type Capabilities,
  type GetOptions,
  type ObjectInfo,
  type PutBody,
  type PutOptions,
  type StorageAdapter,
  type ThawOptions,
} from '@stowage/storage';

interface StoredObject {
  bytes: Buffer;
  sha256: string;
  modified: Date;
  storageClass: string;
  /** A thaw of an object in an archive class: under way until `completeThaws()`, then readable until `expires`. */
  thaw?: { days: number; expires: Date | undefined };
}

export interface MemoryStorageOptions {
  /**
   * Archive classes to offer (e.g. `['Archive']`): then `setStorageClass` and `requestThaw`
   * exist, objects in those classes refuse `get` with `object_archived` until a thaw requested
   * for them is finished by `completeThaws()`. Default none: a plain hot store.
   */
  archiveClasses?: readonly string[];
}

/** The class objects are put in, and the one `setStorageClass` moves them back to. */
const HOT_CLASS = 'Standard';
const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * A storage adapter that keeps objects in memory, for unit tests. It implements the whole
 * contract (key checks, checksum verification, atomic conditional puts, ranges, aborts, and
 * archive tiers when asked to), so code tested against it behaves the same against a real
 * destination.
 */
export class MemoryStorage implements StorageAdapter {
  readonly description: string;
  readonly capabilities: Capabilities;
  readonly setStorageClass?: (key: string, storageClass: string, options?: { signal?: AbortSignal }) => Promise<ObjectInfo>;
  readonly requestThaw?: (key: string, options: ThawOptions) => Promise<ObjectInfo>;
  readonly #objects = new Map<string, StoredObject>();
  readonly #archiveClasses: ReadonlySet<string>;

  /** @param name shows in `description` as `memory://<name>`. */
  constructor(name = 'default', options: MemoryStorageOptions = {}) {
    this.description = `memory://${name}`;
    this.#archiveClasses = new Set(options.archiveClasses ?? []);
    this.capabilities = {
      serverChecksums: ['sha256'],
      conditionalPut: true,
      rangeReads: true,
      maxParallelism: 16,
      ...(this.#archiveClasses.size > 0 && { archiveClasses: [...this.#archiveClasses] }),
    };
    if (this.#archiveClasses.size > 0) {
      this.setStorageClass = (key, storageClass, opts) => this.#setStorageClass(key, storageClass, opts?.signal);
      this.requestThaw = (key, opts) => this.#requestThaw(key, opts);
    }
  }

  /** Finishes every thaw under way: those objects become readable for the days their thaw asked for. */
  completeThaws(): void {
    for (const object of this.#objects.values()) {
      if (object.thaw && object.thaw.expires === undefined) object.thaw.expires = new Date(Date.now() + object.thaw.days * DAY_MS);
    }
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<ObjectInfo> {
    assertValidKey(key);
    throwIfAborted(options.signal, key);
    const bytes = await readBody(body, key, options.signal);
    const sha256 = sha256Hex(bytes);
    assertBodyMatches(key, body, { size: bytes.length, sha256 });
    if (options.ifNoneMatch && this.#objects.has(key)) {
      throw new StorageError(StorageErrorCode.AlreadyExists, `'${key}' already exists at ${this.description}`, {
        context: { key },
      });
    }
    const object = { bytes, sha256, modified: new Date(), storageClass: HOT_CLASS };
    this.#objects.set(key, object);
    return this.#infoOf(key, object);
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const object = this.#find(key, options.signal);
    if (!object) throw objectNotFound(key, this.description);
    const { archive } = this.#infoOf(key, object);
    if (archive && archive.state !== 'readable') throw objectArchived(key, this.description, object.storageClass, archive.state);
    const { offset = 0, length } = options.range ?? {};
    const bytes = Buffer.from(object.bytes.subarray(offset, length === undefined ? undefined : offset + length));
    return destroyOnAbort(Readable.from(chunksOf(bytes), { objectMode: false }), options.signal, key);
  }

  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    const object = this.#find(key, options.signal);
    return object && this.#infoOf(key, object);
  }

  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    for (const [key, object] of this.#objects) {
      throwIfAborted(options.signal, prefix);
      if (key.startsWith(prefix)) yield this.#infoOf(key, object);
    }
  }

  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    keys.forEach(assertValidKey);
    throwIfAborted(options.signal);
    for (const key of keys) this.#objects.delete(key);
  }

  async #setStorageClass(key: string, storageClass: string, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    if (storageClass !== HOT_CLASS && !this.#archiveClasses.has(storageClass)) {
      throw new StorageError(StorageErrorCode.Unsupported, `${this.description} has no storage class '${storageClass}'`, {
        context: { key, storageClass },
      });
    }
    const object = this.#find(key, signal);
    if (!object) throw objectNotFound(key, this.description);
    if (object.storageClass === storageClass) return this.#infoOf(key, object);
    const { archive } = this.#infoOf(key, object);
    if (archive && archive.state !== 'readable') throw objectArchived(key, this.description, object.storageClass, archive.state);
    // A server-side copy: a fresh object in the new class, without the old one's thaw.
    const copy: StoredObject = { bytes: object.bytes, sha256: object.sha256, modified: new Date(), storageClass };
    this.#objects.set(key, copy);
    return this.#infoOf(key, copy);
  }

  async #requestThaw(key: string, options: ThawOptions): Promise<ObjectInfo> {
    if (!Number.isSafeInteger(options.days) || options.days < 1) throw new RangeError(`days must be a positive integer, not ${options.days}`);
    const object = this.#find(key, options.signal);
    if (!object) throw objectNotFound(key, this.description);
    const info = this.#infoOf(key, object);
    if (!info.archive) {
      throw new StorageError(StorageErrorCode.Unsupported, `'${key}' at ${this.description} is not archived and needs no thaw`, {
        context: { key, storageClass: object.storageClass },
      });
    }
    if (info.archive.state !== 'archived') return info;
    object.thaw = { days: options.days, expires: undefined };
    return this.#infoOf(key, object);
  }

  #infoOf(key: string, object: StoredObject): ObjectInfo {
    const info: ObjectInfo = { key, size: object.bytes.length, modified: object.modified, checksums: { sha256: object.sha256 } };
    if (this.#archiveClasses.size === 0) return info;
    const { thaw } = object;
    if (thaw?.expires !== undefined && thaw.expires.getTime() <= Date.now()) delete object.thaw;
    if (!this.#archiveClasses.has(object.storageClass)) return { ...info, storageClass: object.storageClass };
    const archive: ObjectInfo['archive'] =
      object.thaw === undefined
        ? { state: 'archived' }
        : object.thaw.expires === undefined
          ? { state: 'thawing' }
          : { state: 'readable', thawExpires: object.thaw.expires };
    return { ...info, storageClass: object.storageClass, archive };
  }

  #find(key: string, signal: AbortSignal | undefined): StoredObject | undefined {
    assertValidKey(key);
    throwIfAborted(signal, key);
    return this.#objects.get(key);
  }
}

const CHUNK_BYTES = 64 * 1024;

/** Streams `bytes` in chunks, as a real backend would. */
function* chunksOf(bytes: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < bytes.length; offset += CHUNK_BYTES) yield bytes.subarray(offset, offset + CHUNK_BYTES);
}

/** Reads a whole body, destroying its stream whatever happens. */
async function readBody(body: PutBody, key: string, signal: AbortSignal | undefined): Promise<Buffer> {
  const stream = body.open();
  try {
    return Buffer.concat(await stream.toArray({ signal }));
  } catch (error) {
    throw signal?.aborted ? abortedError(key, error) : error;
  } finally {
    stream.destroy();
  }
}
