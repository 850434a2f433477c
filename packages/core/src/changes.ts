/*
 * The pages an incremental carries, found in one read of the database and no copy of it.
 *
 * Rollback-journal mode (GreaterWMS): a read transaction holds SQLite's SHARED lock, under which no
 * writer may change the database file. Under it the live file is read once, in large sequential
 * reads, and while the bytes go by: each page is hashed (XXH3-128, this thread) and compared with
 * the parent's hash, a changed page is written to the staged delta, and the whole file is hashed
 * (SHA-256, on another thread at the same time: `Sha256Thread`). The facts (schema, rows per table)
 * are read in the same transaction — the same state as the bytes — with the row counts taken from
 * the pages just read (`RowCensus`) instead of SQLite reading every table again. Writers wait for
 * the read (`lockMs`), about as long as it takes to SHA-256 the file; the copy that `takeSnapshot`
 * makes holds them for about half that but costs the copy and a read after it — so a read that
 * would hold them past `readBudgetMs` (a large database, a busy machine) is given up for a copy.
 * Closing a descriptor of the file drops the process's POSIX locks (a POSIX quirk), so ours is
 * opened under the lock and closed only after the transaction ends.
 *
 * WAL mode: the file alone is not consistent, so the online backup copies it (`takeSnapshot`) and
 * the copy is read the same way.
 */
import { open, rm, stat, type FileHandle } from 'node:fs/promises';
import { crashPoint } from '@stowage/storage';
import type Database from 'better-sqlite3';
import { DeltaWriter } from './delta.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { readFacts, withPrivateDatabase, type DatabaseFacts } from './facts.js';
import { PAGE_HASH_BYTES, type FileDigest } from './page-hashes.js';
import { censusRows, readPages, readPassThread } from './read-pass.js';
import type { Sha256Thread } from './sha256-thread.js';
import { openLiveDatabase, sourceError, takeSnapshot, type Snapshot, type SnapshotOptions } from './snapshot.js';
import { parseSqliteHeader } from './sqlite-file.js';

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
 * size is no longer the parent's: no delta can be taken, the caller takes a full.
 */
export async function takeChanges(
  source: string,
  parent: ParentPages,
  staged: { snapshot: string; delta: string },
  options: ChangesOptions,
): Promise<Changes | undefined> {
  const { db, journalMode } = await openLiveDatabase(source, options);
  const sha = readPassThread();
  try {
    let heldMs = 0;
    const budgetMs = options.readBudgetMs ?? READ_BUDGET_MS;
    // A file too large to be read within the budget even at a fast pace is copied at once.
    const readable = journalMode !== 'wal' && (await stat(source)).size <= budgetMs * LIVE_READ_BYTES_PER_MS;
    if (readable) {
      const live = await readLive(db, source, parent, staged.delta, sha, options);
      if (!live.tooSlow) return live.read && { ...live.read, snapshot: { ...live.read.header, journalMode, lockMs: live.heldMs } };
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
      return read && { ...read, snapshot: { ...read.header, journalMode, lockMs: heldMs + snapshot.lockMs } };
    } finally {
      await file.close();
      // Not needed any more: gone before the kernel writes a GiB of it back.
      await rm(staged.snapshot, { force: true });
    }
  } finally {
    await sha.close();
  }
}

/** `readChanges` of the live database under a read transaction of `db` (closed after), within the read budget. */
async function readLive(
  db: Database.Database,
  source: string,
  parent: ParentPages,
  deltaPath: string,
  sha: Sha256Thread,
  options: ChangesOptions,
): Promise<{ read: Awaited<ReturnType<typeof readChanges>>; tooSlow: boolean; heldMs: number }> {
  let started = performance.now();
  try {
    await sha.ready(); // before the lock: writers do not wait for the thread to start
    started = performance.now();
    db.prepare('BEGIN').run();
    let file: FileHandle | undefined;
    try {
      db.prepare('SELECT count(*) FROM sqlite_schema').get();
      file = await open(source, 'r');
      const budget = { since: started, ms: options.readBudgetMs ?? READ_BUDGET_MS };
      const read = await readChanges(file, source, parent, deltaPath, (countRows) => readFacts(db, countRows), sha, budget);
      return { read, tooSlow: false, heldMs: performance.now() - started };
    } finally {
      try {
        db.prepare('COMMIT').run();
      } finally {
        await file?.close();
      }
    }
  } catch (cause) {
    if (cause instanceof ReadTooSlow) return { read: undefined, tooSlow: true, heldMs: performance.now() - started };
    throw cause instanceof CoreError ? cause : sourceError(source, cause, options);
  } finally {
    db.close();
  }
}

export interface ChangesOptions extends SnapshotOptions {
  /**
   * How long the live file may be read under the lock (rollback-journal mode), in ms, default
   * `READ_BUDGET_MS`. A read that takes longer, or is on its way to (projected from its pace over the first quarter),
   * as with a large database or a busy machine, is given up, and the file copied under the lock
   * instead (`takeSnapshot`: about half the time per GiB), then read without holding anyone.
   */
  readBudgetMs?: number;
}

/**
 * Default `ChangesOptions.readBudgetMs`: writers are held at most about half a second by any
 * backup (a full's copy of 1 GiB holds them ~0.35 s), far under the 5 s busy timeout of Django and
 * Python's sqlite3. A 1 GiB database is therefore copied, and one of a few hundred MiB read live.
 */
export const READ_BUDGET_MS = 500;
/** The pace of a live read on a quiet machine (measured ~1.2 GiB/s here), for deciding before taking the lock. */
const LIVE_READ_BYTES_PER_MS = (1 << 30) / 1000;

/** `readChanges` passed its budget, or is on its way to. */
class ReadTooSlow extends Error {}

/** Bytes read before a read's duration is projected from its pace (the first reads, at least). */
const PROJECT_AFTER_BYTES = 32 << 20;

/**
 * One read of the database `file` (named `name` in messages), start to end, as the module comment
 * says, through `sha` (a fresh `readPassThread()`). `facts` reads the facts while the file is still
 * open, given a row counter from the pages. With a `budget`, throws `ReadTooSlow` once the read,
 * from `since`, has taken or is projected to take over `ms`.
 */
async function readChanges(
  file: FileHandle,
  name: string,
  parent: ParentPages,
  deltaPath: string,
  facts: (countRows: (rootPage: number) => number | undefined) => DatabaseFacts | Promise<DatabaseFacts>,
  sha: Sha256Thread,
  budget?: { since: number; ms: number },
): Promise<(Omit<Changes, 'snapshot'> & { header: { pageSize: number; pageCount: number } }) | undefined> {
  const first = Buffer.alloc(100);
  await file.read(first, 0, first.length, 0);
  const header = parseSqliteHeader(first);
  if (!header)
    throw new CoreError(CoreErrorCode.SourceNotSqlite, `${name} is not a SQLite database (bad header); check source.database in the config`, {
      context: { path: name },
    });
  const { pageSize, pageCount } = header;
  if (pageSize !== parent.pageSize) return undefined;

  const pages: number[] = [];
  const delta = await DeltaWriter.create(deltaPath, pageSize);
  try {
    const reading = performance.now(); // the pace is projected from here, the set-up before it counted once
    const parentHashes = parent.pageHashes;
    const parentPages = parentHashes.length / PAGE_HASH_BYTES;
    const read = await readPages(file, name, header, sha, async (chunk, firstPage, { size, pageHashes }) => {
      for (let at = 0, index = firstPage; at < chunk.length; at += pageSize, index++) {
        if (index >= parentPages || !sameHash(pageHashes, parentHashes, index * PAGE_HASH_BYTES)) {
          pages.push(index);
          await delta.add(index, chunk.subarray(at, at + pageSize));
        }
      }
      if (firstPage === 0) crashPoint('backup.database-reading');
      if (budget) {
        const now = performance.now();
        const elapsed = now - budget.since;
        const done = firstPage * pageSize + chunk.length;
        const projected = done >= Math.max(PROJECT_AFTER_BYTES, size / 4) ? elapsed + ((now - reading) * (size - done)) / done : elapsed;
        if (projected > budget.ms) throw new ReadTooSlow();
      }
    });
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
