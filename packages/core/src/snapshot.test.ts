import { checkWriterInvariants, startWriterProcess } from '@stowage/fixtures';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { restore } from './restore.js';
import { warmPageCache } from './snapshot.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

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
