import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { withChaos } from '@stowage/storage-testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { cleanup } from './cleanup.js';
import { parseManifest, serializeManifest } from './manifest.js';
import { openEngine } from './engine.js';
import { restore } from './restore.js';
import { verify, type BackupVerification } from './verify.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

const problemsOf = (results: BackupVerification[]) => results.flatMap((r) => r.artifacts.filter((a) => !a.ok).map((a) => a.problem));
const at = (day: number, hour = 2) => new Date(2024, 0, day, hour, 0, 0);

/** Backups on a controllable clock: a full on day 1 and day 8, incrementals in between, a hot on day 3. */
async function history(workspace: Workspace, clock: { now: Date }) {
  const ids: Record<string, string> = {};
  const take = async (label: string, type: 'full' | 'incremental' | 'hot', when: Date) => {
    clock.now = when;
    simulateWarehouseActivity(workspace.database, { seed: when.getTime() % 1000, operations: 5 });
    ids[label] = (await backup(workspace.engine, { type })).manifest.id;
  };
  await take('full1', 'full', at(1));
  await take('inc1a', 'incremental', at(1, 3));
  await take('inc1b', 'incremental', at(2));
  await take('hot3', 'hot', at(3));
  await take('full8', 'full', at(8));
  await take('inc8a', 'incremental', at(8, 3));
  return ids;
}

describe('retention and cleanup', () => {
  it('keeps what a kept incremental needs, and judges ages --as-of a given time', async () => {
    const clock = { now: at(1) };
    ws = await makeWorkspace({ engine: { now: () => clock.now }, config: { retention: { full: '5d', incremental: '1d', hot: '1d' } } });
    const ids = await history(ws, clock);

    // As of day 2 12:00 everything is young enough, except nothing: no deletion.
    expect((await cleanup(ws.engine, { dryRun: true, asOf: at(2, 12) })).removed).toEqual([]);

    // As of day 8 04:00: inc1a/inc1b are > 1 day old; full1 is 7 days old (> 5d); hot3 is > 1 day old
    // but the newest hot backup. full8 and inc8a are young. Nothing needs the day-1 chain any more.
    const plan = await cleanup(ws.engine, { dryRun: true, asOf: at(8, 4) });
    expect(plan.removed.map((r) => r.what).sort()).toEqual([ids.full1, ids.inc1a, ids.inc1b].sort());
    expect(plan.kept.find((k) => k.id === ids.hot3)?.why).toBe('the newest hot backup is always kept');
    expect(plan.bytesFreed).toBeGreaterThan(0);
    expect((await listBackups(ws.engine)).length).toBe(6); // dry run deleted nothing

    // With incrementals kept 10 days, inc1b stays and keeps inc1a and full1 (its chain) with it.
    const longer = await openEngine({ ...ws.config, retention: { ...ws.config.retention, incremental: '10d' } }, { retry: false });
    const chained = await cleanup(longer, { dryRun: true, asOf: at(8, 4) });
    expect(chained.removed.map((r) => r.what)).toEqual([]);
    expect(chained.kept.find((k) => k.id === ids.full1)?.why).toBe(`needed by ${ids.inc1b}`);

    const done = await cleanup(ws.engine, { asOf: at(8, 4) });
    expect(done.removed).toHaveLength(3);
    expect((await listBackups(ws.engine)).map((e) => e.manifest.id)).toEqual([ids.hot3, ids.full8, ids.inc8a]);
    expect(existsSync(join(ws.backups, 'full', `${ids.full1}.sqlite3`))).toBe(false);
    expect(await readFile(join(ws.backups, 'logs', 'backup.log'), 'utf8')).toMatch(/ cleanup - ok [\d.]+s \d+B removed=local:/);
    const restored = await restore(ws.engine, { backup: ids.inc8a!, testMode: true });
    expect(restored.chain).toEqual([ids.full8, ids.inc8a]);
  });

  it('never deletes the newest backup of a type, and honours keepLast and per-destination overrides', async () => {
    const clock = { now: at(1) };
    ws = await makeWorkspace({
      engine: { now: () => clock.now },
      config: {
        retention: { full: { maxAge: '1d', keepLast: 2 }, incremental: '1h', hot: '1h' },
        destinations: [
          { name: 'local', url: 'backups' },
          { name: 'archive', url: 'archive', retention: { full: '365d' } },
        ],
      },
    });
    const ids = await history(ws, clock);
    const result = await cleanup(ws.engine, { asOf: at(60) });
    const removedAt = (d: string) =>
      result.removed
        .filter((r) => r.destination === d)
        .map((r) => r.what)
        .sort();
    // local: the two newest fulls kept (keepLast 2); incrementals and hot 1h → gone except the newest of each, inc8a (which needs full8) and hot3.
    expect(removedAt('local')).toEqual([ids.inc1a, ids.inc1b].sort());
    // archive keeps fulls a year; only the older incrementals go.
    expect(removedAt('archive')).toEqual([ids.inc1a, ids.inc1b].sort());
    expect(result.kept.find((k) => k.destination === 'local' && k.id === ids.inc8a)?.why).toBe('the newest incremental backup is always kept');
    expect(result.kept.find((k) => k.destination === 'local' && k.id === ids.hot3)?.why).toBe('the newest hot backup is always kept');
  });

  it('removes orphaned artifacts older than an hour, and a crash mid-cleanup leaves no committed backup with missing parts', async () => {
    const clock = { now: at(1) };
    ws = await makeWorkspace({ engine: { now: () => clock.now }, config: { retention: { full: '1d', incremental: '1d', hot: '1d' } } });
    const ids = await history(ws, clock);
    const old = join(ws.backups, 'full', 'full_backup_20231231_020000.sqlite3');
    const fresh = join(ws.backups, 'full', 'full_backup_20240101_090000.sqlite3');
    await writeFile(old, 'left by a crashed backup');
    await writeFile(fresh, 'a backup still running');
    await utimes(old, new Date(Date.now() - 2 * 3_600_000), new Date(Date.now() - 2 * 3_600_000));

    // The second delete call fails: the first backup to go (inc1b, newest first) loses its manifest, its artifacts stay.
    const crashing = await openEngine(ws.config, { retry: false, wrappers: [(a) => withChaos(a, { delete: { fail: [2] } })] });
    const crashed = await cleanup(crashing, { asOf: at(9) });
    expect(crashed.failures).toHaveLength(1);
    const listed = (await listBackups(ws.engine)).map((e) => e.manifest.id);
    for (const entry of await listBackups(ws.engine)) {
      for (const artifact of entry.manifest.artifacts) expect(existsSync(join(ws.backups, artifact.key))).toBe(true);
    }
    expect(listed).not.toContain(ids.inc1b);
    expect(listed).toContain(ids.inc1a);
    // verify says to finish the job, not to copy the half-removed backup back.
    expect(problemsOf(await verify(ws.engine, { all: true }))).toEqual([
      expect.stringMatching(new RegExp(`cleanup was interrupted while removing ${ids.inc1b} at local .*rerun \`stowage cleanup\``)),
    ]);

    // The rerun finishes the interrupted removal (recorded before it began), whatever the age of what it left.
    // Artifacts written by the test harness just now are not orphans yet; the old one is.
    const again = await cleanup(ws.engine, { asOf: at(9) });
    expect(again.removed.filter((r) => r.why === `left by an interrupted removal of ${ids.inc1b}`).length).toBeGreaterThan(0);
    expect((await readdir(join(ws.backups, 'incremental'))).filter((f) => f.startsWith(ids.inc1b!))).toEqual([]);
    expect(again.removed.find((r) => r.what === 'full/full_backup_20231231_020000.sqlite3')).toMatchObject({ kind: 'orphan' });
    expect(existsSync(old)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
  });

  it('never deletes a backup whose manifest it cannot read: a flipped byte in the newest incremental manifest is damage (issue 10 #1)', async () => {
    const clock = { now: at(1) };
    ws = await makeWorkspace({ engine: { now: () => clock.now }, config: { retention: { full: '1d', incremental: '1d', hot: '1d' } } });
    const ids = await history(ws, clock);
    const path = join(ws.backups, 'incremental', `${ids.inc8a}.manifest.json`);
    const bytes = await readFile(path);
    bytes[bytes.length >> 1]! ^= 0x01;
    await writeFile(path, bytes);
    const old = new Date(Date.now() - 2 * 3_600_000);
    for (const folder of ['full', 'incremental', 'hot'])
      for (const name of await readdir(join(ws.backups, folder))) await utimes(join(ws.backups, folder, name), old, old);

    const result = await cleanup(ws.engine, { asOf: at(30) });
    expect(result.damaged).toEqual([
      expect.objectContaining({
        destination: 'local',
        key: `incremental/${ids.inc8a}.manifest.json`,
        problem: expect.stringContaining('no destination holds a good copy'),
      }),
    ]);
    // Nothing of inc8a went as an orphan; the newest incremental that can be read (inc1b) and its chain stay too.
    expect((await readdir(join(ws.backups, 'incremental'))).filter((f) => f.startsWith(ids.inc8a!)).length).toBeGreaterThan(1);
    expect(result.removed).toEqual([]);
    expect(result.kept.find((k) => k.id === ids.inc1b)?.why).toBe('the newest incremental backup is always kept');
    expect(result.kept.find((k) => k.id === ids.full8)?.why).toBe('the newest full backup is always kept');
  });

  it('reports a manifest naming a key outside the destination as such, and counts only bytes actually freed', async () => {
    const clock = { now: at(1) };
    ws = await makeWorkspace({ engine: { now: () => clock.now }, config: { retention: { full: '1d', incremental: '1d', hot: '1d' } } });
    const ids = await history(ws, clock);
    const path = join(ws.backups, 'incremental', `${ids.inc8a}.manifest.json`);
    const manifest = parseManifest(await readFile(path, 'utf8'), path);
    await writeFile(path, serializeManifest({ ...manifest, artifacts: manifest.artifacts.map((a, i) => (i === 0 ? { ...a, key: '../x' } : a)) }));
    expect(problemsOf(await verify(ws.engine, { backup: ids.inc8a! }))).toEqual([
      expect.stringContaining("manifest refers to a key outside the destination ('../x')"),
    ]);
    await writeFile(path, serializeManifest(manifest));

    // inc1b's delta is already gone: the bytes freed are what was stored, not what the manifest lists.
    const inc1b = (await listBackups(ws.engine)).find((e) => e.manifest.id === ids.inc1b)!.manifest;
    const delta = inc1b.artifacts.find((a) => a.role === 'delta')!;
    await rm(join(ws.backups, delta.key));
    const plan = await cleanup(ws.engine, { dryRun: true, asOf: at(30) });
    const stored = async (key: string) => (await stat(join(ws.backups, key)).catch(() => undefined))?.size ?? 0;
    const inc1bBytes = (await Promise.all([`incremental/${ids.inc1b}.manifest.json`, ...inc1b.artifacts.map((a) => a.key)].map(stored))).reduce(
      (a, b) => a + b,
      0,
    );
    expect(plan.removed.find((r) => r.what === ids.inc1b)?.bytes).toBe(inc1bBytes);
    const done = await cleanup(ws.engine, { asOf: at(30) });
    expect(done.bytesFreed).toBe(plan.bytesFreed);
  });
});
