import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { systemErrorCode } from '@stowage/errors';
import { CoreError, CoreErrorCode } from './errors.js';

const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');

/** What the 100-byte header of a SQLite database file says. */
export interface SqliteHeader {
  pageSize: number;
  /** The in-header page count (valid in every file written by SQLite ≥ 3.7.0). */
  pageCount: number;
  /** True when the file is in WAL mode (read/write format version 2). */
  wal: boolean;
}

/** Parses a database header; returns undefined when the bytes are not a SQLite header. */
export function parseSqliteHeader(header: Buffer): SqliteHeader | undefined {
  if (header.length < 100 || !header.subarray(0, 16).equals(MAGIC)) return undefined;
  const raw = header.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return undefined;
  return { pageSize, pageCount: header.readUInt32BE(28), wal: header[18] === 2 && header[19] === 2 };
}

/** The header of the open database `file` (named `name` in messages); a one-line error when it is not a SQLite database. */
export async function readOpenSqliteHeader(file: FileHandle, name: string): Promise<SqliteHeader> {
  const first = Buffer.alloc(100);
  await file.read(first, 0, first.length, 0);
  const header = parseSqliteHeader(first);
  if (!header)
    throw new CoreError(CoreErrorCode.SourceNotSqlite, `${name} is not a SQLite database (bad header); check source.database in the config`, {
      context: { path: name },
    });
  return header;
}

/**
 * Reads and checks the header of the database at `path`, turning every way it can be wrong into
 * a one-line error: missing file, empty file, not a SQLite database, unreadable.
 */
export async function readSqliteHeader(path: string): Promise<SqliteHeader & { fileSize: number }> {
  let handle;
  try {
    // Non-blocking: a FIFO without a writer would block the open forever; it is refused below.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    const code = systemErrorCode(cause);
    if (code === 'ENOENT') {
      throw new CoreError(
        CoreErrorCode.SourceNotFound,
        `database ${path} does not exist; check source.database in the config (a relative path there is relative to the config file's folder)`,
        { context: { path }, cause },
      );
    }
    throw new CoreError(CoreErrorCode.SourceUnreadable, `cannot read database ${path} (${code ?? String(cause)}); check its permissions`, {
      context: { path },
      cause,
    });
  }
  try {
    const stats = await handle.stat();
    if (stats.isDirectory()) {
      throw new CoreError(CoreErrorCode.SourceNotSqlite, `${path} is a folder, not a SQLite database; point source.database at the db file`, {
        context: { path },
      });
    }
    if (!stats.isFile()) {
      throw new CoreError(CoreErrorCode.SourceNotSqlite, `${path} is not a regular file; point source.database at the db file`, { context: { path } });
    }
    const { size } = stats;
    if (size === 0) {
      throw new CoreError(CoreErrorCode.SourceEmpty, `database ${path} is an empty file (0 bytes); there is nothing to back up`, { context: { path } });
    }
    const header = Buffer.alloc(100);
    const { bytesRead } = await handle.read(header, 0, 100, 0);
    const parsed = parseSqliteHeader(header.subarray(0, bytesRead));
    if (!parsed) {
      throw new CoreError(CoreErrorCode.SourceNotSqlite, `${path} is not a SQLite database (bad header); check source.database in the config`, {
        context: { path },
      });
    }
    return { ...parsed, fileSize: size };
  } finally {
    await handle.close();
  }
}
