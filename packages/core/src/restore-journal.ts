/*
 * Design: a live restore switches the database and its file sets as one unit. Everything new is
 * first rebuilt beside its target under names owned by this process; then an intent file (the
 * restore journal, fsynced) records every rename of the switch, and only then are they done, the
 * database last. Every step can be repeated, so the next run of any command finishes a switch
 * whose process died, or rolls it back when the rebuilt data is gone, and says which.
 *
 * The database switch keeps the live path whole at every instant. Under an EXCLUSIVE SQLite lock
 * (writers wait; a hot journal is rolled back first, so the old database is whole without it) the
 * old file and its sidecars get a second name, `<db>.damaged_<stamp>[-journal|-wal|-shm]`, all under
 * the stamp the journal fixed; the sidecars are unlinked from the live path; then the restored file
 * is renamed over the live one, which rename(2) does atomically. An application that kept the old
 * file open gets SQLITE_READONLY_DBMOVED on its next write instead of writing beside the new one.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { link, lstat, mkdir, readFile, rename, rm, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { finishFileSets, type SetMove } from '@stowage/filesets';
import { crashPoint, ownerGone, ownerOf } from '@stowage/storage';
import type { ResolvedConfig } from './config.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { acquireSourceLock, describeHolder, LockError, type LockHolder } from './lock.js';
import { logOperation, warnUnrecorded } from './oplog.js';
import { fsyncDir, writePrivateAtomic } from './private-fs.js';
import { parseSqliteHeader } from './sqlite-file.js';

/** What the journal needs of a run (an `Engine` is one): the config (state folder, source), the log folder, a warning channel. */
export interface JournalRun {
  readonly config: ResolvedConfig;
  readonly logDir: string;
  warn(message: string): void;
}

/** The files SQLite may keep beside a database, which belong with it. */
export const SIDECARS = ['-journal', '-wal', '-shm'] as const;

/** What a live restore is about to switch, written before the first rename. */
export interface RestoreJournal {
  version: 1;
  /** Owner token of the restoring process. */
  owner: string;
  backupId: string;
  startedAt: string;
  /**
   * The restored database file (and its inode: once the live path has it, the switch is done), the
   * live path it goes to, and the name the old one keeps.
   */
  database?: { restored: string; ino: number; live: string; aside: string };
  /** The staged file sets: their work folder and the renames that put them in place. */
  files?: { workDir: string; moves: SetMove[] };
  /** Written to `recordPath` once the switch is done (what `restore --verify` reads). */
  record?: { path: string; text: string };
}

/** Where a state folder's restore journal lives. */
export function journalPath(stateDir: string): string {
  return `${stateDir}/restore-journal.json`;
}

/**
 * Performs the switch `journal` describes: records it, renames the file sets and then the
 * database into place, sets the file sets' metadata, writes the restore record, removes the
 * journal. Returns the paths the previous database (and its sidecars) now have. A failure rolls
 * back what was done; if even that fails the journal stays for the next command.
 */
export async function switchRestore(engine: JournalRun, journal: RestoreJournal): Promise<string[]> {
  const path = journalPath(engine.config.stateDir);
  const guard = journal.database && lockLive(journal.database.live, engine.config.source.busyTimeoutMs);
  let movedAside: string[];
  try {
    await writePrivateAtomic(path, JSON.stringify(journal));
    crashPoint('restore.journal-written');
    try {
      movedAside = await applyMoves(journal);
    } catch (error) {
      await rollBack(journal).then(
        () => removeJournal(path),
        () => undefined,
      );
      throw error;
    }
  } finally {
    guard?.close();
  }
  await finish(journal, path);
  return movedAside;
}

/**
 * Run at the start of every command: finishes (or rolls back) a restore switch whose process died,
 * under the source lock, and warns with what it did. A journal whose owner still runs is left alone.
 */
export async function recoverInterruptedRestore(engine: JournalRun): Promise<void> {
  const path = journalPath(engine.config.stateDir);
  const first = await readJournal(path);
  if (!first || !ownerIsGone(first)) return;
  let lock;
  try {
    lock = await acquireSourceLock(engine.config.stateDir, { operation: 'restore-recovery' });
  } catch (error) {
    if (!(error instanceof LockError)) throw error;
    engine.warn(
      `a restore of ${first.backupId} was interrupted; ${describeHolder(error.context.holder as LockHolder | undefined)} holds the source lock, so the next command will finish it`,
    );
    return;
  }
  try {
    const journal = await readJournal(path);
    if (!journal || !ownerIsGone(journal)) return;
    const started = performance.now();
    let guard: Database.Database | undefined;
    try {
      // Only while the old database is still live: once switched, the application may use the new one again.
      if (journal.database && !(await switched(journal.database))) guard = lockLive(journal.database.live, engine.config.source.busyTimeoutMs);
    } catch (error) {
      if (!(error instanceof CoreError)) throw error;
      engine.warn(`a restore of ${journal.backupId} was interrupted and cannot be finished yet: ${error.message}; the next command tries again`);
      return;
    }
    let outcome: 'completed' | 'rolled-back';
    try {
      if (await canComplete(journal)) {
        await applyMoves(journal);
        outcome = 'completed';
      } else {
        await rollBack(journal);
        outcome = 'rolled-back';
      }
    } finally {
      guard?.close();
    }
    if (outcome === 'completed') await finish(journal, path);
    else await removeJournal(path);
    const aside = journal.database?.aside;
    engine.warn(
      outcome === 'completed'
        ? `a restore of ${journal.backupId} was interrupted; completed it now${aside ? ` (the previous database is ${aside})` : ''}`
        : `a restore of ${journal.backupId} was interrupted and its restored data is gone; rolled it back: the previous database and files are in place again`,
    );
    await logOperation(engine.logDir, 'restore.log', {
      operation: 'restore-recovery',
      backupId: journal.backupId,
      outcome: 'ok',
      durationMs: performance.now() - started,
      detail: outcome,
    }).catch(warnUnrecorded(engine.warn, 'the restore recovery in restore.log and the audit log'));
  } finally {
    await lock.release();
  }
}

/** The paths a pending journal still needs (never swept as leftovers). */
export async function pendingRestorePaths(stateDir: string): Promise<string[]> {
  const journal = await readJournal(journalPath(stateDir));
  return journal ? [journal.database?.restored, journal.files?.workDir].filter((p): p is string => p !== undefined) : [];
}

async function readJournal(path: string): Promise<RestoreJournal | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as RestoreJournal;
  } catch (cause) {
    throw new CoreError(
      CoreErrorCode.RestoreTargetMissing,
      `the restore journal ${path} is unreadable; check the database and file sets by hand, then delete it`,
      { context: { path }, cause },
    );
  }
}

function ownerIsGone(journal: RestoreJournal): boolean {
  const owner = ownerOf(journal.owner);
  return owner === undefined || ownerGone(owner) !== undefined;
}

const exists = async (path: string): Promise<boolean> => (await lstat(path).catch(() => undefined)) !== undefined;

/** Every step not yet done still has what it needs: the restored database and staged files are all there or in place. */
async function canComplete(journal: RestoreJournal): Promise<boolean> {
  for (const move of journal.files?.moves ?? []) {
    if (!(await exists(move.from)) && !(await exists(move.to))) return false;
  }
  const db = journal.database;
  return !db || (await exists(db.restored)) || (await switched(db));
}

/** The live path holds the restored file. */
async function switched(db: NonNullable<RestoreJournal['database']>): Promise<boolean> {
  return (await lstat(db.live).catch(() => undefined))?.ino === db.ino;
}

/** The renames, each skipped when already done. Returns the previous database's new names. */
async function applyMoves(journal: RestoreJournal): Promise<string[]> {
  const folders = new Set<string>();
  for (const move of journal.files?.moves ?? []) {
    if (!(await exists(move.from))) continue;
    if (await exists(move.to)) {
      await mkdir(dirname(move.aside), { recursive: true, mode: 0o700 });
      await rename(move.to, await freeName(move.aside));
      crashPoint('restore.set-moved-aside');
    }
    await rename(move.from, move.to);
    crashPoint('restore.set-moved-in');
    folders.add(dirname(move.to));
  }
  for (const folder of folders) await fsyncDir(folder);
  return journal.database ? switchDatabase(journal.database) : [];
}

/** A name like `path` that is free: `path`, else `path~1`, `path~2`, … */
async function freeName(path: string): Promise<string> {
  let name = path;
  for (let n = 1; await exists(name); n++) name = `${path}~${n}`;
  return name;
}

async function switchDatabase(db: NonNullable<RestoreJournal['database']>): Promise<string[]> {
  const { restored, live, aside } = db;
  const kept: string[] = [];
  if (await switched(db)) {
    for (const suffix of ['', ...SIDECARS]) if (await exists(aside + suffix)) kept.push(aside + suffix);
    return kept;
  }
  if (await exists(live)) {
    for (const suffix of ['', ...SIDECARS]) {
      if (!(await exists(live + suffix))) continue;
      await rm(aside + suffix, { force: true }); // our own link from a run that died
      await link(live + suffix, aside + suffix);
      kept.push(aside + suffix);
    }
    await fsyncDir(dirname(live));
    crashPoint('restore.db-linked-aside');
    for (const suffix of SIDECARS) await rm(live + suffix, { force: true });
    crashPoint('restore.sidecars-unlinked');
  }
  await rename(restored, live);
  await fsyncDir(dirname(live));
  crashPoint('restore.db-renamed-in');
  return kept;
}

/**
 * Undoes what was done, newest first, so the previous database and files are back: a switched
 * database is renamed back from its kept name, sidecars put back; restored files are removed and
 * what they replaced is renamed back. Then the restored data still staged is removed.
 */
async function rollBack(journal: RestoreJournal): Promise<void> {
  const db = journal.database;
  if (db && (await exists(db.aside))) {
    if ((await switched(db)) || !(await exists(db.live))) await rename(db.aside, db.live);
    for (const suffix of SIDECARS) {
      if (await exists(db.aside + suffix)) {
        await rm(db.live + suffix, { force: true });
        await link(db.aside + suffix, db.live + suffix);
      }
    }
    for (const suffix of ['', ...SIDECARS]) await rm(db.aside + suffix, { force: true });
    await fsyncDir(dirname(db.live));
  }
  for (const move of [...(journal.files?.moves ?? [])].reverse()) {
    if ((await exists(move.from)) || !(await exists(move.aside))) continue;
    await rm(move.to, { recursive: true, force: true });
    await rename(move.aside, move.to);
  }
  if (db) await rm(db.restored, { force: true });
  if (journal.files) await rm(journal.files.workDir, { recursive: true, force: true });
}

async function finish(journal: RestoreJournal, path: string): Promise<void> {
  if (journal.files) {
    await finishFileSets(journal.files.workDir);
    crashPoint('restore.metadata-applied');
  }
  if (journal.record) await writePrivateAtomic(journal.record.path, journal.record.text);
  await removeJournal(path);
}

async function removeJournal(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
  await fsyncDir(dirname(path));
  crashPoint('restore.journal-removed');
}

/**
 * Holds the live database still for a switch: an EXCLUSIVE transaction (which first rolls back a
 * hot journal; in WAL mode the log is checkpointed before, and the transaction runs in EXCLUSIVE
 * locking mode, so the database file itself stays locked: a WAL transaction alone locks only the -shm, and a
 * process opening the database once its -shm is unlinked would make a fresh one, write, and leave
 * a -wal of the old database beside the restored one. (So in WAL mode every other connection must
 * be closed.) Undefined when there is no usable database there, so nothing can write to it.
 * `stowage.source.locked` when another program holds it past the busy timeout — nothing has changed then.
 */
function lockLive(path: string, busyTimeoutMs: number): Database.Database | undefined {
  let db: Database.Database;
  try {
    db = new Database(path, { fileMustExist: true, timeout: busyTimeoutMs });
  } catch {
    return undefined;
  }
  try {
    // Set before the first read to hold the file in WAL mode; not in rollback-journal mode, where the
    // transaction locks the file anyway and the mode would keep the first read's shared lock,
    // deadlocking against a writer mid-commit.
    if (walModeFile(path)) db.pragma('locking_mode = EXCLUSIVE');
    if (db.pragma('journal_mode', { simple: true }) === 'wal') db.pragma('wal_checkpoint(TRUNCATE)');
    db.exec('BEGIN EXCLUSIVE');
    return db;
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code?.startsWith('SQLITE_BUSY')) {
      throw new CoreError(
        CoreErrorCode.SourceLocked,
        `the live database ${path} stayed locked by another program for ${busyTimeoutMs} ms; stop the application and try again`,
        { context: { path }, cause: error },
      );
    }
    return undefined; // not a database SQLite can lock (damaged): nothing can write to it either
  }
}

/** Whether the header of the database file at `path` says WAL mode (false when it cannot be read). */
function walModeFile(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const header = Buffer.alloc(100);
    readSync(fd, header, 0, 100, 0);
    return parseSqliteHeader(header)?.wal ?? false;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
