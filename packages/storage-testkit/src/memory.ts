import { Readable } from 'node:stream';
import {
  StorageError,
  StorageErrorCode,
  abortedError,
  assertBodyMatches,
  assertValidKey,
  assertValidPrefix,
  destroyOnAbort,
  objectNotFound,
  sha256Hex,
  throwIfAborted,
  type Capabilities,
  type GetOptions,
  type ObjectInfo,
  type PutBody,
  type PutOptions,
  type StorageAdapter,
} from '@stowage/storage';

interface StoredObject {
  bytes: Buffer;
  sha256: string;
  modified: Date;
}

/**
 * A storage adapter that keeps objects in memory, for unit tests. It implements the whole
 * contract (key checks, checksum verification, atomic conditional puts, ranges, aborts), so code
 * tested against it behaves the same against a real destination.
 */
export class MemoryStorage implements StorageAdapter {
  readonly description: string;
  readonly capabilities: Capabilities = {
    serverChecksums: ['sha256'],
    conditionalPut: true,
    rangeReads: true,
    maxParallelism: 16,
  };
  readonly #objects = new Map<string, StoredObject>();

  /** @param name shows in `description` as `memory://<name>`. */
  constructor(name = 'default') {
    this.description = `memory://${name}`;
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
    const object = { bytes, sha256, modified: new Date() };
    this.#objects.set(key, object);
    return infoOf(key, object);
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const object = this.#find(key, options.signal);
    if (!object) throw objectNotFound(key, this.description);
    const { offset = 0, length } = options.range ?? {};
    const bytes = Buffer.from(object.bytes.subarray(offset, length === undefined ? undefined : offset + length));
    return destroyOnAbort(Readable.from(chunksOf(bytes), { objectMode: false }), options.signal, key);
  }

  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    const object = this.#find(key, options.signal);
    return object && infoOf(key, object);
  }

  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    for (const [key, object] of this.#objects) {
      throwIfAborted(options.signal, prefix);
      if (key.startsWith(prefix)) yield infoOf(key, object);
    }
  }

  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    keys.forEach(assertValidKey);
    throwIfAborted(options.signal);
    for (const key of keys) this.#objects.delete(key);
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

function infoOf(key: string, object: StoredObject): ObjectInfo {
  return { key, size: object.bytes.length, modified: object.modified, checksums: { sha256: object.sha256 } };
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
