import { checkWriterInvariants, startWriterProcess } from '@stowage/fixtures';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { restore } from './restore.js';
import { takeSnapshot, warmPageCache } from './snapshot.js';
import { makeWorkspace, sha256File, type Workspace } from './test/harness.js';
import { bumpEnds, HOLD_EVENTS, withHoldsDatabase, writeNow } from './test/hold-events.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe.each(['delete', 'wal'] as const)('a backup while another process writes every 2 ms (journal_mode=%s)', (journalMode) => {
  it('finishes promptly and restores to a database holding only whole transactions', async () => {
    ws = await makeWorkspace({ journalMode });
    const writer = await startWriterProcess(ws.database, { intervalMs: 2 });
    let stats;
    try {
      while ((await writer.commits()) < 50) await new Promise((r) => setTimeout(r, 20));
      const before = await writer.commits();
      const started = Date.now();
      const result = await backup(ws.engine, { type: 'full' });
      const elapsed = Date.now() - started;
      await new Promise((r) => setTimeout(r, 100));
      expect(await writer.commits()).toBeGreaterThan(before); // the writer kept going
      expect(elapsed).toBeLessThan(15_000);
      expect(result.manifest.source.journalMode).toBe(journalMode);

      const restored = await restore(ws.engine, { backup: result.manifest.id, target: join(ws.dir, 'restored.sqlite3') });
      const invariants = checkWriterInvariants(restored.target!);
      expect(invariants).toMatchObject({ ok: true });
      expect(invariants.seq).toBeGreaterThanOrEqual(before);
      expect(execFileSync('sqlite3', [restored.target!, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
    } finally {
      stats = await writer.stop();
    }
    expect(stats.errors).toBe(0);
  });
});

describe('warmPageCache', () => {
  const readBytes = async () => Number(/^rchar: (\d+)$/m.exec(await readFile('/proc/self/io', 'utf8'))![1]);
  const size = 9 * (4 << 20) + 12_345; // more chunks than lanes, and a partial last one

  async function withFile(run: (path: string) => Promise<void>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-warm-'));
    try {
      const path = join(dir, 'db.sqlite3');
      await writeFile(path, randomBytes(size));
      await run(path);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('reads a database the page cache lost once, whole, so the copy under the lock comes from memory', async () => {
    await withFile(async (path) => {
      execFileSync('sync');
      execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'count=0', 'status=none']); // drops its cached pages
      const before = await readBytes();
      await warmPageCache(path);
      const read = (await readBytes()) - before;
      expect(read).toBeGreaterThanOrEqual(size);
      expect(read).toBeLessThan(size + (1 << 20)); // once, not per lane
    });
  });

  it('only samples a database that is in the page cache', async () => {
    await withFile(async (path) => {
      const before = await readBytes();
      await warmPageCache(path);
      const read = (await readBytes()) - before;
      expect(read).toBeGreaterThan(0);
      expect(read).toBeLessThan(1 << 20);
    });
  });

  /** Drops the cached pages of `path` from its 4 KiB page `from` to its end. */
  const evictFrom = (path: string, from: number) => {
    execFileSync('sync');
    execFileSync('dd', [`if=${path}`, 'iflag=nocache', 'bs=4096', `skip=${from}`, 'count=0', 'status=none']);
  };
  const pages = Math.floor(size / 4096);

  it('only samples a database of which a few pages left the page cache: they are read under the lock', async () => {
    await withFile(async (path) => {
      evictFrom(path, Math.floor((pages * 62) / 64)); // the last two of the 64 stretches sampled: two pages come from storage
      const before = await readBytes();
      await warmPageCache(path);
      expect((await readBytes()) - before).toBeLessThan(1 << 20);
    });
  });

  it('reads a database half of which left the page cache, whole', async () => {
    await withFile(async (path) => {
      evictFrom(path, Math.floor(pages / 2));
      const before = await readBytes();
      await warmPageCache(path);
      expect((await readBytes()) - before).toBeGreaterThanOrEqual(size);
    });
  });

  it('leaves a missing file or a folder for the snapshot to report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-warm-'));
    try {
      await expect(warmPageCache(join(dir, 'missing.sqlite3'))).resolves.toBeUndefined();
      await expect(warmPageCache(dir)).resolves.toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/*
 * The copy in holds (rollback-journal mode): whatever happens between two holds, the snapshot is
 * the bytes of one committed state — the state the database is in once nothing else happens.
 * Holds of 0 ms make every 4 MiB chunk a hold of its own, so the events below land mid-copy.
 */
describe('takeSnapshot in holds of the read lock, with something happening between two holds', () => {
  const CHUNK = 4 << 20;
  it.each(HOLD_EVENTS)('$event: the snapshot is the database as it is after', async ({ at, commits }) => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const chunks = Math.ceil((await stat(path)).size / CHUNK);
      let breaths = 0;
      const snapshot = await takeSnapshot(path, join(dir, 'snapshot'), {
        busyTimeoutMs: 5000,
        holdsMs: [0, 0],
        betweenHolds: () => {
          if (++breaths === 2) at(path);
        },
      });
      // No restart: one breath between each two chunks. A restart at the second: those two, then the second attempt's.
      expect(breaths).toBe(commits ? 2 + (Math.ceil((await stat(path)).size / CHUNK) - 1) : chunks - 1);
      expect(existsSync(`${path}-journal`)).toBe(false);
      expect(await sha256File(snapshot.path)).toBe(await sha256File(path));
      expect(snapshot).toMatchObject({ journalMode: 'delete', pageCount: (await stat(path)).size / snapshot.pageSize });
      expect(execFileSync('sqlite3', [snapshot.path, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
    });
  });

  it('after a commit in every attempt in holds, copies in one hold, however long', async () => {
    await withHoldsDatabase(async ({ dir, path }) => {
      let breaths = 0;
      const snapshot = await takeSnapshot(path, join(dir, 'snapshot'), {
        busyTimeoutMs: 5000,
        holdsMs: [0, 0],
        betweenHolds: () => {
          breaths++;
          writeNow(path, bumpEnds);
        },
      });
      expect(breaths).toBe(2); // the first breath of each attempt in holds; none in the last
      const db = new Database(snapshot.path, { readonly: true });
      expect(db.prepare('SELECT (SELECT n FROM head) AS head, (SELECT n FROM tail) AS tail').get()).toEqual({ head: 2, tail: 2 });
      db.close();
      expect(await sha256File(snapshot.path)).toBe(await sha256File(path));
    });
  });

  it('refuses a database switched to WAL mode between two holds, leaving no snapshot and the database whole', async () => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const target = join(dir, 'snapshot');
      const taking = takeSnapshot(path, target, { busyTimeoutMs: 5000, holdsMs: [0], betweenHolds: () => writeNow(path, 'PRAGMA journal_mode = WAL;') });
      await expect(taking).rejects.toMatchObject({ code: 'stowage.source.unreadable', message: expect.stringContaining('switched to WAL mode') });
      expect(existsSync(target)).toBe(false);
      expect(execFileSync('sqlite3', [path, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
    });
  });

  it('in holds of 0 ms, lets a writer in between every two chunks; unbounded, holds the lock once for the whole copy', async () => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const chunks = Math.ceil((await stat(path)).size / CHUNK);
      let breaths = 0;
      const once = await takeSnapshot(path, join(dir, 'once'), {
        busyTimeoutMs: 5000,
        holdsMs: [Number.POSITIVE_INFINITY],
        betweenHolds: () => void breaths++,
      });
      expect(breaths).toBe(0);
      expect(once.lockMs).toBeGreaterThan(0);
      const inHolds = await takeSnapshot(path, join(dir, 'in-holds'), {
        busyTimeoutMs: 5000,
        holdsMs: [0, 0, 0],
        betweenHolds: () => {
          const db = new Database(path, { timeout: 0 });
          db.exec('BEGIN EXCLUSIVE'); // the lock a commit needs, refused (timeout 0) while any read lock is held
          db.exec('ROLLBACK');
          db.close();
          breaths++;
        },
      });
      expect(breaths).toBe(chunks - 1);
      expect(await sha256File(inHolds.path)).toBe(await sha256File(once.path));
    });
  });
});
