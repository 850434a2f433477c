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
 * applied in one pass over the full image (`ChainPages`).
 */
import { closeSync, openSync, readSync, writev } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import type { Recycling } from '@stowage/compression';
import { streamed } from '@stowage/storage';
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

/**
 * Where each page of the last snapshot of a chain comes from: the newest delta that carries it,
 * else the full image, else zeros (a page cut off by a shrinking link and not written since).
 * Applying the deltas one after the other to the image gives the same bytes; this lets the image
 * be written once, with the pages substituted on the way (`copy`).
 *
 * The deltas are received decoded, as streams, newest first (`receive`): a page is kept only
 * from the newest delta that carries it (and survives the truncations of the links after it), so
 * a page a later link rewrote is never stored. Kept pages go to one spill file, in the order they
 * are kept, in batched writes; `close()` closes it (the caller removes it).
 */
export class ChainPages {
  readonly pageSize: number;
  /** Pages of the last snapshot (that of the first delta received). */
  pageCount: number;
  /** Pages of the full image that survive every link's truncation. */
  baseLimit: number;
  /** Page index → its slot in the spill file (page-sized, in the order kept). */
  readonly #slots = new Map<number, number>();
  readonly #fd: number;
  /** Slots taken by committed deltas. */
  #used = 0;
  /** Page count of the newest delta received so far: pages at or past it were cut off later. */
  #limit = Infinity;
  #received = false;
  #sorted: number[] | undefined;
  readonly #spare: Buffer[] = [];

  private constructor(fd: number, pageSize: number, basePageCount: number) {
    this.#fd = fd;
    this.pageSize = pageSize;
    this.pageCount = basePageCount;
    this.baseLimit = basePageCount;
  }

  /** Creates the spill file at `path` (which must not exist) for a chain whose full image has `base`'s pages. */
  static create(path: string, base: { pageSize: number; pageCount: number }): ChainPages {
    return new ChainPages(openSync(path, 'wx+', 0o600), base.pageSize, base.pageCount);
  }

  /**
   * A sink for one delta's decoded bytes, older than those received so far, that must apply to
   * `link.base`. Once its stream has ended and its bytes are known to be intact, `commit()` keeps
   * its pages, or throws what is wrong with it (`chain_broken` for another base, `backup_corrupt`
   * for a malformed delta) — a delta refused adds nothing; `abort()` forgets a failed attempt.
   */
  receive(link: ChainLink): DeltaReceiver {
    return new DeltaReceiver(this.#fd, this.pageSize, link, this.#limit, this.#slots, this.#used, this.#spare, (receiver) => {
      this.#used = receiver.slotsUsed;
      this.#limit = Math.min(this.#limit, receiver.pageCount);
      this.baseLimit = Math.min(this.baseLimit, receiver.pageCount);
      if (!this.#received) this.pageCount = receiver.pageCount;
      this.#received = true;
      this.#sorted = undefined;
    });
  }

  /** Pages that come from a delta, ascending. */
  get pages(): readonly number[] {
    this.#sorted ??= [...this.#slots.keys()].sort((a, b) => a - b);
    return this.#sorted;
  }

  /** How many of `pages` from position `i` on follow one another both in the image and in the spill file (one read copies them). */
  run(i: number): number {
    const pages = this.pages;
    const first = pages[i]!;
    const slot = this.#slots.get(first)!;
    let n = 1;
    while (pages[i + n] === first + n && this.#slots.get(first + n) === slot + n) n++;
    return n;
  }

  /** Copies `length` bytes from byte `from` of page `index`'s new content (and of the pages of its `run` after it) into `target` at `at`; false when no delta carries it. */
  copy(index: number, target: Buffer, at: number, from = 0, length = this.pageSize - from): boolean {
    const slot = this.#slots.get(index);
    if (slot === undefined) return false;
    if (readSync(this.#fd, target, at, length, slot * this.pageSize + from) !== length) throw new Error(`the chain's spill file ends inside page ${index}`);
    return true;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/** One decoded delta of a chain, and the snapshot it must apply to. */
export interface ChainLink {
  /** Backup id, for messages. */
  link: string;
  /** The snapshot this delta was taken against: the previous link's. */
  base: { sha256: string; name: string };
}

/** Bytes of kept pages a `DeltaReceiver` batches per write. */
const SPILL_BATCH_BYTES = 1 << 20;

/**
 * Parses one decoded delta as it streams (`ChainPages.receive`): checks its header, copies the
 * pages no newer link carries into batches written to the spill file, and skips the others. A
 * malformed or misplaced delta is not an error of the stream (its stored bytes may yet prove it
 * is what was backed up): its pages are dropped and `commit()` reports it.
 */
export class DeltaReceiver extends Writable {
  /** Slots used once this delta is committed. */
  slotsUsed: number;
  /** The delta's page count, once its header was read. */
  pageCount = 0;
  readonly #fd: number;
  readonly #pageSize: number;
  readonly #link: ChainLink;
  readonly #limit: number;
  readonly #slots: Map<number, number>;
  readonly #firstSlot: number;
  readonly #committed: (receiver: DeltaReceiver) => void;
  /** Pages this delta claimed (forgotten on `abort`). */
  readonly #claimed: number[] = [];
  readonly #header = Buffer.alloc(HEADER_BYTES);
  #headerBytes = 0;
  #changedPages = 0;
  #records = 0;
  /** Bytes of the current record seen; its page index (once its 4 bytes are in) and whether it is kept. */
  #recordBytes = 0;
  readonly #index = Buffer.alloc(4);
  #keep = false;
  /** Batch buffers free for reuse, shared by the receivers of a chain. */
  readonly #spare: Buffer[];
  #batch: Buffer;
  #batched = 0;
  /** Filled batches waiting to be written, and the spill position of the first. */
  #full: Buffer[] = [];
  #writeAt: number;
  #writing: Promise<void> | undefined;
  #problem: CoreError | undefined;
  #recycler: Recycling | undefined;

  constructor(
    fd: number,
    pageSize: number,
    link: ChainLink,
    limit: number,
    slots: Map<number, number>,
    firstSlot: number,
    spare: Buffer[],
    committed: (receiver: DeltaReceiver) => void,
  ) {
    super({ highWaterMark: 1 << 20 });
    this.#fd = fd;
    this.#pageSize = pageSize;
    this.#link = link;
    this.#limit = limit;
    this.#slots = slots;
    this.#firstSlot = this.slotsUsed = firstSlot;
    this.#writeAt = firstSlot * pageSize;
    this.#committed = committed;
    this.#spare = spare;
    this.#batch = spare.pop() ?? Buffer.allocUnsafe(SPILL_BATCH_BYTES);
  }

  /** Hands each chunk back to `decoder`, which pushed it, once parsed (its pages are copied): the caller makes sure this receiver is its last reader. */
  recycleInto(decoder: Recycling): void {
    this.#recycler = decoder;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.#problem) this.#parse(chunk);
    // Parsed, the chunk is read no more: recycled, else garbage.
    if (this.#recycler) this.#recycler.recycle(chunk);
    else streamed(chunk.length);
    this.#drain(callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#problem && this.#headerBytes < HEADER_BYTES) this.#problem = corrupt(this.#link.link, 'it is not a Stowage page delta');
    else if (!this.#problem && (this.#records < this.#changedPages || this.#recordBytes > 0)) this.#problem = corrupt(this.#link.link, 'it ends early');
    if (this.#batched > 0 && !this.#problem) this.#rotate();
    else this.#spare.push(this.#batch);
    this.#drain(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A write still running must land before another attempt reuses its slots.
    void (this.#writing ?? Promise.resolve()).then(() => callback(error));
  }

  /** Keeps the delta's pages (its stream has ended, its stored bytes are intact), or throws what is wrong with it. */
  commit(): void {
    if (this.#problem) {
      this.abort();
      throw this.#problem;
    }
    this.#committed(this);
  }

  /** Forgets the pages this attempt claimed. */
  abort(): void {
    for (const page of this.#claimed.splice(0)) this.#slots.delete(page);
    this.slotsUsed = this.#firstSlot;
  }

  #parse(chunk: Buffer): void {
    let at = 0;
    if (this.#headerBytes < HEADER_BYTES) {
      const n = Math.min(HEADER_BYTES - this.#headerBytes, chunk.length);
      chunk.copy(this.#header, this.#headerBytes, 0, n);
      this.#headerBytes += n;
      at = n;
      if (this.#headerBytes < HEADER_BYTES || !this.#readHeader()) return;
    }
    const recordBytes = 4 + this.#pageSize;
    while (at < chunk.length) {
      if (this.#records === this.#changedPages) {
        this.#problem = corrupt(this.#link.link, 'it has bytes past its last page');
        return;
      }
      if (this.#recordBytes < 4) {
        const n = Math.min(4 - this.#recordBytes, chunk.length - at);
        chunk.copy(this.#index, this.#recordBytes, at, at + n);
        this.#recordBytes += n;
        at += n;
        if (this.#recordBytes < 4) return;
        if (!this.#claim(this.#index.readUInt32BE(0))) return;
      }
      const n = Math.min(recordBytes - this.#recordBytes, chunk.length - at);
      if (this.#keep) chunk.copy(this.#batch, this.#batched - recordBytes + this.#recordBytes, at, at + n);
      this.#recordBytes += n;
      at += n;
      if (this.#recordBytes === recordBytes) {
        this.#recordBytes = 0;
        this.#records++;
      }
    }
  }

  /** Reads the header; false (and the problem noted) when the delta cannot apply. */
  #readHeader(): boolean {
    const { link, base } = this.#link;
    try {
      const header = decodeHeader(this.#header, link);
      if (header.baseSha256 !== base.sha256) {
        throw new CoreError(
          CoreErrorCode.ChainBroken,
          `delta ${link} was taken against another base than ${base.name}; the chain is inconsistent — restore ${base.name} or an earlier full backup`,
          { context: { link, base: base.name } },
        );
      }
      if (header.pageSize !== this.#pageSize) throw corrupt(link, `its page size ${header.pageSize} is not the chain's ${this.#pageSize}`);
      this.pageCount = header.pageCount;
      this.#changedPages = header.changedPages;
      return true;
    } catch (error) {
      this.#problem = error as CoreError;
      return false;
    }
  }

  /** Decides whether the page of the record begun is kept, reserving its place in the batch; false when the delta is malformed. */
  #claim(index: number): boolean {
    if (index >= this.pageCount) {
      this.#problem = corrupt(this.#link.link, `page ${index} is past its page count`);
      return false;
    }
    // Kept unless a newer link carries it or cut it off.
    this.#keep = index < this.#limit && !this.#slots.has(index);
    if (!this.#keep) return true;
    if (this.#batched + this.#pageSize > this.#batch.length) this.#rotate();
    this.#batched += this.#pageSize;
    this.#slots.set(index, this.slotsUsed++);
    this.#claimed.push(index);
    return true;
  }

  /** Queues the batch for writing and starts another. */
  #rotate(): void {
    this.#full.push(this.#batch.subarray(0, this.#batched));
    this.#batch = this.#spare.pop() ?? Buffer.allocUnsafe(SPILL_BATCH_BYTES);
    this.#batched = 0;
  }

  /** Writes the filled batches (then free for reuse), then calls back. */
  #drain(callback: (error?: Error | null) => void): void {
    if (this.#full.length === 0) return callback();
    const buffers = this.#full;
    this.#full = [];
    const length = buffers.reduce((sum, b) => sum + b.length, 0);
    const position = this.#writeAt;
    this.#writeAt += length;
    this.#writing = new Promise((resolve) =>
      writeAllAt(this.#fd, buffers, position, length, (error) => {
        this.#writing = undefined;
        for (const buffer of buffers) this.#spare.push(Buffer.from(buffer.buffer, buffer.byteOffset, SPILL_BATCH_BYTES));
        resolve();
        callback(error);
      }),
    );
  }
}

/** `writev` of `buffers` (`length` bytes) at `position`, again for what a short write left. */
export function writeAllAt(fd: number, buffers: Buffer[], position: number, length: number, callback: (error: Error | null) => void): void {
  writev(fd, buffers, position, (error, written) => {
    if (error || written >= length) return callback(error);
    if (written === 0) return callback(new Error(`wrote 0 of ${length} bytes at ${position}`));
    let skip = written;
    const rest: Buffer[] = [];
    for (const buffer of buffers) {
      if (skip >= buffer.length) skip -= buffer.length;
      else {
        rest.push(buffer.subarray(skip));
        skip = 0;
      }
    }
    writeAllAt(fd, rest, position + written, length - written, callback);
  });
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
