import { simulateWarehouseActivity } from '@stowage/fixtures';
import { forwarding } from '@stowage/storage-testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { catalogOf, listBackups } from './catalog.js';
import { drill } from './drill.js';
import { findBackup } from './find.js';
import { MANIFEST_SUFFIX } from './layout.js';
import type { Manifest } from './manifest.js';
import { restore } from './restore.js';
import { status } from './status.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { validate } from './validate.js';
import { verify } from './verify.js';

/*
 * One catalog per command: every command that lists, finds or chains backups reads each manifest
 * at each destination at most once, whatever it does with them. A chain of three backups at two
 * destinations; a wrapper counts the GETs of manifests, per destination and key.
 */

const gets = new Map<string, number>();
let ws: Workspace;
let chain: Manifest[];

beforeAll(async () => {
  ws = await makeWorkspace({
    config: {
      destinations: [
        { name: 'primary', url: 'backups' },
        { name: 'region-b', url: 'region-b' },
      ],
    },
    engine: {
      wrappers: [
        (adapter, destination) =>
          forwarding(adapter, {
            get: (key, options) => {
              if (key.endsWith(MANIFEST_SUFFIX)) gets.set(`${destination}:${key}`, (gets.get(`${destination}:${key}`) ?? 0) + 1);
              return adapter.get(key, options);
            },
          }),
      ],
    },
  });
  chain = [(await backup(ws.engine, { type: 'full' })).manifest];
  for (const seed of [2, 3]) {
    simulateWarehouseActivity(ws.database, { seed, operations: 20 });
    chain.push((await backup(ws.engine, { type: 'incremental' })).manifest);
  }
  expect(chain.map((m) => m.parent)).toEqual([null, chain[0]!.id, chain[1]!.id]);
});
afterAll(async () => ws?.dispose());

/** The manifest GETs `command` made: the most any one manifest was read, and how many reads in all. */
async function manifestGets(command: () => Promise<unknown>): Promise<{ most: number; total: number }> {
  gets.clear();
  await command();
  const counts = [...gets.values()];
  return { most: Math.max(0, ...counts), total: counts.reduce((a, b) => a + b, 0) };
}

describe('one catalog per command', () => {
  const tip = () => chain.at(-1)!.id;
  const commands: Array<[string, () => Promise<unknown>, number]> = [
    // [command, run, the fewest manifest reads it needs: the chain's three at both destinations, or all of them]
    ['restore latest', () => restore(ws.engine, { testMode: true }), 6],
    ['restore by id', () => restore(ws.engine, { backup: tip(), testMode: true }), 6],
    ['restore --at', () => restore(ws.engine, { at: new Date(), testMode: true }), 6],
    ['restore --from region-b', () => restore(ws.engine, { backup: tip(), from: 'region-b', testMode: true }), 3],
    ['verify', () => verify(ws.engine, {}), 6],
    ['verify --all', () => verify(ws.engine, { all: true }), 6],
    ['validate', () => validate(ws.engine, tip()), 6],
    ['drill', () => drill(ws.engine), 3],
    ['status', () => status(ws.engine), 6],
    ['list', () => listBackups(ws.engine), 6],
  ];
  it.each(commands)('%s reads each manifest once', async (_name, run, needed) => {
    const { most, total } = await manifestGets(run);
    expect(most).toBe(1);
    expect(total).toBe(needed);
  });

  it('an incremental backup reads each existing manifest once while planning its parent', async () => {
    const before = new Set(chain.map((m) => m.id));
    gets.clear();
    const taken = (await backup(ws.engine, { type: 'incremental' })).manifest;
    chain.push(taken);
    const existing = [...gets].filter(([key]) => [...before].some((id) => key.endsWith(`/${id}${MANIFEST_SUFFIX}`)));
    expect(existing.length).toBe(6);
    expect(existing.every(([, count]) => count === 1)).toBe(true);
  });

  it('a catalog answers a lookup from its listing, and lists a destination once however often it is asked', async () => {
    const catalog = catalogOf(ws.engine);
    const { total } = await manifestGets(async () => {
      await catalog.list();
      await catalog.list(ws.engine.destinations.slice(1));
      expect((await findBackup(ws.engine, catalog, chain[0]!.id)).destinations).toEqual(['primary', 'region-b']);
      expect((await findBackup(ws.engine, catalog, 'latest')).manifest.id).toBe(tip());
    });
    expect(total).toBe(chain.length * 2);
  });

  it('a lookup before any listing reads only the manifest asked for, once per destination', async () => {
    const catalog = catalogOf(ws.engine);
    const { most, total } = await manifestGets(async () => {
      await findBackup(ws.engine, catalog, chain[1]!.id);
      await findBackup(ws.engine, catalog, chain[1]!.id);
    });
    expect([most, total]).toEqual([1, 2]);
  });
});
