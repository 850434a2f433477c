import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerToken, TOKEN_HOST } from '@stowage/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { openEngine } from './engine.js';
import { markTempFolders } from './leftovers.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());
/** The state folder's records of folders holding a run's temps (`markTempFolders`). */
const records = async () => (await readdir(ws.config.stateDir).catch(() => [] as string[])).filter((name) => name.startsWith('temp-folders-'));

describe('leftovers of crashed runs', () => {
  it('are removed by the next command when their owner is dead, and kept while it may run', async () => {
    ws = await makeWorkspace();
    const dead = `${TOKEN_HOST}_${spawnSync(process.execPath, ['-e', '']).pid}_0_0badc0de`;
    const live = ownerToken();
    const elsewhere = `other.host_1_1_0badc0de`;
    const staging = join(ws.config.stateDir, 'staging');
    await mkdir(staging, { recursive: true });
    await mkdir(join(ws.backups, 'full'), { recursive: true });
    const folders = (token: string) => [join(ws.config.stateDir, `validate-${token}`), join(ws.dir, `.stowage-restore-${token}`)];
    const files = (token: string) => [
      join(staging, `backup-${token}.sqlite3`),
      join(ws.dir, `.db.sqlite3.stowage-restore-${token}`),
      join(ws.backups, 'full', `.full_backup_20240101_000000.sqlite3.stowage-tmp-${token}`),
    ];
    const paths = (token: string) => [...folders(token), ...files(token)];
    for (const token of [dead, live, elsewhere]) {
      for (const folder of folders(token)) await mkdir(join(folder, 'spool'), { recursive: true });
      for (const file of files(token)) await writeFile(file, 'plaintext');
    }
    const warnings: string[] = [];
    const engine = await openEngine(ws.config, { onWarning: (m) => warnings.push(m) });
    await engine.close();
    expect(paths(dead).filter(existsSync)).toEqual([]);
    expect(paths(live).filter(existsSync)).toEqual(paths(live));
    expect(paths(elsewhere).filter(existsSync)).toEqual(paths(elsewhere));
    expect(warnings).toEqual([expect.stringMatching(/^removed 5 leftover\(s\) of crashed runs: /)]);
  });

  it("are removed from a folder a dead run recorded (a restore's --target elsewhere), and that folder's other files kept", async () => {
    ws = await makeWorkspace();
    const dead = `${TOKEN_HOST}_${spawnSync(process.execPath, ['-e', '']).pid}_0_0badc0de`;
    const elsewhere = join(ws.dir, 'elsewhere');
    await mkdir(elsewhere);
    // The folders swept anyway are not recorded.
    const unmark = await markTempFolders(ws.config, [ws.config.baseDir, join(ws.config.stateDir, 'test-restore')]);
    expect(await records()).toEqual([]);
    await unmark();
    await mkdir(ws.config.stateDir, { recursive: true });
    // A dead run's record of `elsewhere` (as markTempFolders writes it), and what that run left there.
    await writeFile(join(ws.config.stateDir, `temp-folders-${dead}.json`), JSON.stringify([elsewhere]));
    const left = [join(elsewhere, `.db.sqlite3.stowage-restore-${dead}`), join(elsewhere, `.stowage-restore-${dead}`)];
    const kept = [join(elsewhere, 'db.sqlite3'), join(elsewhere, `.db.sqlite3.stowage-restore-${ownerToken()}`)];
    await writeFile(left[0]!, 'plaintext');
    await mkdir(join(left[1]!, 'media'), { recursive: true });
    for (const file of kept) await writeFile(file, 'theirs');
    const engine = await openEngine(ws.config, { onWarning: () => undefined });
    await engine.close();
    expect(left.filter(existsSync)).toEqual([]);
    expect(kept.filter(existsSync)).toEqual(kept);
    expect(await records()).toEqual([]);
  });

  it('a live run records a folder outside those swept anyway, and removes its record when done', async () => {
    ws = await makeWorkspace();
    const unmark = await markTempFolders(ws.config, [join(ws.dir, 'elsewhere'), ws.config.baseDir]);
    const [record, ...more] = await records();
    expect(more).toEqual([]);
    expect(JSON.parse(await readFile(join(ws.config.stateDir, record!), 'utf8'))).toEqual([join(ws.dir, 'elsewhere')]);
    await unmark();
    expect(await records()).toEqual([]);
  });
});
