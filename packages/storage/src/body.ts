import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PutBody } from './contract.js';
import { StorageError, StorageErrorCode, abortedError } from './errors.js';
import { streamed } from './garbage.js';

/** A pass-through stream that counts and SHA-256-hashes what flows through it. */
export class DigestStream extends Transform {
  readonly #hash = createHash('sha256');
  #size = 0;
  #digest: string | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    streamed(chunk.length);
    callback(null, chunk);
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }

  /** Hex SHA-256 of everything seen; call once the stream has ended. */
  digest(): string {
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }
}

/** Size and SHA-256 of a stream, consuming it. */
export async function digestStream(source: Readable): Promise<{ size: number; sha256: string }> {
  const meter = new DigestStream();
  await pipeline(source, meter, async (chunks: AsyncIterable<Buffer>) => {
    for await (const _ of chunks) {
      // drain
    }
  });
  return { size: meter.size, sha256: meter.digest() };
}

/** Bytes of each read of `digestFile`. */
const DIGEST_READ_BYTES = 1 << 20;

/**
 * Size and SHA-256 of a file's bytes — the file at a path, or an open one, read from its start —
 * read into one buffer used again for every read: a read stream would leave each chunk it read
 * behind as garbage (a GiB file, a GiB of it). `beforeRead` runs before each read (an abort check);
 * what it throws ends the digest. An open file is not closed.
 */
export async function digestFile(file: string | FileHandle, options: { beforeRead?: () => void } = {}): Promise<{ size: number; sha256: string }> {
  const handle = typeof file === 'string' ? await open(file, 'r') : file;
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(DIGEST_READ_BYTES);
    let size = 0;
    for (;;) {
      options.beforeRead?.();
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
      if (bytesRead === 0) return { size, sha256: hash.digest('hex') };
      hash.update(buffer.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    if (handle !== file) await handle.close();
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Throws `checksum_mismatch` unless the bytes an adapter read from `body` (`seen`) are the ones
 * the body declared. Adapters call it after storing the bytes and before making them visible.
 */
export function assertBodyMatches(key: string, body: PutBody, seen: { size: number; sha256: string }): void {
  if (seen.size === body.size && seen.sha256 === body.sha256) return;
  throw new StorageError(
    StorageErrorCode.ChecksumMismatch,
    `the body for '${key}' was declared as ${body.size} bytes with SHA-256 ${body.sha256} but ${seen.size} bytes with SHA-256 ${seen.sha256} were read`,
    { context: { key, declared: { size: body.size, sha256: body.sha256 }, read: seen } },
  );
}

/** A rewindable body over bytes in memory. */
export function bufferBody(data: Uint8Array | string): PutBody {
  const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return { size: bytes.length, sha256: sha256Hex(bytes), open: () => Readable.from([bytes], { objectMode: false }) };
}

/** A rewindable body over a file that does not change; reads it once to learn size and SHA-256. */
export async function fileBody(path: string): Promise<PutBody> {
  const { size, sha256 } = await digestFile(path);
  const { size: sizeNow } = await stat(path);
  if (sizeNow !== size) throw new Error(`${path} changed while it was being hashed`);
  return { size, sha256, path, open: () => createReadStream(path) };
}

/**
 * Destroys `stream` with an `aborted` StorageError when `signal` aborts (at once if it already
 * has), so that an adapter's `get` stream reports an abort the way the contract asks.
 */
export function destroyOnAbort<T extends Readable>(stream: T, signal: AbortSignal | undefined, key: string): T {
  if (!signal) return stream;
  const abort = () => stream.destroy(abortedError(key, signal.reason));
  if (signal.aborted) {
    abort();
    return stream;
  }
  signal.addEventListener('abort', abort, { once: true });
  stream.once('close', () => signal.removeEventListener('abort', abort));
  return stream;
}
