/*
 * The one read of a database file that a backup makes: start to end, in large sequential reads
 * into a few reused buffers. While each chunk goes by, its pages are hashed (XXH3-128, this
 * thread) and noted for the row census (`RowCensus`), the caller does what else it needs with it
 * (compress and encrypt it, or compare it with the parent's pages), and the whole file is hashed
 * (SHA-256) from the buffers read into. An incremental hashes on another thread at the same time
 * (`Sha256Thread`): this thread is its bound. A full hashes here (`Sha256Here`): its compression
 * threads keep both cores busy, and another thread would only add its memory. A full and an
 * incremental differ only in that and in what they do with each chunk. Both read the live file in
 * holds of the read lock (rollback-journal mode), and a copy of it after a commit between two holds.
 */
import { readSync } from 'node:fs';
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { crashPoint } from '@stowage/storage';
import { createXXHash128 } from 'hash-wasm';
import type { Encoder } from './encoding.js';
import { readFacts, withPrivateDatabase, type DatabaseFacts } from './facts.js';
import { hashPages, PAGE_HASH_BYTES, type FileDigest } from './page-hashes.js';
import type { ReadHolds } from './read-holds.js';
import { readOpenSqliteHeader } from './sqlite-file.js';
import { RowCensus } from './row-census.js';
import { Sha256Here, Sha256Thread, type Sha256Slots } from './sha256-thread.js';
import { assertWholeSnapshot, openLiveDatabase, readInHolds, takeSnapshot, type Snapshot, type SnapshotOptions } from './snapshot.js';

/** Bytes per read: large sequential reads, a multiple of every page size. */
const CHUNK_BYTES = 2 << 20;
/** Chunks in flight: read ahead, seen here, hashed by the SHA-256 thread (memory: SLOTS × CHUNK_BYTES). */
const SLOTS = 4;
/**
 * A full's chunks in flight, and their size: one buffer, read into again once seen (the database
 * was warmed, or just copied, so it reads from the page cache; `Sha256Here` is done with a chunk at once, and
 * the main thread waits on zstd's threads anyway). A read-ahead slot measured no faster, 1–3 MiB more RSS.
 */
const FULL_SLOTS = 1;
const FULL_CHUNK_BYTES = 1 << 20;

/** The SHA-256 thread an incremental's `readPages` needs (start it early: it comes up in the background). */
export function readPassThread(): Sha256Thread {
  return new Sha256Thread(SLOTS, CHUNK_BYTES);
}

/** What `readPages` found, besides the SHA-256 (`sha.digest()`, once the thread has caught up). */
export interface PagesRead {
  size: number;
  /** `PAGE_HASH_BYTES` per page, page 1 first. */
  pageHashes: Buffer;
  census: RowCensus;
}

/**
 * Reads `file` (a database of `header`'s pages, named `name` in messages) once, as the module
 * comment says, through `sha` (fresh: a `readPassThread()` or a `Sha256Here`). `visit` sees each chunk after its pages
 * were hashed and noted, with the index (0-based) of its first page; the chunk's buffer is read into
 * again once the promise `visit` returned has resolved. With `holds`, reads are asked for only
 * while a hold lasts, and the next hold is taken once none is in flight. Throws when the file is
 * not exactly the pages its header announces.
 */
export async function readPages(
  file: FileHandle,
  name: string,
  header: { pageSize: number; pageCount: number },
  sha: Sha256Slots,
  visit?: (chunk: Buffer, firstPage: number, read: PagesRead) => void | Promise<void>,
  holds?: Pick<ReadHolds, 'due' | 'breathe'>,
): Promise<PagesRead> {
  const { pageSize, pageCount } = header;
  const { size } = await file.stat();
  assertWholeSnapshot(name, header, size);
  const read: PagesRead = { size, pageHashes: Buffer.alloc(pageCount * PAGE_HASH_BYTES), census: new RowCensus(pageSize, pageCount) };
  const hasher = await createXXHash128();
  const slots = sha.slots.length;
  const chunkBytes = sha.slots[0]!.length;
  const chunks = Math.ceil(size / chunkBytes);
  const free: Array<Promise<void>> = Array.from({ length: slots }, () => Promise.resolve());
  const reads: Array<Promise<number>> = [];
  const readChunk = (n: number) => {
    const slot = n % slots;
    const length = Math.min(chunkBytes, size - n * chunkBytes);
    reads[slot] = free[slot]!.then(async () => {
      const { bytesRead } = await file.read(sha.slots[slot]!, 0, length, n * chunkBytes);
      if (bytesRead !== length) throw new Error(`${name} ended at ${n * chunkBytes + bytesRead} bytes while being read, ${size} expected`);
      return length;
    });
    reads[slot]!.catch(() => undefined); // awaited below, unless an error ends the read first
  };
  let issued = 0; // chunks whose read was asked for
  let seen = 0;
  /** Asks for reads up to `slots` ahead while the hold lasts, and one at least at its start. */
  const readAhead = (holdStarted: boolean) => {
    for (let first = holdStarted; issued < chunks && issued < seen + slots && (first || !holds?.due()); first = false) readChunk(issued++);
  };
  readAhead(true);
  for (let n = 0; n < chunks; n++) {
    if (n === issued) {
      // The hold ended with no read in flight: every byte is read under a hold.
      await holds!.breathe();
      readAhead(true);
    }
    const slot = n % slots;
    const length = await reads[slot]!;
    const chunk = sha.slots[slot]!.subarray(0, length);
    const hashed = sha.update(slot, length);
    const firstPage = (n * chunkBytes) / pageSize;
    hashPages(hasher, chunk, pageSize, read.pageHashes, firstPage * PAGE_HASH_BYTES);
    for (let at = 0, index = firstPage; at < length; at += pageSize, index++) read.census.observe(index, chunk, at);
    await visit?.(chunk, firstPage, read);
    free[slot] = hashed;
    seen = n + 1;
    readAhead(false);
  }
  return read;
}

/**
 * Rows of the table whose b-tree's root is `root`, from `census` of the database `file` (named
 * `name` in messages), reading its interior pages from the file; for `readFacts`.
 */
export function censusRows(census: RowCensus, file: FileHandle, name: string): (root: number) => number | undefined {
  const page = Buffer.alloc(census.pageSize);
  return (root) =>
    census.rows(root, (index) => {
      if (readSync(file.fd, page, 0, census.pageSize, index * census.pageSize) !== census.pageSize) throw new Error(`${name} ended inside page ${index + 1}`);
      return page;
    });
}

/** What `readSnapshot` found. */
export interface SnapshotRead {
  digest: FileDigest;
  facts: DatabaseFacts;
  /** Size and SHA-256 of the encoded file, when an encoder was given. */
  encoded?: { size: number; sha256: string };
}

/**
 * A full's pass over its snapshot at `path` (a private copy, of `header`'s pages; `name` in
 * messages): digest and page hashes, the facts with row counts from the pages read, and, through
 * `encoder` when given, the snapshot compressed and encrypted on the way. The encoder is destroyed
 * when the pass fails.
 */
export async function readSnapshot(path: string, name: string, header: { pageSize: number; pageCount: number }, encoder?: Encoder): Promise<SnapshotRead> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (error) {
    encoder?.destroy(error as Error);
    throw error;
  }
  try {
    return await readFull(file, name, header, (countRows) => withPrivateDatabase(path, (db) => readFacts(db, countRows)), encoder);
  } finally {
    await file.close();
  }
}

/** How `takeFull` encodes the snapshot: the encoded file's name ends in `suffix`; `open` starts an encoder writing `path`, for an input of `size` bytes. */
export interface FullEncoding {
  suffix: string;
  open: (path: string, size: number) => Promise<Encoder>;
}

/** A full's snapshot, its pass, and what to store: `staged`, the encoded file or the copy itself; `copy`, the copy when one was made. */
export interface FullSnapshot extends SnapshotRead {
  snapshot: Omit<Snapshot, 'path'>;
  staged: string;
  copy?: string;
}

/**
 * A full's snapshot of the live database `source`, read once (`readSnapshot`'s pass), staged under
 * `stem`. Encoded and in rollback-journal mode, the live file itself is read under read holds
 * (`readInHolds`), with no copy: the facts are read in the last hold, the encoder finishes its last
 * chunks after it. In WAL mode, after a commit between two holds (the encoded output so far is
 * removed), or unencoded, the database is copied to `<stem>.sqlite3` (`takeSnapshot`) and the copy
 * read without holding anyone.
 */
export async function takeFull(source: string, stem: string, options: SnapshotOptions, encoding?: FullEncoding): Promise<FullSnapshot> {
  const live = encoding && (await readLive(source, `${stem}.sqlite3${encoding.suffix}`, options, encoding));
  if (live) return live;
  const copy = `${stem}.sqlite3`;
  const snapshot = await takeSnapshot(source, copy, options);
  crashPoint('backup.snapshot-staged');
  // Not the live pass's name: its destroyed encoder may still have that file open.
  const staged = encoding ? `${stem}.copy${encoding.suffix}` : copy;
  const encoder = await encoding?.open(staged, snapshot.pageSize * snapshot.pageCount);
  const { path: _, ...described } = snapshot;
  return { ...(await readSnapshot(copy, source, snapshot, encoder)), snapshot: described, staged, copy };
}

/** `takeFull`'s pass over the live database, encoded to `staged`; undefined, having kept nothing, in WAL mode or after a commit between two holds. */
async function readLive(source: string, staged: string, options: SnapshotOptions, encoding: FullEncoding): Promise<FullSnapshot | undefined> {
  const { db, journalMode } = await openLiveDatabase(source, options);
  if (journalMode === 'wal') {
    db.close();
    return undefined;
  }
  let opened: Encoder;
  try {
    // Before the lock: writers do not wait for the encoder's threads to start.
    opened = await encoding.open(staged, (await stat(source)).size);
  } catch (error) {
    db.close();
    throw error;
  }
  const live = await readInHolds(db, source, options, async (file, holds) => {
    const header = await readOpenSqliteHeader(file, source);
    return { ...(await readFull(file, source, header, (countRows) => readFacts(db, countRows), opened, holds)), header };
  }).catch(async (error: Error) => {
    opened.destroy(error); // when the pass did not start
    await rm(staged, { force: true });
    throw error;
  });
  if (live.changed) {
    await rm(staged, { force: true }); // its encoder was destroyed with the pass
    return undefined;
  }
  const { header, ...read } = live.value;
  crashPoint('backup.snapshot-staged');
  return { ...read, snapshot: { pageSize: header.pageSize, pageCount: header.pageCount, journalMode, lockMs: live.heldMs }, staged };
}

/**
 * The one pass of a full over its open database `file`, as `readSnapshot` says; with `holds`, every
 * read under them and the facts in the last, which ends once they are read.
 */
async function readFull(
  file: FileHandle,
  name: string,
  header: { pageSize: number; pageCount: number },
  facts: (countRows: (rootPage: number) => number | undefined) => DatabaseFacts | Promise<DatabaseFacts>,
  encoder?: Encoder,
  holds?: ReadHolds,
): Promise<SnapshotRead> {
  const sha = new Sha256Here(FULL_SLOTS, FULL_CHUNK_BYTES);
  try {
    const read = await readPages(
      file,
      name,
      header,
      sha,
      async (chunk, firstPage) => {
        await encoder?.write(chunk);
        if (firstPage === 0) crashPoint('backup.database-reading');
      },
      holds,
    );
    const ending = encoder?.end();
    ending?.catch(() => undefined); // awaited below, after the facts
    // While the encoder's threads finish the last chunks.
    const found = await facts(censusRows(read.census, file, name));
    holds?.release();
    const encoded = await ending;
    const digest = { size: read.size, sha256: await sha.digest(), pageHashes: read.pageHashes };
    return { digest, facts: found, ...(encoded ? { encoded } : {}) };
  } catch (error) {
    encoder?.destroy(error as Error);
    throw error;
  } finally {
    await sha.close();
  }
}
