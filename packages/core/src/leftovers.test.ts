import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ownerToken, TOKEN_HOST } from '@stowage/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { openEngine } from './engine.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

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
});
