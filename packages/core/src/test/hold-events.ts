/*
 * What may happen to a rollback-journal database between two holds of a backup's read lock
 * (`ReadHolds`), for the tests of the copy (snapshot.test.ts) and of the incremental's live read
 * (changes.test.ts): whatever it is, what they store must be the database as it is after.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

const BETTER_SQLITE3 = JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'));

/**
 * Runs `run` on a ~20 MB database (pages of 4096 bytes) in a new folder, removed after, whose first
 * and last pages `bumpEnds` changes.
 */
export async function withHoldsDatabase(run: (database: { dir: string; path: string }) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-holds-'));
  try {
    const path = join(dir, 'db.sqlite3');
    const db = new Database(path);
    db.exec(`CREATE TABLE head(n); INSERT INTO head VALUES (0);
      CREATE TABLE filler(id INTEGER PRIMARY KEY, v BLOB);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) INSERT INTO filler(v) SELECT randomblob(1000) FROM n;
      CREATE TABLE tail(n); INSERT INTO tail VALUES (0);`);
    db.close();
    await run({ dir, path });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs `sql` on `path` without waiting for a lock: between holds, none is held. */
export function writeNow(path: string, sql: string): void {
  const db = new Database(path, { timeout: 0 });
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

export const bumpEnds = 'BEGIN; UPDATE head SET n = n + 1; UPDATE tail SET n = n + 1; COMMIT;';

/** A writer with a two-page cache spills its transaction into the database file, then dies, leaving a hot journal. */
function crashMidTransaction(path: string): void {
  const crashed = spawnSync(process.execPath, [
    '-e',
    `const db = new (require(${BETTER_SQLITE3}))(${JSON.stringify(path)});
     db.pragma('cache_size = 2');
     db.exec('BEGIN; UPDATE head SET n = 99; UPDATE filler SET v = randomblob(1000) WHERE id % 7 = 0; UPDATE tail SET n = 99;');
     process.kill(process.pid, 'SIGKILL');`,
  ]);
  if (crashed.signal !== 'SIGKILL' || !existsSync(`${path}-journal`)) throw new Error('the writer did not die mid-transaction');
}

/** Each event, and whether it is a commit (after which the read in holds starts again). */
export const HOLD_EVENTS: Array<{ event: string; at: (path: string) => void; commits: boolean }> = [
  { event: 'nothing', at: () => {}, commits: false },
  { event: 'another reader reads', at: (path) => new Database(path, { readonly: true }).prepare('SELECT count(*) FROM filler').get(), commits: false },
  { event: 'a transaction is rolled back', at: (path) => writeNow(path, 'BEGIN; UPDATE head SET n = 5; ROLLBACK;'), commits: false },
  { event: 'a writer crashed mid-transaction (its pages in the file, a hot journal beside it)', at: crashMidTransaction, commits: false },
  { event: 'a writer commits to the first and last pages', at: (path) => writeNow(path, bumpEnds), commits: true },
  { event: 'a commit grows the file', at: (path) => writeNow(path, 'INSERT INTO filler(v) SELECT randomblob(1000) FROM filler LIMIT 3000;'), commits: true },
  { event: 'a delete and VACUUM shrink the file', at: (path) => writeNow(path, 'DELETE FROM filler WHERE id > 5000; VACUUM;'), commits: true },
  { event: 'a commit writes back the bytes it changed', at: (path) => writeNow(path, 'UPDATE head SET n = n + 1; UPDATE head SET n = n - 1;'), commits: true },
];
