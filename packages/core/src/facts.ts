import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import Database from 'better-sqlite3';

/** What the manifest records about a database's contents, and what validation compares. */
export interface DatabaseFacts {
  sqliteVersion: string;
  /** SHA-256 over the schema (type, name, table and SQL of every sqlite_schema row, sorted). */
  schemaHash: string;
  /** Rows per table, user tables only (no sqlite_* internals, no virtual tables). */
  tables: Record<string, number>;
}

/**
 * Which check ran: `full` is `PRAGMA integrity_check` and `foreign_key_check`; `quick` is
 * `PRAGMA quick_check` alone, enough for bytes that hash to a snapshot whose full check passed.
 */
export type CheckKind = 'full' | 'quick';

export interface DatabaseChecks {
  kind: CheckKind;
  /** `ok`, or the first problems `PRAGMA integrity_check` (or `quick_check`) reported. */
  integrity: string[];
  /** Rows `PRAGMA foreign_key_check` reported; absent when `kind` is `quick` (not run). */
  foreignKeyViolations?: number;
}

/**
 * Opens a database file that nobody else uses (a snapshot or a restored copy) read-only, runs
 * `fn`, and removes the -wal/-shm files SQLite creates when it opens a WAL-mode file read-only.
 * The main file is never written.
 */
export async function withPrivateDatabase<T>(path: string, fn: (db: Database.Database) => T): Promise<T> {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
    await Promise.all([rm(`${path}-wal`, { force: true }), rm(`${path}-shm`, { force: true })]);
  }
}

export function readFacts(db: Database.Database): DatabaseFacts {
  const schema = db.prepare(`SELECT type, name, tbl_name, coalesce(sql, '') AS sql FROM sqlite_schema ORDER BY type, name`).all() as Array<{
    type: string;
    name: string;
    tbl_name: string;
    sql: string;
  }>;
  const schemaHash = createHash('sha256')
    .update(JSON.stringify(schema.map((row) => [row.type, row.name, row.tbl_name, row.sql])))
    .digest('hex');
  const tables: Record<string, number> = {};
  for (const row of schema) {
    if (row.type !== 'table' || row.name.startsWith('sqlite_') || /^\s*create\s+virtual/i.test(row.sql)) continue;
    const { n } = db.prepare(`SELECT count(*) AS n FROM "${row.name.replace(/"/g, '""')}"`).get() as { n: number };
    tables[row.name] = n;
  }
  const { v } = db.prepare('SELECT sqlite_version() AS v').get() as { v: string };
  return { sqliteVersion: v, schemaHash, tables };
}

export function runChecks(db: Database.Database, kind: CheckKind = 'full'): DatabaseChecks {
  if (kind === 'quick') {
    const integrity = (db.prepare('PRAGMA quick_check(20)').all() as Array<{ quick_check: string }>).map((r) => r.quick_check);
    return { kind, integrity };
  }
  const integrity = (db.prepare('PRAGMA integrity_check(20)').all() as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
  const foreignKeyViolations = db.prepare('PRAGMA foreign_key_check').all().length;
  return { kind, integrity, foreignKeyViolations };
}

export function checksPassed(checks: DatabaseChecks): boolean {
  return checks.integrity.length === 1 && checks.integrity[0] === 'ok' && (checks.foreignKeyViolations ?? 0) === 0;
}

/** What the checks found, in a few words: `integrity ok, no foreign key violations` / `quick_check ok`. */
export function describeChecks(checks: DatabaseChecks): string {
  const found = checks.integrity.slice(0, 2).join('; ');
  if (checks.kind === 'quick') return `quick_check ${found} (full checks passed on this snapshot before)`;
  return `integrity ${found}, ${checks.foreignKeyViolations ? `${checks.foreignKeyViolations} foreign key violations` : 'no foreign key violations'}`;
}
