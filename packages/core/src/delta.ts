/*
 * Page deltas (format v1, see docs/formats.md): the pages of a snapshot that differ from its
 * parent's, found by comparing per-page hashes, plus what is needed to rebuild the file exactly.
 *
 *   header (96 bytes): magic "STWDELTA" | u32 version=1 | u32 pageSize | u32 pageCount (new)
 *                      | u32 basePageCount | u32 changedPages | u32 reserved=0
 *                      | 32 bytes base SHA-256 | 32 bytes target SHA-256
 *   then per changed page, ascending: u32 page index (0-based) | pageSize bytes
 * All integers big-endian. Applying = write each page at index × pageSize, truncate to
 * pageCount × pageSize; the result's SHA-256 must equal the target SHA-256. A chain's deltas are
 * applied in one pass over the full image (`ChainOverlay`).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { CoreError, CoreErrorCode } from './errors.js';

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

/**
 * Writes a delta file as its pages are found: records first (in ascending page order, batched),
 * the header last, once the page count and the target SHA-256 are known. Not fsynced: it is a
 * staging file, encoded and stored (and made durable) by the destination.
 */
export class DeltaWriter {
  readonly #batch: Buffer;
  #used = 0;
  #position = HEADER_BYTES;
  #pages = 0;

  private constructor(
    private readonly file: FileHandle,
    readonly pageSize: number,
  ) {
    this.#batch = Buffer.allocUnsafe(Math.max(1, Math.floor(DELTA_BATCH_BYTES / (4 + pageSize))) * (4 + pageSize));
  }

  /** Creates `path` (which must not exist) for a delta of `pageSize`-byte pages. */
  static async create(path: string, pageSize: number): Promise<DeltaWriter> {
    return new DeltaWriter(await open(path, 'wx', 0o600), pageSize);
  }

  /** Adds page `index` (0-based; after every page added before it); `page` may be reused once this returns. */
  async add(index: number, page: Uint8Array): Promise<void> {
    this.#batch.writeUInt32BE(index, this.#used);
    this.#batch.set(page, this.#used + 4);
    this.#used += 4 + this.pageSize;
    this.#pages++;
    if (this.#used === this.#batch.length) await this.#flush();
  }

  /** Writes what is batched and the header; returns the delta's size. */
  async finish(header: Omit<DeltaHeader, 'changedPages' | 'pageSize'>): Promise<number> {
    await this.#flush();
    await this.file.write(encodeHeader({ ...header, pageSize: this.pageSize, changedPages: this.#pages }), 0, HEADER_BYTES, 0);
    return this.#position;
  }

  close(): Promise<void> {
    return this.file.close();
  }

  async #flush(): Promise<void> {
    if (this.#used === 0) return;
    await this.file.write(this.#batch, 0, this.#used, this.#position);
    this.#position += this.#used;
    this.#used = 0;
  }
}

/** Bytes of page records a `DeltaWriter` batches per write. */
const DELTA_BATCH_BYTES = 1 << 20;

/** One decoded delta file of a chain, and the snapshot it must apply to. */
export interface ChainLink {
  path: string;
  /** Backup id, for messages. */
  link: string;
  /** The snapshot this delta was taken against: the previous link's. */
  base: { sha256: string; name: string };
}

/**
 * Where each page of the last snapshot of a chain comes from, found by reading the deltas' page
 * indexes (not their pages) in order: the newest delta that carries the page, or the full image,
 * or zeros (a page cut off by a shrinking link and not written since). Applying the deltas one
 * after the other to the image gives the same bytes; this lets the image be written once, with
 * the pages substituted on the way (`pageInto`). Delta files stay open until `close()`.
 * A delta meant for another base is refused before a byte is written.
 */
export class ChainOverlay {
  readonly pageSize: number;
  /** Pages of the last snapshot. */
  pageCount = 0;
  /** Pages of the full image that survive every link's truncation. */
  baseLimit: number;
  /** Page index → the delta file and offset that holds its content, newest link wins. */
  readonly #pages = new Map<number, { fd: number; position: number }>();
  readonly #fds: number[] = [];
  #sorted: number[] | undefined;

  private constructor(pageSize: number, basePageCount: number) {
    this.pageSize = pageSize;
    this.baseLimit = basePageCount;
    this.pageCount = basePageCount;
  }

  static open(links: readonly ChainLink[], base: { pageSize: number; pageCount: number }): ChainOverlay {
    const overlay = new ChainOverlay(base.pageSize, base.pageCount);
    try {
      for (const link of links) overlay.#add(link);
    } catch (error) {
      overlay.close();
      throw error;
    }
    return overlay;
  }

  /** Pages that come from a delta, ascending. */
  get pages(): readonly number[] {
    this.#sorted ??= [...this.#pages.keys()].sort((a, b) => a - b);
    return this.#sorted;
  }

  /** Copies `length` bytes of page `index`'s new content, from byte `from` of the page, into `target` at `at`; false when no delta carries it. */
  pageInto(index: number, target: Buffer, at: number, from = 0, length = this.pageSize - from): boolean {
    const source = this.#pages.get(index);
    if (!source) return false;
    if (readSync(source.fd, target, at, length, source.position + from) !== length) throw new Error(`delta file ends inside page ${index}`);
    return true;
  }

  close(): void {
    for (const fd of this.#fds.splice(0)) closeSync(fd);
  }

  #add({ path, link, base }: ChainLink): void {
    // Synchronous reads on purpose: a delta's index is thousands of small records in the page cache.
    const fd = openSync(path, 'r');
    this.#fds.push(fd);
    const headerBytes = Buffer.alloc(HEADER_BYTES);
    if (readSync(fd, headerBytes, 0, HEADER_BYTES, 0) !== HEADER_BYTES) throw corrupt(link, 'it is not a Stowage page delta');
    const header = decodeHeader(headerBytes, link);
    if (header.baseSha256 !== base.sha256) {
      throw new CoreError(
        CoreErrorCode.ChainBroken,
        `delta ${link} was taken against another base than ${base.name}; the chain is inconsistent — restore ${base.name} or an earlier full backup`,
        {
          context: { link, base: base.name },
        },
      );
    }
    if (header.pageSize !== this.pageSize) throw corrupt(link, `its page size ${header.pageSize} is not the chain's ${this.pageSize}`);
    const recordBytes = 4 + header.pageSize;
    const perBlock = Math.max(1, Math.floor((4 << 20) / recordBytes));
    const block = Buffer.alloc(Math.min(header.changedPages, perBlock) * recordBytes);
    for (let done = 0; done < header.changedPages; ) {
      const count = Math.min(perBlock, header.changedPages - done);
      const length = count * recordBytes;
      const position = HEADER_BYTES + done * recordBytes;
      if (readSync(fd, block, 0, length, position) !== length) throw corrupt(link, 'it ends early');
      for (let i = 0; i < count; i++) {
        const index = block.readUInt32BE(i * recordBytes);
        if (index >= header.pageCount) throw corrupt(link, `page ${index} is past its page count`);
        this.#pages.set(index, { fd, position: position + i * recordBytes + 4 });
      }
      done += count;
    }
    // Truncation to the link's page count (a no-op when it grew).
    if (header.pageCount < this.pageCount) for (const index of this.#pages.keys()) if (index >= header.pageCount) this.#pages.delete(index);
    this.baseLimit = Math.min(this.baseLimit, header.pageCount);
    this.pageCount = header.pageCount;
    this.#sorted = undefined;
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
