import type { IHasher } from 'hash-wasm';

/** Bytes of each page hash. */
export const PAGE_HASH_BYTES = 16;
/**
 * Page hashes find the pages that changed; they need not be cryptographic, because the
 * snapshot's SHA-256 (which a restore checks) proves integrity. XXH3-128 (canonical big-endian
 * bytes) costs a fraction of a SHA-256 per page. Lists made before it were `sha256-128` (the first
 * 16 bytes of each page's SHA-256): an incremental on such a parent is taken as a full.
 */
export const PAGE_HASH_ALGORITHM = 'xxh3-128';

export interface FileDigest {
  size: number;
  sha256: string;
  /** `PAGE_HASH_BYTES` per page, page 1 first. */
  pageHashes: Buffer;
}

/** The page hash of `page`. */
function pageHash(hasher: IHasher, page: Uint8Array): Uint8Array {
  return hasher.init().update(page).digest('binary');
}

/** Writes the hash of each page of `data` (whole pages) into `out`, `PAGE_HASH_BYTES` each, from byte `at`. */
export function hashPages(hasher: IHasher, data: Uint8Array, pageSize: number, out: Uint8Array, at: number): void {
  for (let page = 0; page < data.length; page += pageSize, at += PAGE_HASH_BYTES) out.set(pageHash(hasher, data.subarray(page, page + pageSize)), at);
}

/*
 * An incremental stores only the hashes of the pages it carries (a "page-hash delta"), not the
 * whole list: the list of any backup is its full's list with every link's changes applied, and
 * the manifest pins its SHA-256 (`source.pageHashesSha256`) so a rebuilt list is checked.
 *   magic "STWPHD1\0" | u32 page count | u32 n | n × (u32 page index | 16-byte hash), big-endian
 */
const HASH_DELTA_MAGIC = Buffer.from('STWPHD1\0', 'latin1');

/** The hash delta of `pages` (indexes into `hashes`, the new full list). */
export function encodePageHashDelta(hashes: Buffer, pages: readonly number[]): Buffer {
  const out = Buffer.alloc(16 + pages.length * (4 + PAGE_HASH_BYTES));
  HASH_DELTA_MAGIC.copy(out, 0);
  out.writeUInt32BE(hashes.length / PAGE_HASH_BYTES, 8);
  out.writeUInt32BE(pages.length, 12);
  pages.forEach((index, n) => {
    const at = 16 + n * (4 + PAGE_HASH_BYTES);
    out.writeUInt32BE(index, at);
    hashes.copy(out, at + 4, index * PAGE_HASH_BYTES, (index + 1) * PAGE_HASH_BYTES);
  });
  return out;
}

/** Applies a hash delta to the parent's full list, giving the child's full list. */
export function applyPageHashDelta(parent: Buffer, delta: Buffer): Buffer {
  if (delta.length < 16 || !delta.subarray(0, 8).equals(HASH_DELTA_MAGIC)) throw new Error('not a page-hash delta');
  const pageCount = delta.readUInt32BE(8);
  const n = delta.readUInt32BE(12);
  const out = Buffer.alloc(pageCount * PAGE_HASH_BYTES);
  parent.copy(out, 0, 0, Math.min(parent.length, out.length));
  for (let i = 0; i < n; i++) {
    const at = 16 + i * (4 + PAGE_HASH_BYTES);
    delta.copy(out, delta.readUInt32BE(at) * PAGE_HASH_BYTES, at + 4, at + 4 + PAGE_HASH_BYTES);
  }
  return out;
}
