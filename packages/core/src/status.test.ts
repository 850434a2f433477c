import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { drill } from './drill.js';
import { status } from './status.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

describe('status against RPO/RTO, and drills', () => {
  it('is unhealthy with no backups, healthy after a backup, a verify and a drill, and unhealthy again once the RPO is breached', async () => {
    const clock = { now: new Date(2024, 0, 1, 2, 0, 0) };
    ws = await makeWorkspace({
      engine: { now: () => clock.now },
      config: {
        destinations: [
          { name: 'local', url: 'backups' },
          { name: 'offsite', url: 'offsite' },
        ],
      },
    });
    const empty = await status(ws.engine);
    expect(empty).toMatchObject({ healthy: false, problems: ['there is no full or incremental backup yet'] });
    await expect(drill(ws.engine)).rejects.toMatchObject({ code: 'stowage.backup.not_found', message: expect.stringMatching(/no backups yet/) });

    const { manifest } = await backup(ws.engine, { type: 'full' });
    await verify(ws.engine, { all: true });
    const drilled = await drill(ws.engine);
    expect(drilled).toMatchObject({ ok: true, backupId: manifest.id, destination: 'offsite', chainLength: 1, problems: [] });
    expect(drilled.rtoMs).toBeGreaterThan(0);
    expect(drilled.rtoMs).toBeLessThanOrEqual(drilled.durationMs);
    expect(await readFile(join(ws.backups, 'logs', 'restore.log'), 'utf8')).toMatch(new RegExp(`drill ${manifest.id} ok .* from=offsite rto=`));

    clock.now = new Date(2024, 0, 1, 2, 30, 0);
    const good = await status(ws.engine);
    expect(good).toMatchObject({ healthy: true, problems: [], rpo: { newest: manifest.id, ok: true }, lastDrill: { ok: true, withinRto: true } });
    expect(good.rpo.ageMs).toBe(30 * 60_000);

    clock.now = new Date(2024, 0, 1, 3, 1, 0);
    const late = await status(ws.engine);
    expect(late.healthy).toBe(false);
    expect(late.problems[0]).toMatch(/RPO breached: the newest backup \S+ is 61 min old \(target 1h\)/);
  });

  it('reports a failed drill and a destination behind as unhealthy', async () => {
    ws = await makeWorkspace({
      config: {
        destinations: [
          { name: 'local', url: 'backups' },
          { name: 'offsite', url: 'offsite' },
        ],
      },
    });
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const stored = join(ws.dir, 'offsite', 'full', `${manifest.id}.sqlite3`);
    const bytes = await readFile(stored);
    bytes[100]! ^= 1;
    await writeFile(stored, bytes);
    const failed = await drill(ws.engine);
    expect(failed.ok).toBe(false);
    expect(failed.problems[0]).toMatch(/damaged at offsite/);
    const s = await status(ws.engine);
    expect(s.healthy).toBe(false);
    expect(s.problems.join('\n')).toMatch(/the last drill .* failed/);
  });
});
