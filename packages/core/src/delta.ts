/*
 * Page deltas (format v1, see docs/formats.md): the pages of a snapshot that differ from its
 * parent's, found by comparing per-page hashes, plus what is needed to rebuild the file exactly.
 *
 *   header (96 bytes): magic "STWDELTA" | u32 version=1 | u32 pageSize | u32 pageCount (new)
 *                      | u32 basePageCount | u32 changedPages | u32 reserved=0
 *                      | 32 bytes base SHA-256 | 32 bytes target SHA-256
 *   then per changed page, ascending: u32 page index (0-based) | pageSize bytes
 * All integers big-endian. Applying = write each page at index × pageSize, truncate to
 * pageCount × pageSize; the result's SHA-256 must equal the target SHA-256.
 */
import { closeSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { CoreError, CoreErrorCode } from './errors.js';
import { PAGE_HASH_BYTES } from './page-hashes.js';

const MAGIC = Buffer.from('STWDELTA', 'latin1');
export const DELTA_VERSION = 1;
const HEADER_BYTES = 96;

export interface DeltaHeader {
  pageSize: number;
  pageCount: number;
  basePageCount: number;
  changedPages: number;
  baseSha256: string;
  targetSha256: string;
}

/** Indexes of pages that are new or whose hash differs from the parent's. */
export function changedPages(parentHashes: Buffer, hashes: Buffer): number[] {
  const count = hashes.length / PAGE_HASH_BYTES;
  const parentCount = parentHashes.length / PAGE_HASH_BYTES;
  const changed: number[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * PAGE_HASH_BYTES;
    if (i >= parentCount || parentHashes.compare(hashes, at, at + PAGE_HASH_BYTES, at, at + PAGE_HASH_BYTES) !== 0) changed.push(i);
  }
  return changed;
}

/** Writes the delta of `snapshotPath` against its parent to `deltaPath`; returns its size. */
export async function writeDelta(snapshotPath: string, deltaPath: string, header: Omit<DeltaHeader, 'changedPages'>, pages: readonly number[]): Promise<number> {
  const source = await open(snapshotPath, 'r');
  const out = await open(deltaPath, 'wx', 0o600);
  try {
    await out.write(encodeHeader({ ...header, changedPages: pages.length }));
    const record = Buffer.alloc(4 + header.pageSize);
    // Batch records so that a delta of thousands of pages is a few hundred writes.
    const batch: Buffer[] = [];
    for (const index of pages) {
      record.writeUInt32BE(index, 0);
      const { bytesRead } = await source.read(record, 4, header.pageSize, index * header.pageSize);
      if (bytesRead !== header.pageSize) throw new Error(`snapshot ${snapshotPath} ends inside page ${index}`);
      batch.push(Buffer.from(record));
      if (batch.length === 256) await out.writev(batch.splice(0));
    }
    if (batch.length) await out.writev(batch);
    await out.sync();
    return HEADER_BYTES + pages.length * (4 + header.pageSize);
  } finally {
    await Promise.all([source.close(), out.close()]);
  }
}

/**
 * Applies the delta file at `deltaPath` to the database image at `imagePath`, whose SHA-256
 * must be `expectedBase`, which the delta's header names. A delta meant for another base is
 * refused before a byte is written. The caller syncs the image once the chain is applied.
 */
export async function applyDelta(imagePath: string, deltaPath: string, expectedBase: { sha256: string; name: string }, link: string): Promise<DeltaHeader> {
  // Synchronous I/O on purpose: thousands of scattered page writes into the page cache cost a few
  // microseconds each this way, against a thread-pool round trip each when asynchronous.
  const delta = openSync(deltaPath, 'r');
  const image = openSync(imagePath, 'r+');
  try {
    const headerBytes = Buffer.alloc(HEADER_BYTES);
    if (readSync(delta, headerBytes, 0, HEADER_BYTES, 0) !== HEADER_BYTES) throw corrupt(link, 'it is not a Stowage page delta');
    const header = decodeHeader(headerBytes, link);
    if (header.baseSha256 !== expectedBase.sha256) {
      throw new CoreError(CoreErrorCode.ChainBroken, `delta ${link} was taken against another base than ${expectedBase.name}; the chain is inconsistent — restore ${expectedBase.name} or an earlier full backup`, {
        context: { link, base: expectedBase.name },
      });
    }
    const recordBytes = 4 + header.pageSize;
    const perBlock = Math.max(1, Math.floor((4 << 20) / recordBytes));
    const block = Buffer.alloc(perBlock * recordBytes);
    for (let done = 0; done < header.changedPages; ) {
      const count = Math.min(perBlock, header.changedPages - done);
      const length = count * recordBytes;
      if (readSync(delta, block, 0, length, HEADER_BYTES + done * recordBytes) !== length) throw corrupt(link, 'it ends early');
      for (let i = 0; i < count; i++) {
        const at = i * recordBytes;
        const index = block.readUInt32BE(at);
        if (index >= header.pageCount) throw corrupt(link, `page ${index} is past its page count`);
        writeSync(image, block, at + 4, header.pageSize, index * header.pageSize);
      }
      done += count;
    }
    ftruncateSync(image, header.pageCount * header.pageSize);
    return header;
  } finally {
    closeSync(delta);
    closeSync(image);
  }
}

function encodeHeader(h: DeltaHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt32BE(DELTA_VERSION, 8);
  b.writeUInt32BE(h.pageSize, 12);
  b.writeUInt32BE(h.pageCount, 16);
  b.writeUInt32BE(h.basePageCount, 20);
  b.writeUInt32BE(h.changedPages, 24);
  Buffer.from(h.baseSha256, 'hex').copy(b, 32);
  Buffer.from(h.targetSha256, 'hex').copy(b, 64);
  return b;
}

function decodeHeader(b: Buffer, link: string): DeltaHeader {
  if (!b.subarray(0, 8).equals(MAGIC)) throw corrupt(link, 'it is not a Stowage page delta');
  if (b.readUInt32BE(8) !== DELTA_VERSION) throw corrupt(link, `unknown delta version ${b.readUInt32BE(8)}`);
  return {
    pageSize: b.readUInt32BE(12),
    pageCount: b.readUInt32BE(16),
    basePageCount: b.readUInt32BE(20),
    changedPages: b.readUInt32BE(24),
    baseSha256: b.subarray(32, 64).toString('hex'),
    targetSha256: b.subarray(64, 96).toString('hex'),
  };
}

function corrupt(link: string, why: string): CoreError {
  return new CoreError(CoreErrorCode.BackupCorrupt, `delta ${link} is damaged: ${why}`, { context: { link } });
}
