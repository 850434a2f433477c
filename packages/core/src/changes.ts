/*
 * The pages an incremental carries, found in one read of the database and no copy of it.
 *
 * Rollback-journal mode (GreaterWMS): under SQLite's read lock no writer may change the database
 * file. Under it — taken in short holds (`ReadHolds`), between which writers that waited commit —
 * the live file is read once, in large sequential reads, and while the bytes go by: each page is
 * hashed (XXH3-128, this thread) and compared with the parent's hash, a changed page is written to
 * the staged delta, and the whole file is hashed (SHA-256, on another thread at the same time:
 * `Sha256Thread`). The facts (schema, rows per table) are read in the last hold — the same state
 * as the bytes — with the row counts taken from the pages just read (`RowCensus`) instead of
 * SQLite reading every table again. A commit during the read ends it: the file is copied instead
 * (`takeSnapshot`, which starts again after a commit, in longer holds), and the copy read the same
 * way without holding anyone. Closing a descriptor of the file drops the process's POSIX locks (a
 * POSIX quirk), so ours is closed only after the last hold.
 *
 * WAL mode: the file alone is not consistent, so the online backup copies it (`takeSnapshot`) and
 * the copy is read the same way.
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { crashPoint } from '@stowage/storage';
import { DeltaWriter } from './delta.js';
import { readFacts, withPrivateDatabase, type DatabaseFacts } from './facts.js';
import { PAGE_HASH_BYTES, type FileDigest } from './page-hashes.js';
import type { ReadHolds } from './read-holds.js';
import { censusRows, readPages } from './read-pass.js';
import type { Sha256Thread } from './sha256-thread.js';
import { openLiveDatabase, readInHolds, takeSnapshot, type Snapshot, type SnapshotOptions } from './snapshot.js';
import { readOpenSqliteHeader } from './sqlite-file.js';

/** The snapshot an incremental is taken against: its manifest's source facts and its page hashes. */
export interface ParentPages {
  pageSize: number;
  pageCount: number;
  /** SHA-256 of the parent snapshot (the delta's base). */
  snapshotSha256: string;
  /** `PAGE_HASH_BYTES` per page. */
  pageHashes: Buffer;
}

/** What `takeChanges` found: the new snapshot's description, facts and digest, and the pages it wrote to the delta. */
export interface Changes {
  snapshot: Omit<Snapshot, 'path'>;
  facts: DatabaseFacts;
  digest: FileDigest;
  /** Indexes (0-based) of the pages in the delta, ascending: new, or different from the parent's. */
  pages: number[];
  /** For the manifest. */
  delta: { changedPages: number; basePageCount: number };
}

/**
 * Writes the delta of the live database `source` against `parent` to `staged.delta` (in WAL mode
 * through a copy at `staged.snapshot`). Returns undefined, having written nothing, when the page
 * size is no longer the parent's: no delta can be taken, the caller takes a full. `sha` is a
 * `readPassThread()` not used before, started early so that it comes up while the caller does
 * other work; the caller closes it.
 */
export async function takeChanges(
  source: string,
  parent: ParentPages,
  staged: { snapshot: string; delta: string },
  options: SnapshotOptions,
  sha: Sha256Thread,
): Promise<Changes | undefined> {
  const { db, journalMode } = await openLiveDatabase(source, options);
  let heldMs = 0;
  if (journalMode !== 'wal') {
    await sha.ready(); // before the lock: writers do not wait for the thread to start
    const live = await readInHolds(db, source, options, (file, holds) =>
      readChanges(file, source, parent, staged.delta, (countRows) => readFacts(db, countRows), sha, holds),
    );
    if (!live.changed) return live.value && { ...live.value, snapshot: { ...live.value.header, journalMode, lockMs: live.heldMs } };
    heldMs = live.heldMs;
    await Promise.all([rm(staged.delta, { force: true }), sha.reset()]);
  } else {
    db.close();
  }
  const snapshot = await takeSnapshot(source, staged.snapshot, options);
  const file = await open(staged.snapshot, 'r');
  try {
    const facts = (countRows: (rootPage: number) => number | undefined) => withPrivateDatabase(staged.snapshot, (copy) => readFacts(copy, countRows));
    const read = await readChanges(file, staged.snapshot, parent, staged.delta, facts, sha);
    return read && { ...read, snapshot: { ...read.header, journalMode, lockMs: Math.max(heldMs, snapshot.lockMs) } };
  } finally {
    await file.close();
    // Not needed any more: gone before the kernel writes a GiB of it back.
    await rm(staged.snapshot, { force: true });
  }
}

/**
 * One read of the database `file` (named `name` in messages), start to end, as the module comment
 * says, through `sha` (a fresh `readPassThread()`). `facts` reads the facts while the file is still
 * open, given a row counter from the pages. With `holds` (the live file), reads under them, and
 * reads the facts in the last.
 */
async function readChanges(
  file: FileHandle,
  name: string,
  parent: ParentPages,
  deltaPath: string,
  facts: (countRows: (rootPage: number) => number | undefined) => DatabaseFacts | Promise<DatabaseFacts>,
  sha: Sha256Thread,
  holds?: ReadHolds,
): Promise<(Omit<Changes, 'snapshot'> & { header: { pageSize: number; pageCount: number } }) | undefined> {
  const header = await readOpenSqliteHeader(file, name);
  const { pageSize, pageCount } = header;
  if (pageSize !== parent.pageSize) return undefined;

  const pages: number[] = [];
  const delta = await DeltaWriter.create(deltaPath, pageSize);
  try {
    const parentHashes = parent.pageHashes;
    const parentPages = parentHashes.length / PAGE_HASH_BYTES;
    const read = await readPages(
      file,
      name,
      header,
      sha,
      async (chunk, firstPage, { pageHashes }) => {
        for (let at = 0, index = firstPage; at < chunk.length; at += pageSize, index++) {
          if (index >= parentPages || !sameHash(pageHashes, parentHashes, index * PAGE_HASH_BYTES)) {
            pages.push(index);
            await delta.add(index, chunk.subarray(at, at + pageSize));
          }
        }
        if (firstPage === 0) crashPoint('backup.database-reading');
      },
      holds,
    );
    // While the SHA-256 thread finishes the last chunks.
    const found = await facts(censusRows(read.census, file, name));
    const sha256 = await sha.digest();
    await delta.finish({ pageCount, basePageCount: parent.pageCount, baseSha256: parent.snapshotSha256, targetSha256: sha256 });
    return {
      header: { pageSize, pageCount },
      facts: found,
      digest: { size: read.size, sha256, pageHashes: read.pageHashes },
      pages,
      delta: { changedPages: pages.length, basePageCount: parent.pageCount },
    };
  } finally {
    await delta.close();
  }
}

/** Whether the `PAGE_HASH_BYTES`-byte hashes at byte `at` of `a` and `b` are equal. */
function sameHash(a: Buffer, b: Buffer, at: number): boolean {
  return (
    a.readUInt32LE(at) === b.readUInt32LE(at) &&
    a.readUInt32LE(at + 4) === b.readUInt32LE(at + 4) &&
    a.readUInt32LE(at + 8) === b.readUInt32LE(at + 8) &&
    a.readUInt32LE(at + 12) === b.readUInt32LE(at + 12)
  );
}
