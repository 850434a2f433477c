import { createHash, hash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Bytes kept of each page's SHA-256: 128 bits, far beyond any collision risk for a database. */
export const PAGE_HASH_BYTES = 16;
export const PAGE_HASH_ALGORITHM = 'sha256-128';

export interface FileDigest {
  size: number;
  sha256: string;
  /** `PAGE_HASH_BYTES` per page, page 1 first. */
  pageHashes: Buffer;
}

/**
 * A pass-through stream that computes a database file's SHA-256 and the truncated SHA-256 of every
 * page, so that hashing can ride along another pass over the file (compression, upload).
 * A short tail is carried over until the next chunk completes its page.
 */
export class PageDigestStream extends Transform {
  readonly #whole: Hash = createHash('sha256');
  readonly #pages: Buffer[] = [];
  #carry: Buffer = Buffer.alloc(0);
  #size = 0;

  constructor(readonly pageSize: number) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#whole.update(chunk);
    this.#size += chunk.length;
    const data = this.#carry.length ? Buffer.concat([this.#carry, chunk]) : chunk;
    const wholePages = Math.floor(data.length / this.pageSize);
    const hashes = Buffer.allocUnsafe(wholePages * PAGE_HASH_BYTES);
    for (let i = 0; i < wholePages; i++) {
      hash('sha256', data.subarray(i * this.pageSize, (i + 1) * this.pageSize), 'buffer').copy(hashes, i * PAGE_HASH_BYTES, 0, PAGE_HASH_BYTES);
    }
    this.#pages.push(hashes);
    this.#carry = Buffer.from(data.subarray(wholePages * this.pageSize));
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#carry.length) {
      const tail = Buffer.allocUnsafe(PAGE_HASH_BYTES);
      hash('sha256', this.#carry, 'buffer').copy(tail, 0, 0, PAGE_HASH_BYTES);
      this.#pages.push(tail);
    }
    callback();
  }

  /** The digest; call once the stream has finished. */
  result(): FileDigest {
    return { size: this.#size, sha256: this.#whole.digest('hex'), pageHashes: Buffer.concat(this.#pages) };
  }
}

/** One read pass over a database file: its SHA-256 and the hash of every page. */
export async function digestDatabaseFile(path: string, pageSize: number): Promise<FileDigest> {
  const digest = new PageDigestStream(pageSize);
  await pipeline(createReadStream(path, { highWaterMark: 4 << 20 }), digest, async (chunks: AsyncIterable<Buffer>) => {
    for await (const _ of chunks) {
      // the digest is the point
    }
  });
  return digest.result();
}
