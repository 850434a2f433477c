import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { simulateWarehouseActivity, writeSampleMedia } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace } from './test/harness.js';

let ws: Workspace;
afterEach(async () => ws?.dispose());

/** path → sha256 and mode of every file under `dir`. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[relative(dir, path)] = `${createHash('sha256')
      .update(await readFile(path))
      .digest('hex')} ${((await stat(path)).mode & 0o777).toString(8)}`;
  }
  return out;
}

const files = { media: { path: 'media' }, config: { files: ['settings.py'] }, logs: { path: 'logs', include: ['*.log'] } };

describe('file sets with the database', () => {
  it('round-trip media, config and logs through full and incremental backups, exactly at each point', async () => {
    ws = await makeWorkspace({ config: { source: { database: 'db.sqlite3', files } } });
    const media = writeSampleMedia(join(ws.dir, 'media'), { seed: 1, count: 12 });
    await writeFile(join(ws.dir, 'settings.py'), 'DEBUG = False\n');
    await mkdir(join(ws.dir, 'logs'));
    await writeFile(join(ws.dir, 'logs', 'app.log'), 'started\n');
    await writeFile(join(ws.dir, 'logs', 'ignored.tmp'), 'not a log');

    const full = await backup(ws.engine, { type: 'full' });
    expect(full.manifest.files).toMatchObject({ incremental: false, sets: { media: { files: media.files.length }, config: { files: 1 }, logs: { files: 1 } } });
    const atFull = await tree(join(ws.dir, 'media'));

    const mediaFiles = Object.keys(atFull);
    await rm(join(ws.dir, 'media', mediaFiles[0]!));
    await writeFile(join(ws.dir, 'media', 'new-upload.jpg'), 'fresh bytes');
    await writeFile(join(ws.dir, 'settings.py'), 'DEBUG = True\n');
    simulateWarehouseActivity(ws.database, { seed: 5, operations: 10 });
    const inc = await backup(ws.engine, { type: 'incremental' });
    expect(inc.manifest.files).toMatchObject({ incremental: true, diff: { added: 1, deleted: 1 } });
    const filesArtifact = inc.manifest.artifacts.find((a) => a.role === 'files')!;
    expect(filesArtifact.key).toBe(`incremental/${inc.manifest.id}.files.tar`);
    const atInc = await tree(join(ws.dir, 'media'));

    const early = await restore(ws.engine, { backup: full.manifest.id, testMode: true });
    const scratch = early.files!.targetDir;
    expect(await tree(join(scratch, 'media'))).toEqual(atFull);
    expect(await readFile(join(scratch, 'settings.py'), 'utf8')).toBe('DEBUG = False\n');
    expect(existsSync(join(scratch, 'logs', 'ignored.tmp'))).toBe(false);

    const late = await restore(ws.engine, { backup: inc.manifest.id, testMode: true });
    expect(await tree(join(late.files!.targetDir, 'media'))).toEqual(atInc);
    expect(await readFile(join(late.files!.targetDir, 'settings.py'), 'utf8')).toBe('DEBUG = True\n');
  });

  it('restore only the sets asked for, over the live folders, leaving the database alone', async () => {
    ws = await makeWorkspace({ config: { source: { database: 'db.sqlite3', files: { media: { path: 'media' } } } } });
    writeSampleMedia(join(ws.dir, 'media'), { seed: 2, count: 5 });
    const before = await tree(join(ws.dir, 'media'));
    await backup(ws.engine, { type: 'full' });
    await rm(join(ws.dir, 'media'), { recursive: true });
    await mkdir(join(ws.dir, 'media'));
    await writeFile(join(ws.dir, 'media', 'ransom-note.txt'), 'pay up');
    simulateWarehouseActivity(ws.database, { seed: 6, operations: 10 });
    const live = await readFile(ws.database);
    const result = await restore(ws.engine, { only: ['media'] });
    expect(result.target).toBeUndefined();
    expect(await tree(join(ws.dir, 'media'))).toEqual(before);
    expect((await readFile(ws.database)).equals(live)).toBe(true);
    await expect(restore(ws.engine, { only: ['photos'], testMode: true })).rejects.toThrow(/no file set named photos/);
  });

  it('fail clearly when a configured set does not exist', async () => {
    ws = await makeWorkspace({ config: { source: { database: 'db.sqlite3', files: { media: { path: 'media' } } } } });
    await expect(backup(ws.engine, { type: 'full' })).rejects.toMatchObject({ code: 'stowage.files.path_missing' });
  });
});
