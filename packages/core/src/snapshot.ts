/*
 * Consistent snapshots of a live database.
 *
 * Rollback-journal mode (GreaterWMS): under SQLite's read lock no writer may change the database
 * file, so the file itself is a consistent image. It is copied under the lock taken in short holds
 * (`ReadHolds`), between which writers that waited commit; a commit starts the copy again, in longer
 * holds, and in the end in one hold, however long (`COPY_HOLDS_MS`). The lock is released before
 * the copy is hashed. Incrementals and encoded fulls first read the live file itself in the same
 * holds (`readInHolds`), and copy it only when a commit came between two of them.
 *
 * WAL mode: the file alone is not consistent (committed pages may still be in the -wal), so SQLite's
 * online backup copies the database, in a single step: the default step loop restarts whenever
 * another process writes and never finishes under a busy writer (README.md, "How a backup is taken").
 *
 * Both keep the source's page layout, which page-delta incrementals rely on.
 *
 * Either reads the file under the lock, so `warmPageCache` makes sure beforehand, without one, that
 * it is in the page cache: the kernel's copy of a file that is not reads it in small pieces (3.8 s
 * per GiB here, against 0.36 s from the cache), and writers would wait for the disk. Whether it is
 * comes from a few sampled pages and the kernel's count of this process's storage reads
 * (`read_bytes` in /proc/self/io): a whole read of a cached GiB would cost 0.3 CPU-s for nothing.
 */
import { constants } from 'node:fs';
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { freemem } from 'node:os';
import Database from 'better-sqlite3';
import { isStowageError } from '@stowage/errors';
import { CoreError, CoreErrorCode } from './errors.js';
import { ReadHolds, StateChanged } from './read-holds.js';
import { readSqliteHeader } from './sqlite-file.js';

export interface SnapshotOptions {
  /** How long to wait for a writer's lock before giving up (ms). */
  busyTimeoutMs: number;
  /**
   * Rollback-journal mode: how long the read lock is held at a time while the database is copied,
   * for each attempt in turn; the attempt after the last holds it as long as the copy takes
   * (`ReadHolds`). A read of the live file itself (`readInHolds`: a full's or an incremental's),
   * before any copy, holds it as long as the first. Default `COPY_HOLDS_MS`.
   */
  holdsMs?: readonly number[];
  /** Called between two holds, with no lock held (tests). */
  betweenHolds?: () => void | Promise<void>;
}

/** A consistent copy of the database in the staging folder (not yet hashed). */
export interface Snapshot {
  path: string;
  pageSize: number;
  pageCount: number;
  journalMode: string;
  /** The longest writers were held off at a time (rollback mode), or how long the online backup ran (WAL), in ms. */
  lockMs: number;
}

/**
 * Opens the live database `source` (read-write: a reader rolls back a hot journal a crashed writer
 * left), after checking its header, so that a missing or foreign file is a one-line error. The
 * header is read before any lock is taken: closing that descriptor would drop the locks.
 */
export async function openLiveDatabase(source: string, options: SnapshotOptions): Promise<{ db: Database.Database; journalMode: string }> {
  await readSqliteHeader(source);
  let db: Database.Database | undefined;
  try {
    db = new Database(source, { fileMustExist: true, timeout: options.busyTimeoutMs });
    return { db, journalMode: String(db.pragma('journal_mode', { simple: true })).toLowerCase() };
  } catch (cause) {
    db?.close();
    throw sourceError(source, cause, options);
  }
}

/** Bytes per read of `warmPageCache`, and how many reads it keeps in flight (the disk's queue, both cores). */
const WARM_CHUNK_BYTES = 4 << 20;
const WARM_LANES = 2;
/** Pages sampled, one in each of as many equal stretches of the file. */
const WARM_PROBES = 64;
const PROBE_BYTES = 4096;
/**
 * Sampled pages that may come from storage with the file still taken as cached: its few missing
 * pages are read under the lock at the disk's speed, milliseconds. A file 10 % evicted passes 4 %
 * of the time; 20 % evicted, never in practice (0.01 %).
 */
const WARM_MISSES_ALLOWED = 2;

/**
 * Makes sure the pages of `path` are in the page cache before the lock is taken (no lock is taken
 * here): unless nearly all sampled pages came from the cache, reads the whole file (0.8 s per GiB
 * when none was cached). Best effort: a file that would not fit in half the available memory is not
 * read (its pages would be evicted before the copy), and errors are left for the snapshot to
 * report. The descriptor is closed before this returns, so no lock of this process's can be
 * dropped by the close (see above).
 */
export async function warmPageCache(path: string): Promise<void> {
  const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => undefined); // a FIFO: no wait for a writer
  if (!file) return;
  try {
    const stats = await file.stat();
    if (!stats.isFile() || stats.size > freemem() / 2 || (await sampledMisses(file, stats.size)) <= WARM_MISSES_ALLOWED) return;
    const { size } = stats;
    let next = 0;
    const lane = async () => {
      const buffer = Buffer.allocUnsafe(WARM_CHUNK_BYTES);
      while (next < size) {
        const at = next;
        next += WARM_CHUNK_BYTES;
        if ((await file.read(buffer, 0, WARM_CHUNK_BYTES, at)).bytesRead === 0) return;
      }
    };
    await Promise.all(Array.from({ length: WARM_LANES }, lane));
  } catch {
    // The snapshot reads the file again and reports what is wrong with it.
  } finally {
    await file.close();
  }
}

/**
 * How many of `WARM_PROBES` pages read at random in `file` came from storage, not the page cache:
 * those after which the process's storage reads had grown. Infinity where the kernel does not
 * count them; a read from storage anywhere else in the process at the same time counts as a miss.
 */
async function sampledMisses(file: FileHandle, size: number): Promise<number> {
  const storageReads = () =>
    readFile('/proc/self/io', 'utf8').then(
      (text) => Number(/^read_bytes: (\d+)$/m.exec(text)?.[1] ?? Number.NaN),
      () => Number.NaN,
    );
  let before = await storageReads();
  if (Number.isNaN(before)) return Number.POSITIVE_INFINITY;
  const page = Buffer.allocUnsafe(PROBE_BYTES);
  const pages = Math.floor(size / PROBE_BYTES);
  let misses = 0;
  for (let probe = 0; probe < WARM_PROBES && misses <= WARM_MISSES_ALLOWED; probe++) {
    await file.read(page, 0, PROBE_BYTES, Math.floor(((probe + Math.random()) / WARM_PROBES) * pages) * PROBE_BYTES);
    const after = await storageReads();
    if (after !== before) misses++;
    before = after;
  }
  return misses;
}

/** Copies a consistent image of the live database `source` to `target`. */
export async function takeSnapshot(source: string, target: string, options: SnapshotOptions): Promise<Snapshot> {
  const { db, journalMode } = await openLiveDatabase(source, options);
  let lockMs: number;
  try {
    if (journalMode === 'wal') {
      const started = performance.now();
      await db.backup(target, { progress: () => 0x7fffffff });
      lockMs = performance.now() - started;
    } else {
      lockMs = await copyInHolds(db, source, target, options);
    }
  } catch (cause) {
    await rm(target, { force: true });
    throw cause instanceof CoreError ? cause : sourceError(source, cause, options);
  } finally {
    db.close();
  }
  const header = await readSqliteHeader(target);
  return { path: target, pageSize: header.pageSize, pageCount: header.pageCount, journalMode, lockMs };
}

/**
 * Default `SnapshotOptions.holdsMs`: a copy in holds of 50 ms (a GiB takes 8 or so); after a
 * commit, another in holds of 400 ms; after one more, the rest of the copy in a single hold, as
 * long as it takes, so that a database written more often than it can be copied is still copied.
 */
export const COPY_HOLDS_MS: readonly number[] = [50, 400];
/** Bytes copied between two looks at the clock (about 1.5 ms from the page cache); two chunks are in memory. */
const COPY_CHUNK_BYTES = 4 << 20;

/**
 * Copies the rollback-journal database `source` (open as `db`) to the new file `target` under
 * `ReadHolds`, starting again after a commit; returns the longest hold (ms). A restart writes over
 * the bytes of the one before — their pages are in the page cache already, and copy faster.
 */
async function copyInHolds(db: Database.Database, source: string, target: string, options: SnapshotOptions): Promise<number> {
  const holdsMs = options.holdsMs ?? COPY_HOLDS_MS;
  // A new file (EXCL), never truncated to nothing: ext4 flushes a file truncated to 0 and written
  // again to disk when it is closed (auto_da_alloc), which would double the time the copy takes.
  const out = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  let file: FileHandle | undefined;
  let holds: ReadHolds | undefined;
  try {
    file = await open(source, 'r');
    holds = new ReadHolds(db, file, source, options.betweenHolds);
    const buffers = [Buffer.allocUnsafe(COPY_CHUNK_BYTES), Buffer.allocUnsafe(COPY_CHUNK_BYTES)];
    let written = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await holds.start(holdsMs[attempt] ?? Number.POSITIVE_INFINITY);
        const { size } = await file.stat();
        const readAt = (at: number, turn: number) => file!.read(buffers[turn % 2]!, 0, Math.min(COPY_CHUNK_BYTES, size - at), at);
        // The next chunk is read while this one is written, unless the hold ends first: every read is under a hold.
        let reading: ReturnType<typeof readAt> | undefined = size > 0 ? readAt(0, 0) : undefined;
        for (let at = 0, turn = 0; reading; turn++) {
          const { bytesRead, buffer } = await reading;
          if (bytesRead === 0) break;
          const end = at + bytesRead;
          reading = end < size && !holds.due() ? readAt(end, turn + 1) : undefined;
          const writing = out.write(buffer, 0, bytesRead, at);
          await Promise.allSettled([writing, reading]); // no read left running when the write fails
          await writing;
          at = end;
          if (!reading && at < size) {
            await holds.breathe();
            reading = readAt(at, turn + 1);
          }
        }
        holds.release();
        if (size < written) await out.truncate(size);
        return holds.longestMs;
      } catch (cause) {
        if (!(cause instanceof StateChanged)) throw cause;
        written = Math.max(written, (await out.stat()).size);
      }
    }
  } finally {
    holds?.release();
    await file?.close(); // only once the lock is released (see the module comment)
    await out.close();
  }
}

/**
 * Runs `read` over the live rollback-journal database `source`, open as `db` (closed after), under
 * `ReadHolds` of the first of `options.holdsMs`: `read` reads `file` only while a hold lasts (as
 * `readPages` does) and returns in the last hold, which ends here if it has not ended already.
 * `changed` when a commit came between two holds: what was read is not one state, and the caller
 * copies the database instead (`takeSnapshot`). `heldMs` is the longest hold.
 */
export async function readInHolds<T>(
  db: Database.Database,
  source: string,
  options: SnapshotOptions,
  read: (file: FileHandle, holds: ReadHolds) => Promise<T>,
): Promise<{ value: T; changed: false; heldMs: number } | { changed: true; heldMs: number }> {
  let holds: ReadHolds | undefined;
  try {
    const file = await open(source, 'r');
    try {
      holds = new ReadHolds(db, file, source, options.betweenHolds);
      await holds.start((options.holdsMs ?? COPY_HOLDS_MS)[0] ?? Number.POSITIVE_INFINITY);
      const value = await read(file, holds);
      holds.release();
      return { value, changed: false, heldMs: holds.longestMs };
    } finally {
      holds?.release();
      await file.close(); // only once the lock is released (see the module comment)
    }
  } catch (cause) {
    if (cause instanceof StateChanged) return { changed: true, heldMs: holds!.longestMs };
    throw isStowageError(cause) ? cause : sourceError(source, cause, options);
  } finally {
    db.close();
  }
}

/** Checks that the bytes read of a snapshot (`size`) are exactly the pages its header announces. */
export function assertWholeSnapshot(source: string, header: Pick<Snapshot, 'pageSize' | 'pageCount'>, size: number): void {
  const expected = header.pageCount * header.pageSize;
  if (size !== expected) {
    throw new CoreError(
      CoreErrorCode.SourceUnreadable,
      `snapshot of ${source} is ${size} bytes but its header says ${expected}; the database may be damaged — run PRAGMA integrity_check on it`,
      {
        context: { source, size, expected },
      },
    );
  }
}

/** The one-line error for a failure to read the live database `source`. */
export function sourceError(source: string, cause: unknown, options: SnapshotOptions): CoreError {
  const code = (cause as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new CoreError(
      CoreErrorCode.SourceLocked,
      `database ${source} stayed locked by another process for ${options.busyTimeoutMs} ms; try again later or raise source.busyTimeoutMs`,
      { context: { source, busyTimeoutMs: options.busyTimeoutMs }, cause },
    );
  }
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') {
    return new CoreError(
      CoreErrorCode.SourceNotSqlite,
      `${source} is not a usable SQLite database (${code}); check source.database or run PRAGMA integrity_check`,
      { context: { source }, cause },
    );
  }
  if (code === 'ENOSPC' || code === 'SQLITE_FULL') {
    return new CoreError(CoreErrorCode.NoSpace, `no space left on the device while copying the database snapshot; free disk space in the staging folder`, {
      context: { source },
      cause,
    });
  }
  return new CoreError(CoreErrorCode.SourceUnreadable, `cannot snapshot ${source}: ${(cause as Error).message ?? String(cause)}`, {
    context: { source },
    cause,
  });
}
