import { checkWriterInvariants, startWriterProcess } from '@stowage/fixtures';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { restore } from './restore.js';
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
