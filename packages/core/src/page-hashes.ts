import { createHash, hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

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
 * One read pass over a database file: its SHA-256 and the truncated SHA-256 of every page.
 * The read size is a multiple of every legal page size, so pages never straddle chunks except
 * at a short tail, which is carried over.
 */
export async function digestDatabaseFile(path: string, pageSize: number): Promise<FileDigest> {
  const whole = createHash('sha256');
  const pageHashes: Buffer[] = [];
  let size = 0;
  let carry: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) {
    whole.update(chunk);
    size += chunk.length;
    const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
    const wholePages = Math.floor(data.length / pageSize);
    const hashes = Buffer.allocUnsafe(wholePages * PAGE_HASH_BYTES);
    for (let i = 0; i < wholePages; i++) {
      hash('sha256', data.subarray(i * pageSize, (i + 1) * pageSize), 'buffer').copy(hashes, i * PAGE_HASH_BYTES, 0, PAGE_HASH_BYTES);
    }
    pageHashes.push(hashes);
    carry = Buffer.from(data.subarray(wholePages * pageSize));
  }
  if (carry.length) {
    const tail = Buffer.allocUnsafe(PAGE_HASH_BYTES);
    hash('sha256', carry, 'buffer').copy(tail, 0, 0, PAGE_HASH_BYTES);
    pageHashes.push(tail);
  }
  return { size, sha256: whole.digest('hex'), pageHashes: Buffer.concat(pageHashes) };
}
