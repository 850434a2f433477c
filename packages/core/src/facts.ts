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
 * Which checks ran on a database:
 * - `full`: `PRAGMA integrity_check` and `foreign_key_check`;
 * - `quick`: `PRAGMA quick_check` alone;
 * - `verified`: no whole-file check: the bytes were checked to hash to a snapshot whose full checks
 *   passed before (`basis`), and running them again on identical bytes would find the same; only
 *   the header and the schema are read back (the schema hash against the manifest's).
 */
export type CheckKind = 'full' | 'quick' | 'verified';

export interface DatabaseChecks {
  kind: CheckKind;
  /**
   * `ok`, or the first problems `PRAGMA integrity_check` (or `quick_check`) reported; for
   * `verified`, `ok` or what reading the header and schema back found.
   */
  integrity: string[];
  /** Rows `PRAGMA foreign_key_check` reported; absent unless `kind` is `full`. */
  foreignKeyViolations?: number;
  /** `verified`: the snapshot the bytes hash to, and when and by what its full checks passed. */
  basis?: { snapshotSha256: string; at: string; by: string };
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

/**
 * Reads the facts of `db`. `countRows` may count a table's rows another way, from its b-tree's
 * root page (a pass that read the file's pages anyway); where it returns undefined, `count(*)` does.
 */
export function readFacts(db: Database.Database, countRows?: (rootPage: number) => number | undefined): DatabaseFacts {
  const { schema, schemaHash } = readSchema(db);
  const tables: Record<string, number> = {};
  for (const row of schema) {
    if (row.type !== 'table' || row.name.startsWith('sqlite_') || /^\s*create\s+virtual/i.test(row.sql)) continue;
    const counted = row.rootpage ? countRows?.(row.rootpage) : undefined;
    tables[row.name] = counted ?? (db.prepare(`SELECT count(*) AS n FROM "${row.name.replace(/"/g, '""')}"`).get() as { n: number }).n;
  }
  const { v } = db.prepare('SELECT sqlite_version() AS v').get() as { v: string };
  return { sqliteVersion: v, schemaHash, tables };
}

interface SchemaRow {
  type: string;
  name: string;
  tbl_name: string;
  sql: string;
  rootpage: number | null;
}

/** The rows of `sqlite_schema`, and their SHA-256 as `DatabaseFacts.schemaHash` (over all but `rootpage`). */
function readSchema(db: Database.Database): { schema: SchemaRow[]; schemaHash: string } {
  const schema = db.prepare(`SELECT type, name, tbl_name, coalesce(sql, '') AS sql, rootpage FROM sqlite_schema ORDER BY type, name`).all() as SchemaRow[];
  const schemaHash = createHash('sha256')
    .update(JSON.stringify(schema.map((row) => [row.type, row.name, row.tbl_name, row.sql])))
    .digest('hex');
  return { schema, schemaHash };
}

/**
 * The `verified` checks of a database whose bytes were checked to hash to `basis.snapshotSha256`:
 * its header and schema are read back (the schema query reads page 1) and the schema must hash to
 * `schemaHash`, the manifest's. Milliseconds, whatever the size.
 */
export function verifiedChecks(db: Database.Database, schemaHash: string, basis: NonNullable<DatabaseChecks['basis']>): DatabaseChecks {
  const found = readSchema(db).schemaHash;
  return { kind: 'verified', integrity: [found === schemaHash ? 'ok' : `schema hash ${found} is not the backup's ${schemaHash}`], basis };
}

/** Runs the `full` (default) or `quick` checks. */
export function runChecks(db: Database.Database, kind: Exclude<CheckKind, 'verified'> = 'full'): DatabaseChecks {
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

/**
 * What the checks found, in a few words: `integrity ok, no foreign key violations`, `quick_check ok`,
 * or for `verified` which earlier check the bytes inherit.
 */
export function describeChecks(checks: DatabaseChecks): string {
  const found = checks.integrity.slice(0, 2).join('; ');
  if (checks.kind === 'quick') return `quick_check ${found}`;
  if (checks.kind === 'verified') {
    const basis = checks.basis;
    const earlier = basis
      ? `its bytes match snapshot ${basis.snapshotSha256.slice(0, 12)}…, whose integrity_check and foreign_key_check passed at ${basis.at} (${basis.by})`
      : 'its bytes match a checked snapshot';
    return `no whole-file check needed: ${earlier}; header and schema read back ${found}`;
  }
  return `integrity ${found}, ${checks.foreignKeyViolations ? `${checks.foreignKeyViolations} foreign key violations` : 'no foreign key violations'}`;
}
