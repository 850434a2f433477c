import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { StorageError, StorageErrorCode, assertBodyMatches, type PutBody } from '@stowage/storage';

/**
 * Reads a put body in parts of `partSize` bytes (one at a time, so memory stays at one part plus
 * what the caller keeps) while counting and SHA-256-hashing it; fails with `checksum_mismatch` as
 * soon as the body runs past its declared size, and in `finish()` when its size or SHA-256 differ
 * from the declared ones. Call `finish()` before making anything visible.
 */
export class PartReader {
  readonly #hash = createHash('sha256');
  readonly #chunks: AsyncIterator<Buffer>;
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
    const pieces: Buffer[] = [];
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
      pieces.push(chunk);
      length += chunk.length;
    }
    if (length === 0 && this.#parts > 0) return undefined;
    this.#parts++;
    return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, length);
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
