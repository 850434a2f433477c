import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGreaterWmsDatabase, simulateWarehouseActivity } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const TSX = join(REPO, 'node_modules', '.bin', 'tsx');

let dir: string;
function stowage(...args: string[]) {
  const result = spawnSync(TSX, [join(REPO, 'apps/cli/src/bin/stowage.ts'), ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, STOWAGE_CONFIG: '' },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-chains-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 4, scale: 0.3 });
  await writeFile(
    join(dir, 'stowage.config.json'),
    JSON.stringify({
      source: { database: 'db.sqlite3' },
      destinations: [
        { name: 'a', url: 'a' },
        { name: 'b', url: 'b' },
      ],
    }),
  );
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('stowage list per destination', () => {
  it('marks a destination that holds a backup but not its whole chain, and restore --from it names the link it lacks', async () => {
    const result = (stdout: string) => (JSON.parse(stdout) as { result: unknown }).result;
    const full = result(stowage('backup', '--type', 'full', '--json').stdout) as { id: string };
    simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: 5, operations: 10 });
    const inc = result(stowage('backup', '--type', 'incremental', '--json').stdout) as { id: string; type: string; committed: string[] };
    expect(inc).toMatchObject({ type: 'incremental' });
    expect(inc.committed.sort()).toEqual(['a', 'b']);
    await unlink(join(dir, 'b', 'full', `${full.id}.manifest.json`));

    const listed = result(stowage('list', '--json').stdout) as { backups: Array<{ id: string; destinations: string[]; restorableFrom: string[] }> };
    expect(listed.backups).toMatchObject([
      { id: full.id, destinations: ['a'], restorableFrom: ['a'] },
      { id: inc.id, destinations: ['a', 'b'], restorableFrom: ['a'] },
    ]);
    expect(stowage('list').stdout).toMatch(new RegExp(`${inc.id}\\s.*\\sa,b\\(chain incomplete\\)`));
    const fromB = stowage('restore', 'latest', '--from', 'b', '--test-mode', '--json');
    expect(fromB.code).toBe(1);
    expect(fromB.stderr).toMatch(new RegExp(`needs ${full.id}, which cannot be read \\(backup ${full.id} not found at b`));
  });
});
