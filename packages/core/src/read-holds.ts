/*
 * SQLite's read lock on a rollback-journal database, taken in short holds.
 *
 * A reader holding the SHARED lock keeps every writer from changing the file, so whatever it reads
 * under the lock is one committed state. Reading a GiB takes a few hundred ms on a quiet machine
 * and seconds on a busy one — longer than an application's busy timeout (Django's is 5 s). So the
 * lock is taken in holds of about `holdMs`, and released between them, when a writer that waited
 * commits. Each hold begins by comparing the database header with the first hold's: every commit
 * in rollback-journal mode changes the header's change counter (offset 24; SQLite's own page cache
 * relies on the same rule), a switch to WAL changes its version bytes, and a crashed writer's
 * transaction is rolled back (by whichever reader comes first) to the very bytes before it. An
 * equal header therefore means the file is the state every earlier hold read; a different one
 * throws `StateChanged`, and the caller starts again.
 *
 * Closing a descriptor of the database drops the process's POSIX locks (a POSIX quirk), SQLite's
 * included, so `file` must stay open until `release()` has ended the last hold.
 */
import type { FileHandle } from 'node:fs/promises';
import type Database from 'better-sqlite3';
import { CoreError, CoreErrorCode } from './errors.js';

/** The database changed between two holds: what was read before is not the state now. */
export class StateChanged extends Error {
  constructor() {
    super('the database changed between two read holds');
  }
}

const HEADER_BYTES = 100;
/** The header's file format versions (offsets 18 and 19) in rollback-journal mode; 2 is WAL. */
const ROLLBACK_VERSION = 1;

export class ReadHolds {
  private first: Buffer | undefined;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private holdMs = Number.POSITIVE_INFINITY;
  private since = 0;
  private held = false;
  /** The longest hold so far, in ms: the longest a writer waited for this reader. */
  longestMs = 0;

  /**
   * @param db an open connection to the database, in no transaction.
   * @param file a descriptor of the same file, which the caller reads under the holds.
   * @param name the database's path, for messages.
   * @param between called between two holds, with no lock held: where tests commit, crash or switch modes.
   */
  constructor(
    private readonly db: Database.Database,
    private readonly file: FileHandle,
    private readonly name: string,
    private readonly between?: () => void | Promise<void>,
  ) {}

  /**
   * Takes the lock for a read of one state, in holds of about `holdMs` (`Infinity`: one hold),
   * waiting for a writer as the connection's busy timeout says (then throwing SQLITE_BUSY). Throws
   * `SourceUnreadable` when the database is no longer in rollback-journal mode.
   */
  async start(holdMs: number): Promise<void> {
    this.release();
    this.first = undefined;
    this.holdMs = holdMs;
    await this.take();
  }

  /** Whether this hold has lasted `holdMs`. */
  due(): boolean {
    return performance.now() - this.since >= this.holdMs;
  }

  /** Ends the hold and takes the next when this one has lasted `holdMs`; throws `StateChanged` as the module comment says. */
  async breathe(): Promise<void> {
    if (!this.due()) return;
    this.release();
    await this.between?.();
    await this.take();
  }

  /** Ends the hold, if one is held. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    this.longestMs = Math.max(this.longestMs, performance.now() - this.since);
    this.db.prepare('COMMIT').run();
  }

  private async take(): Promise<void> {
    this.db.prepare('BEGIN').run();
    this.held = true;
    this.since = performance.now();
    this.db.prepare('SELECT count(*) FROM sqlite_schema').get(); // takes SHARED, rolling back a hot journal first
    await this.file.read(this.header, 0, HEADER_BYTES, 0);
    if (this.header[18] !== ROLLBACK_VERSION || this.header[19] !== ROLLBACK_VERSION) {
      this.release();
      throw new CoreError(CoreErrorCode.SourceUnreadable, `${this.name} switched to WAL mode during the backup; run the backup again`, {
        context: { source: this.name },
      });
    }
    if (!this.first) this.first = Buffer.from(this.header);
    else if (!this.header.equals(this.first)) {
      this.release();
      throw new StateChanged();
    }
  }
}
