import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, watch } from 'node:fs';
import { appendFile, readdir, readFile, stat, truncate } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { tableRowCounts } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { takeChanges } from './changes.js';
import { listBackups } from './catalog.js';
import { readPassThread } from './read-pass.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace, sha256File } from './test/harness.js';
import { HOLD_EVENTS, withHoldsDatabase, writeNow } from './test/hold-events.js';

/*
 * Incrementals read the live database once under SQLite's read lock (changes.ts): what they store
 * must be one committed state — the bytes, and the facts read beside them — whatever writers do
 * before, during and after the read, and a file that is not what its header says is refused.
 */

let ws: Workspace;
afterEach(async () => ws?.dispose());

/** Adds a table of `rows` rows of 1000 random bytes (a few hundred KiB a hundred rows). */
function addFiller(path: string, rows: number): void {
  const db = new Database(path);
  db.exec(`CREATE TABLE IF NOT EXISTS filler(id INTEGER PRIMARY KEY, v BLOB);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${rows}) INSERT INTO filler(v) SELECT randomblob(1000) FROM n;`);
  db.close();
}

/** `takeChanges` with a SHA-256 thread of its own, closed after. */
async function takeChangesOnce(...args: Parameters<typeof takeChanges> extends [...infer Head, unknown] ? Head : never) {
  const sha = readPassThread();
  try {
    return await takeChanges(...args, sha);
  } finally {
    await sha.close();
  }
}

async function restoreTo(id: string, name: string): Promise<string> {
  const target = join(ws.dir, name);
  await restore(ws.engine, { backup: id, target });
  return target;
}

/** Where `require('better-sqlite3')` resolves for this package, for the child processes below. */
const BETTER_SQLITE3 = JSON.stringify(createRequire(import.meta.url).resolve('better-sqlite3'));

/**
 * A writer process that commits every millisecond, in one transaction, +1 to the row of `head` (at
 * the start of the file) and of `tail` (at its end) and a row into `tail_log`: a read that is not
 * one state sees `head` and `tail` differ. Waits up to 5 s for a lock; `stop()` returns its tallies.
 */
async function startSpreadWriter(path: string): Promise<{ stop(): Promise<{ commits: number; errors: number }> }> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const db = new (require(${BETTER_SQLITE3}))(${JSON.stringify(path)}, { timeout: 5000 });
       const step = db.transaction(() => {
         db.prepare('UPDATE head SET n = n + 1').run();
         db.prepare('UPDATE tail SET n = n + 1').run();
         db.prepare('INSERT INTO tail_log(at) VALUES (?)').run(Date.now());
       });
       let commits = 0, errors = 0, stop = false;
       process.on('SIGTERM', () => (stop = true));
       console.log('ready');
       const loop = () => {
         if (stop) return db.close(), console.log(JSON.stringify({ commits, errors }));
         try { step.immediate(); commits++; } catch { errors++; }
         setTimeout(loop, 1);
       };
       loop();`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines = createInterface({ input: child.stdout! });
  const next = () => new Promise<string>((resolve, reject) => lines.once('line', resolve).once('close', () => reject(new Error('the writer exited'))));
  expect(await next()).toBe('ready');
  return {
    stop: async () => {
      const tallies = next();
      child.kill('SIGTERM');
      return JSON.parse(await tallies) as { commits: number; errors: number };
    },
  };
}

const headAndTail = (path: string) => {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT (SELECT n FROM head) AS head, (SELECT n FROM tail) AS tail').get() as { head: number; tail: number };
  } finally {
    db.close();
  }
};

describe('an incremental read from the live database (rollback journal)', () => {
  it('is one committed state, with its facts, while a writer commits before, during and after the read; the writer only waits', async () => {
    ws = await makeWorkspace();
    const db = new Database(ws.database);
    db.exec('CREATE TABLE head(n); INSERT INTO head VALUES (0);');
    db.close();
    addFiller(ws.database, 20_000); // ~25 MB between head and tail: a read long enough for commits to queue behind it
    const seeded = new Database(ws.database);
    seeded.exec('CREATE TABLE tail(n); INSERT INTO tail VALUES (0); CREATE TABLE tail_log(at);');
    seeded.close();
    await backup(ws.engine, { type: 'full' });
    const writer = await startSpreadWriter(ws.database);
    let tallies;
    try {
      for (let round = 1; round <= 3; round++) {
        const before = headAndTail(ws.database).head;
        const { manifest } = await backup(ws.engine, { type: 'incremental' });
        const after = headAndTail(ws.database).head;
        expect(manifest).toMatchObject({ type: 'incremental', source: { journalMode: 'delete' } });
        expect(manifest.source.lockMs).toBeGreaterThan(0);
        const target = await restoreTo(manifest.id, `restored-${round}.sqlite3`);
        const { head, tail } = headAndTail(target);
        expect(tail).toBe(head);
        // Every commit made before the backup is in it; none made after it.
        expect(head).toBeGreaterThanOrEqual(before);
        expect(head).toBeLessThanOrEqual(after);
        // The facts were read in the same transaction as the bytes: the row counts are the restored state's.
        expect(manifest.source.tables).toEqual(tableRowCounts(target));
        expect(manifest.source.tables.tail_log).toBe(head);
        expect(execFileSync('sqlite3', [target, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
      }
    } finally {
      tallies = await writer.stop();
    }
    expect(tallies.errors).toBe(0);
    expect(tallies.commits).toBeGreaterThan(10);
  });

  it('rolls back a hot journal a crashed writer left, and stores the state before that transaction', async () => {
    ws = await makeWorkspace();
    addFiller(ws.database, 2000);
    await backup(ws.engine, { type: 'full' });
    addFiller(ws.database, 100);
    const committed = tableRowCounts(ws.database);
    const before = await sha256File(ws.database);
    // A writer with a two-page cache spills its changes into the database file mid-transaction, then dies.
    const crashed = spawnSync(
      process.execPath,
      [
        '-e',
        `const db = new (require(${BETTER_SQLITE3}))(${JSON.stringify(ws.database)});
         db.pragma('cache_size = 2');
         db.exec('BEGIN');
         db.exec('UPDATE filler SET v = randomblob(1000); INSERT INTO filler(v) SELECT v FROM filler;');
         process.kill(process.pid, 'SIGKILL');`,
      ],
      { encoding: 'utf8' },
    );
    expect(crashed.signal).toBe('SIGKILL');
    expect(existsSync(`${ws.database}-journal`)).toBe(true);
    expect(await sha256File(ws.database)).not.toBe(before); // uncommitted pages are in the file

    const { manifest } = await backup(ws.engine, { type: 'incremental' });
    expect(manifest.type).toBe('incremental');
    expect(existsSync(`${ws.database}-journal`)).toBe(false);
    expect(manifest.source.snapshotSha256).toBe(before);
    expect(manifest.source.tables).toEqual(committed);
    const target = await restoreTo(manifest.id, 'restored.sqlite3');
    expect(await sha256File(target)).toBe(before);
  });

  it('refuses a file longer or shorter than its header says, storing nothing and leaving it as it was', async () => {
    ws = await makeWorkspace();
    await backup(ws.engine, { type: 'full' });
    const original = await readFile(ws.database);
    for (const [how, change] of [
      ['longer', () => appendFile(ws.database, Buffer.alloc(100, 7))],
      ['shorter', () => truncate(ws.database, original.length - 100)],
    ] as const) {
      await change();
      const damaged = await sha256File(ws.database);
      await expect(backup(ws.engine, { type: 'incremental' }), how).rejects.toMatchObject({
        code: 'stowage.source.unreadable',
        message: expect.stringMatching(/bytes but its header says \d+; the database may be damaged/),
      });
      expect(await sha256File(ws.database)).toBe(damaged);
      expect(await readdir(join(ws.config.stateDir, 'staging'))).toEqual([]);
      await truncate(ws.database, 0);
      await appendFile(ws.database, original);
    }
    expect((await listBackups(ws.engine)).map((b) => b.manifest.type)).toEqual(['full']);
    const { manifest } = await backup(ws.engine, { type: 'incremental' });
    expect(manifest.source.snapshotSha256).toBe(createHash('sha256').update(original).digest('hex'));
  });

  it('takes a full when the page size changed since the parent, saying why', async () => {
    ws = await makeWorkspace();
    const { manifest: full } = await backup(ws.engine, { type: 'full' });
    const db = new Database(ws.database);
    db.pragma('page_size = 8192');
    db.exec('VACUUM');
    db.close();
    const { manifest } = await backup(ws.engine, { type: 'incremental' });
    expect(manifest).toMatchObject({ type: 'full', fullBecause: `the page size changed since ${full.id}`, source: { pageSize: 8192 } });
    const target = await restoreTo(manifest.id, 'restored.sqlite3');
    expect(await sha256File(target)).toBe(await sha256File(ws.database));
  });

  it('reads in holds, and after a commit between two holds, reads a copy instead: the delta of the state after the commit', async () => {
    ws = await makeWorkspace();
    addFiller(ws.database, 5000); // several reads
    const { manifest: full } = await backup(ws.engine, { type: 'full' });
    addFiller(ws.database, 100);
    const parent = { ...full.source, pageHashes: await readFile(join(ws.config.stateDir, 'cache', `${full.id}.pagehash`)) };
    const take = (name: string, betweenHolds: () => void) =>
      takeChangesOnce(
        ws.database,
        parent,
        { snapshot: join(ws.dir, `${name}.sqlite3`), delta: join(ws.dir, `${name}.delta`) },
        { busyTimeoutMs: 5000, holdsMs: [0], betweenHolds },
      );
    const created: string[] = [];
    const watcher = watch(ws.dir, (_event, name) => created.push(String(name)));
    let breaths = 0;
    const copied = await take('copied', () => {
      if (++breaths === 1) addFiller(ws.database, 10);
    });
    const committed = breaths;
    const read = await take('read', () => void breaths++);
    await new Promise((r) => setTimeout(r, 100));
    watcher.close();
    expect(created).toContain('copied.sqlite3'); // the copy was made (and removed once read)
    expect(created).not.toContain('read.sqlite3');
    expect(existsSync(join(ws.dir, 'copied.sqlite3'))).toBe(false);
    expect(breaths - committed).toBeGreaterThan(1); // the read took several holds
    expect(read!.pages.length).toBeGreaterThan(0);
    expect(copied).toEqual({ ...read, snapshot: { ...read!.snapshot, lockMs: expect.any(Number) } });
    expect(await readFile(join(ws.dir, 'copied.delta'))).toEqual(await readFile(join(ws.dir, 'read.delta')));
    expect(read!.digest.sha256).toBe(await sha256File(ws.database));
    expect(read!.facts.tables.filler).toBe(5110);
  });

  it('gives up with source.locked, storing nothing, when a writer holds the database past busyTimeoutMs', async () => {
    ws = await makeWorkspace({ config: { source: { database: 'db.sqlite3', busyTimeoutMs: 300 } } });
    await backup(ws.engine, { type: 'full' });
    const writer = new Database(ws.database);
    writer.prepare('BEGIN EXCLUSIVE').run();
    try {
      await expect(backup(ws.engine, { type: 'incremental' })).rejects.toMatchObject({ code: 'stowage.source.locked' });
    } finally {
      writer.prepare('ROLLBACK').run();
      writer.close();
    }
    expect(await readdir(join(ws.config.stateDir, 'staging'))).toEqual([]);
    expect((await listBackups(ws.engine)).map((b) => b.manifest.type)).toEqual(['full']);
  });
});

/*
 * The live read in holds (rollback-journal mode): whatever happens between two holds, the delta,
 * digest and facts are those of the database as it is after. Holds of 0 ms make every 2 MiB read
 * a hold of its own; the parent has no pages, so the delta holds every page.
 */
describe('takeChanges in holds of the read lock, with something happening between two holds', () => {
  const READ_CHUNK = 2 << 20;
  const COPY_CHUNK = 4 << 20;
  const noPages = { pageSize: 4096, pageCount: 0, snapshotSha256: '0'.repeat(64), pageHashes: Buffer.alloc(0) };
  const take = (dir: string, path: string, name: string, betweenHolds: () => void) =>
    takeChangesOnce(
      path,
      noPages,
      { snapshot: join(dir, `${name}.sqlite3`), delta: join(dir, `${name}.delta`) },
      { busyTimeoutMs: 5000, holdsMs: [0, 0], betweenHolds },
    );
  const chunks = async (path: string, bytes: number) => Math.ceil((await stat(path)).size / bytes);

  it.each(HOLD_EVENTS)('$event: the delta is the database as it is after', async ({ at, commits }) => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const reads = await chunks(path, READ_CHUNK);
      let breaths = 0;
      const changes = await take(dir, path, 'during', () => {
        if (++breaths === 2) at(path);
      });
      // No commit: one breath between each two reads. A commit at the second: the read ends there, and the file is copied in holds.
      expect(breaths).toBe(commits ? 2 + (await chunks(path, COPY_CHUNK)) - 1 : reads - 1);
      expect(existsSync(`${path}-journal`)).toBe(false);
      expect(existsSync(join(dir, 'during.sqlite3'))).toBe(false);
      const after = await take(dir, path, 'after', () => {});
      const { digest, ...found } = changes!;
      expect({ ...found, snapshot: { ...found.snapshot, lockMs: 0 } }).toEqual({ ...after!, digest: undefined, snapshot: { ...after!.snapshot, lockMs: 0 } });
      expect(digest.pageHashes.equals(after!.digest.pageHashes)).toBe(true);
      // Compared as one value each: a deep comparison of 20 MB, byte by byte, takes the test runner's whole heap.
      expect(await sha256File(join(dir, 'during.delta'))).toBe(await sha256File(join(dir, 'after.delta')));
      expect(changes!.digest.sha256).toBe(await sha256File(path));
      expect(changes!.facts.tables).toEqual(tableRowCounts(path));
    });
  });

  it('refuses a database switched to WAL mode between two holds, with a one-line error, the database whole', async () => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const taking = take(dir, path, 'during', () => writeNow(path, 'PRAGMA journal_mode = WAL;'));
      await expect(taking).rejects.toMatchObject({
        code: 'stowage.source.unreadable',
        message: expect.stringMatching(/switched to WAL mode during the backup; run the backup again$/),
      });
      expect(execFileSync('sqlite3', [path, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
    });
  });
});
