import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { StorageError, StorageErrorCode, assertBodyMatches, type PutBody } from '@stowage/storage';

/** Full-size part buffers a reader keeps for reuse, at most (more than a put keeps in flight). */
const MAX_SPARE_PARTS = 8;

/**
 * Reads a put body in parts of `partSize` bytes (one at a time, so memory stays at one part plus
 * what the caller keeps) while counting and SHA-256-hashing it; fails with `checksum_mismatch` as
 * soon as the body runs past its declared size, and in `finish()` when its size or SHA-256 differ
 * from the declared ones. Call `finish()` before making anything visible.
 *
 * Each part is copied into a buffer of its own; a part handed back with `recycle` once nothing
 * reads it any more is read into again. A fresh 8–16 MiB buffer per part cost more than the copy
 * (the kernel zero-fills its new pages, and the garbage collector runs for it): 670 MiB of parts
 * took 0.39 s fresh against 0.05 s reused.
 */
export class PartReader {
  readonly #hash = createHash('sha256');
  readonly #chunks: AsyncIterator<Buffer>;
  readonly #spare: Buffer[] = [];
  #size = 0;
  #carry: Buffer | undefined;
  #ended = false;
  #parts = 0;

  /** `source` is a stream of `body.open()`; the caller destroys it when done. */
  constructor(
    readonly key: string,
    readonly body: PutBody,
    source: Readable,
    readonly partSize: number,
  ) {
    this.#chunks = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** The next part: exactly `partSize` bytes except the last; the first part may be empty; undefined at the end. */
  async nextPart(): Promise<Buffer | undefined> {
    // Bytes taken never run past the declared size (`#take`); those not yet in a part are the carry.
    const placed = this.#size - (this.#carry?.length ?? 0);
    const expected = Math.min(this.partSize, Math.max(0, this.body.size - placed));
    let part: Buffer | undefined;
    let length = 0;
    while (length < this.partSize) {
      let chunk = this.#carry;
      this.#carry = undefined;
      if (!chunk) {
        if (this.#ended) break;
        const next = await this.#chunks.next();
        if (next.done) {
          this.#ended = true;
          break;
        }
        chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
        this.#take(chunk);
      }
      const room = this.partSize - length;
      if (chunk.length > room) {
        this.#carry = chunk.subarray(room);
        chunk = chunk.subarray(0, room);
      }
      part ??= (expected === this.partSize && this.#spare.pop()) || Buffer.allocUnsafeSlow(expected);
      chunk.copy(part, length);
      length += chunk.length;
    }
    if (length === 0 && this.#parts > 0) return undefined;
    this.#parts++;
    return part ? part.subarray(0, length) : Buffer.alloc(0);
  }

  /** Hands back a part `nextPart` returned, once nothing reads it any more: its buffer is read into again. */
  recycle(part: Buffer): void {
    if (part.length === this.partSize && this.#spare.length < MAX_SPARE_PARTS) this.#spare.push(part);
  }

  /** Reads to the end of the body (failing if it runs past its declared size) and checks its size and SHA-256. */
  async finish(): Promise<void> {
    while (!this.#ended) {
      const next = await this.#chunks.next();
      if (next.done) this.#ended = true;
      else this.#take(Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value));
    }
    assertBodyMatches(this.key, this.body, { size: this.#size, sha256: this.#hash.digest('hex') });
  }

  #take(chunk: Buffer): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    if (this.#size > this.body.size) {
      throw new StorageError(StorageErrorCode.ChecksumMismatch, `the body for '${this.key}' was declared as ${this.body.size} bytes but more were read`, {
        context: { key: this.key, declared: { size: this.body.size, sha256: this.body.sha256 } },
      });
    }
  }
}
