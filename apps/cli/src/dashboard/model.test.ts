import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backup, openEngine, resolveConfig, type DrillResult, type Engine, type ResolvedConfig } from '@stowage/core';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { StorageError, StorageErrorCode } from '@stowage/storage';
import { withChaos } from '@stowage/storage-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDashboard } from './model.js';
import { renderDashboard } from './render.js';

let dir: string;
let config: ResolvedConfig;
let ids: string[];
const DAY = 86_400_000;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-dashboard-model-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 5 });
  config = resolveConfig(
    {
      source: { database: 'db.sqlite3' },
      destinations: [
        { name: 'local', url: 'backups' },
        // Keeps hot backups one day (and the newest): an older one missing here is pruned, not missing.
        { name: 'nas', url: 'nas', retention: { hot: '1d' } },
        { name: 'archive', url: 'archive' },
      ],
    },
    join(dir, 'stowage.config.json'),
  );
  let clock = new Date(Date.now() - 2 * DAY);
  const engine = await openEngine(config, { retry: false, now: () => clock });
  const oldHot = await backup(engine, { type: 'hot', reason: 'two days ago' });
  clock = new Date(Date.now() - 1.5 * DAY);
  await backup(engine, { type: 'hot', reason: 'the newest hot backup, kept everywhere' });
  clock = new Date();
  const full = await backup(engine, { type: 'full' });
  await engine.close();
  ids = [oldHot.manifest.id, full.manifest.id];
  // nas pruned the old hot backup; its copy of the full has a torn manifest.
  await rm(join(dir, 'nas', 'hot', `${oldHot.manifest.id}.manifest.json`));
  await writeFile(join(dir, 'nas', 'full', `${full.manifest.id}.manifest.json`), '{"format":"stowage.manif');
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** An engine whose `archive` destination answers every read as an archived object (S3 Glacier, OSS Archive). */
function openWithArchive(): Promise<Engine> {
  const archived = () =>
    new StorageError(StorageErrorCode.ObjectArchived, "'x' at oss://bucket/ is in the Archive storage class and must be restored before it can be read");
  return openEngine(config, {
    retry: false,
    wrappers: [(adapter, name) => (name === 'archive' ? withChaos(adapter, { get: { fail: 'always', error: archived } }) : adapter)],
  });
}

describe('the status page model', () => {
  it('tells archived, unreadable (damaged), pruned and verified replicas apart', async () => {
    const engine = await openWithArchive();
    try {
      const d = await buildDashboard(engine);
      const state = (id: string, destination: string) => d.replicas.find((c) => c.backupId === id && c.destination === destination);
      const [oldHot, full] = ids as [string, string];
      expect(state(oldHot, 'local')).toMatchObject({ state: 'verified', verifiedBy: expect.any(String), verifiedAt: expect.any(String) });
      expect(state(oldHot, 'nas')?.state).toBe('pruned');
      expect(state(oldHot, 'archive')).toMatchObject({ state: 'archived', problem: expect.stringContaining('must be restored') });
      expect(state(full, 'nas')).toMatchObject({ state: 'damaged', problem: expect.stringContaining('not a Stowage manifest') });
      expect(state(full, 'archive')?.state).toBe('archived');
      // Verified RPO: the full is verified only at local.
      expect(d.destinations.map((h) => [h.name, h.verifiedRpo.backupId, h.verifiedRpo.ok])).toEqual([
        ['local', full, true],
        ['nas', null, false],
        ['archive', null, false],
      ]);
      expect(d.drills).toEqual([]);
      const html = renderDashboard(d, { served: false });
      expect(html).toContain('data-state="pruned"');
      expect(html).toContain('readable after a thaw');
    } finally {
      await engine.close();
    }
  });

  it('shows the thaw wait of a drill from an archive destination apart from its RTO', async () => {
    const drills: DrillResult[] = [
      {
        backupId: ids[1]!,
        destination: 'local',
        startedAt: new Date(Date.now() - DAY).toISOString(),
        ok: true,
        rtoMs: 2_000,
        durationMs: 2_500,
        chainLength: 1,
        problems: [],
      },
      // Five hours of thaw with an RTO target of 30 min: the drill is still within its RTO.
      {
        backupId: ids[1]!,
        destination: 'archive',
        startedAt: new Date().toISOString(),
        ok: true,
        rtoMs: 3_000,
        thawMs: 5 * 3_600_000,
        durationMs: 5 * 3_600_000 + 3_500,
        chainLength: 1,
        problems: [],
      },
    ];
    await mkdir(join(config.stateDir, 'status'), { recursive: true });
    await writeFile(join(config.stateDir, 'status', 'drills.jsonl'), drills.map((d) => `${JSON.stringify(d)}\n`).join(''));
    const engine = await openEngine(config, { retry: false });
    try {
      const d = await buildDashboard(engine);
      expect(d.drills.map((x) => [x.destination, x.thawMs, x.withinRto])).toEqual([
        ['local', undefined, true],
        ['archive', 5 * 3_600_000, true],
      ]);
      const html = renderDashboard(d, { served: false });
      expect(html).toContain('<th>thaw wait (not in RTO)</th>');
      expect(html).toContain('data-thaw-ms="18000000">5.0 h</td>');
      expect(html).toContain('data-thaw-ms="0">–</td>');
    } finally {
      await engine.close();
    }
  });
});
