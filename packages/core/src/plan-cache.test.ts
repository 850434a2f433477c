import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ownerToken, TOKEN_HOST } from '@stowage/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { cacheForNextBackup } from './plan.js';

let stateDir: string;
afterEach(() => rm(stateDir, { recursive: true, force: true }));

describe('cacheForNextBackup', () => {
  it("replaces the previous backup's cache and dead writers' temp files, never a cache write still under way", async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'stowage-cache-'));
    const cache = join(stateDir, 'cache');
    await mkdir(cache, { recursive: true });
    // Another backup of this process (or of a live one) is writing its cache; a killed one left a temp file.
    const underWay = `.full_backup_20240101_020000_1.pagehash.stowage-tmp-${ownerToken()}`;
    const dead = `.full_backup_20231231_020000.pagehash.stowage-tmp-${TOKEN_HOST}_999999999_1_0123abcd`;
    for (const name of ['full_backup_20231231_020000.pagehash', underWay, dead]) await writeFile(join(cache, name), 'x');
    await cacheForNextBackup({ config: { stateDir } }, 'full_backup_20240101_020000', Buffer.from('hashes'), undefined);
    expect((await readdir(cache)).sort()).toEqual([underWay, 'full_backup_20240101_020000.pagehash'].sort());
    expect(await readFile(join(cache, 'full_backup_20240101_020000.pagehash'), 'utf8')).toBe('hashes');
  });
});
