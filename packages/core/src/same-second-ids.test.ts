import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { cleanup } from './cleanup.js';
import { compareIds } from './layout.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('backup ids sharing one second (suffixes _1 … _11)', () => {
  it('compareIds orders suffixes by number, not as strings', () => {
    const ids = [
      'inc_backup_20240101_020000_10',
      'inc_backup_20240101_020000_2',
      'inc_backup_20240101_020000',
      'inc_backup_20240101_015959_11',
      'inc_backup_20240101_020000_1',
    ];
    expect([...ids].sort(compareIds)).toEqual([
      'inc_backup_20240101_015959_11',
      'inc_backup_20240101_020000',
      'inc_backup_20240101_020000_1',
      'inc_backup_20240101_020000_2',
      'inc_backup_20240101_020000_10',
    ]);
  });

  it('latest is the 12th, the list is chronological, and an unreadable _10 keeps _2 … _9 it may replay', async () => {
    const second = new Date(2024, 0, 1, 2, 0, 0);
    const clock = { now: second };
    ws = await makeWorkspace({ engine: { now: () => clock.now }, config: { retention: { full: '30d', incremental: '1h', hot: '1h' } } });
    const full = (await backup(ws.engine, { type: 'full' })).manifest.id;
    const incs: string[] = [];
    for (let i = 0; i < 12; i++) {
      simulateWarehouseActivity(ws.database, { seed: i, operations: 3 });
      incs.push((await backup(ws.engine, { type: 'incremental' })).manifest.id);
    }
    expect(incs.at(-1)).toBe('inc_backup_20240101_020000_11');
    expect((await listBackups(ws.engine)).map((e) => e.manifest.id)).toEqual([full, ...incs]);
    const latest = await restore(ws.engine, { backup: 'latest', testMode: true });
    expect(latest.chain).toEqual([full, ...incs]);

    // inc _10's manifest becomes unreadable: everything it may replay (the full and inc … _9) must stay.
    await writeFile(join(ws.backups, 'incremental', `${incs[10]}.manifest.json`), '{ not json');
    const plan = await cleanup(ws.engine, { dryRun: true, asOf: new Date(second.getTime() + 3 * 3600_000) });
    const removed = plan.removed.filter((r) => r.kind === 'backup').map((r) => r.what);
    expect(removed).toEqual([]);
    for (const id of [full, ...incs.slice(0, 10)]) expect(plan.kept.map((k) => k.id)).toContain(id);
  });
});
