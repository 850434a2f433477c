import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@stowage/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { UsageError } from './exit-codes.js';
import { initConfigPath, runInit } from './init.js';
import { Output } from './output.js';

const out = new Output({ json: false, quiet: true }, 'stowage');
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-init-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('stowage init', () => {
  it('writes a commented YAML config that loads, with the media folder found beside the database', async () => {
    await writeFile(join(dir, 'db.sqlite3'), '');
    await mkdir(join(dir, 'media'));
    const path = join(dir, 'stowage.config.yaml');
    await runInit(out, path, { database: 'db.sqlite3', destination: 'backups' });
    const text = await readFile(path, 'utf8');
    expect(text).toMatch(/^# yaml-language-server: \$schema=/);
    expect(text).toContain('# Where backups go');
    const config = await loadConfig(path);
    expect(config.source.database).toBe(join(dir, 'db.sqlite3'));
    expect(config.source.files).toEqual({ media: expect.objectContaining({ path: 'media' }) });
    expect(config.destinations).toEqual([{ name: 'local', url: 'backups' }]);
    expect(config.retention).toMatchObject({ full: '30d', incremental: '7d', hot: '3d' });
  });

  it('writes JSON for a .json path, without file sets when there is no media folder', async () => {
    await writeFile(join(dir, 'db.sqlite3'), '');
    const path = join(dir, 'stowage.config.json');
    await runInit(out, path, { database: 'db.sqlite3', destination: 'backups' });
    const config = JSON.parse(await readFile(path, 'utf8')) as { source: Record<string, unknown> };
    expect(config.source).toEqual({ database: 'db.sqlite3' });
  });

  it('refuses a database that does not exist, saying paths are relative to the config, unless --force', async () => {
    const path = join(dir, 'stowage.config.yaml');
    const refused = runInit(out, path, { database: 'db.sqlite3', destination: 'backups' });
    await expect(refused).rejects.toBeInstanceOf(UsageError);
    await expect(refused).rejects.toThrow(`no database at ${join(dir, 'db.sqlite3')} (--database is relative to the config's folder, ${dir})`);
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
    await runInit(out, path, { database: 'db.sqlite3', destination: 'backups', force: true });
    expect((await loadConfig(path)).source.database).toBe(join(dir, 'db.sqlite3'));
  });

  it('writes ./stowage.config.yaml by default, and refuses a second config beside a stowage.config.json', async () => {
    const cwd = process.cwd();
    const saved = process.env.STOWAGE_CONFIG;
    process.chdir(dir);
    delete process.env.STOWAGE_CONFIG;
    try {
      expect(initConfigPath(undefined)).toBe(join(process.cwd(), 'stowage.config.yaml'));
      expect(initConfigPath('other.json')).toBe(join(process.cwd(), 'other.json'));
      await writeFile('db.sqlite3', '');
      await writeFile('stowage.config.json', '{}');
      expect(initConfigPath(undefined)).toBe(join(process.cwd(), 'stowage.config.json'));
      await expect(runInit(out, initConfigPath(undefined), { database: 'db.sqlite3', destination: 'backups' })).rejects.toThrow(
        /stowage\.config\.json already exists; pass --force/,
      );
    } finally {
      process.chdir(cwd);
      if (saved !== undefined) process.env.STOWAGE_CONFIG = saved;
    }
  });
});
