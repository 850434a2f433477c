import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, readdir, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileSetsConfig } from './config.js';
import { FileSetErrorCode } from './errors.js';
import { diffIndexes, INDEX_MEMBER, parseFileSetIndex, serializeFileSetIndex } from './fileset-index.js';
import { readFileSetIndex, restoreFileSets } from './restore.js';
import { backup, craftArchive, fromFile, member, snapshotTree, tempDir, writeTree } from './test/harness.js';

const T0 = Date.UTC(2024, 0, 1, 2, 0, 0, 123);

const config: FileSetsConfig = {
  media: { path: 'media' },
  config: { files: ['greaterwms/settings.py', 'supervisord.conf'] },
  logs: { path: 'logs', include: ['*.log'], exclude: ['old/**'] },
};

/** A GreaterWMS-like app folder: media with nested folders, odd names and links; config; logs. */
async function makeApp(): Promise<string> {
  const app = await tempDir('app');
  await writeTree(join(app, 'media'), {
    'photos/2024/a.jpg': { content: randomBytes(3 * 1024 * 1024 + 17), mode: 0o640, mtimeMs: T0 + 1 },
    'photos/2024/b.jpg': { content: 'b', mtimeMs: T0 + 999 },
    'photos/2024': { dir: true, mode: 0o750, mtimeMs: T0 + 2 },
    'readonly/locked.txt': { content: 'locked', mode: 0o444, mtimeMs: T0 + 3 },
    readonly: { dir: true, mode: 0o555, mtimeMs: T0 + 4 },
    'empty-dir': { dir: true, mtimeMs: T0 + 5 },
    'empty.bin': { content: '', mtimeMs: T0 + 6 },
    'script.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755, mtimeMs: T0 + 7 },
    'ünïcödé 文件.txt': { content: 'unicode', mtimeMs: T0 + 8 },
    [`${'deep/'.repeat(30)}long-name-${'x'.repeat(120)}.txt`]: { content: 'long', mtimeMs: T0 + 9 },
    'latest.jpg': { symlink: 'photos/2024/a.jpg' },
    'photos/up': { symlink: '..' },
    dangling: { symlink: 'does-not-exist' },
  });
  await writeTree(app, {
    'greaterwms/settings.py': { content: 'DEBUG = False\n', mode: 0o600, mtimeMs: T0 + 10 },
    'supervisord.conf': { content: '[program:greaterwms]\n', mtimeMs: T0 + 11 },
  });
  await writeTree(join(app, 'logs'), {
    'app.log': { content: 'line 1\n', mtimeMs: T0 + 12 },
    'worker/worker.log': { content: 'w\n', mtimeMs: T0 + 13 },
    'worker/trace.txt': 'not a log',
    'old/2023.log': 'excluded',
  });
  return app;
}

/** The tree a restore must reproduce for `config`: media and logs whole (logs filtered), config's two files. */
type Tree = Record<string, string>;
type AppTree = { media: Tree; logs: Tree; config: Tree };

async function expectedTree(app: string): Promise<AppTree> {
  const logs = await snapshotTree(join(app, 'logs'));
  for (const path of Object.keys(logs)) if (path.startsWith('old') || path.endsWith('.txt')) delete logs[path];
  const files = await snapshotTree(app);
  return {
    media: await snapshotTree(join(app, 'media')),
    logs,
    config: { 'greaterwms/settings.py': files['greaterwms/settings.py'] as string, 'supervisord.conf': files['supervisord.conf'] as string },
  };
}

async function restoredTree(target: string): Promise<AppTree> {
  const files = await snapshotTree(target);
  return {
    media: await snapshotTree(join(target, 'media')),
    logs: await snapshotTree(join(target, 'logs')),
    config: { 'greaterwms/settings.py': files['greaterwms/settings.py'] as string, 'supervisord.conf': files['supervisord.conf'] as string },
  };
}

describe('full archive round trip', () => {
  it('restores contents, relative paths, modes, millisecond mtimes, empty folders and symlinks', async () => {
    const app = await makeApp();
    const expected = await expectedTree(app);
    const archive = join(await tempDir('out'), 'full.files.tar');
    const result = await backup(config, app, archive);
    expect(result.warnings).toEqual([]);
    expect(result.diff.deleted).toBe(0);
    expect(result.stored.files).toBe(
      Object.values(expected)
        .flatMap((set) => Object.values(set))
        .filter((e) => e.startsWith('file')).length,
    );

    const target = join(await tempDir('restore'), 'app');
    const restored = await restoreFileSets({ archives: [fromFile(archive)], targetDir: target });
    expect(await restoredTree(target)).toEqual(expected);
    expect(restored.movedAside).toBeUndefined();
    expect(restored.sets.map((set) => [set.name, set.kind])).toEqual([
      ['config', 'files'],
      ['logs', 'folder'],
      ['media', 'folder'],
    ]);
    expect((await readdir(target)).sort()).toEqual(['greaterwms', 'logs', 'media', 'supervisord.conf']);
  });

  it('is a POSIX tar that GNU tar lists and extracts to the same tree', async () => {
    const app = await makeApp();
    const expected = await expectedTree(app);
    const archive = join(await tempDir('out'), 'full.files.tar');
    await backup(config, app, archive);

    const listed = execFileSync('tar', ['-tf', archive], { encoding: 'utf8' }).trim().split('\n');
    expect(listed).toContain('media/');
    expect(listed).toContain('media/latest.jpg');
    expect(listed).toContain('config/greaterwms/settings.py');
    expect(listed).toContain(`media/${'deep/'.repeat(30)}long-name-${'x'.repeat(120)}.txt`);
    expect(listed).toContain('media/ünïcödé 文件.txt');
    expect(listed.at(-1)).toBe(INDEX_MEMBER);

    const out = await tempDir('gnu');
    execFileSync('tar', ['-xpf', archive, '-C', out]);
    expect(await snapshotTree(join(out, 'media'))).toEqual(expected.media);
    expect(await snapshotTree(join(out, 'logs'))).toEqual(expected.logs);
    expect(await readFile(join(out, 'config/greaterwms/settings.py'), 'utf8')).toBe('DEBUG = False\n');
    expect(parseFileSetIndex(await readFile(join(out, INDEX_MEMBER))).sets.media?.kind).toBe('folder');
  });

  it('gives back the index it wrote, by value and by SHA-256', async () => {
    const app = await makeApp();
    const archive = join(await tempDir('out'), 'full.files.tar');
    const result = await backup(config, app, archive);
    const fromArchive = await readFileSetIndex(await fromFile(archive)());
    expect(fromArchive.index).toEqual(result.index);
    expect(fromArchive.sha256).toBe(result.indexSha256);
    expect(serializeFileSetIndex(parseFileSetIndex(result.indexBytes)).sha256).toBe(result.indexSha256);
  });
});

describe('incremental chain', () => {
  it('stores only what changed and restores each point in time exactly', async () => {
    const app = await makeApp();
    const out = await tempDir('out');
    const media = join(app, 'media');

    const full = await backup(config, app, join(out, '0.tar'));
    const tree0 = await expectedTree(app);

    await writeFile(join(media, 'photos/2024/new.jpg'), 'new photo');
    await writeFile(join(media, 'photos/2024/b.jpg'), 'B, rewritten');
    await chmod(join(media, 'script.sh'), 0o700);
    await utimes(join(media, 'empty.bin'), (T0 + 60_000) / 1000, (T0 + 60_000) / 1000);
    await rm(join(media, 'deep'), { recursive: true });
    await rm(join(media, 'dangling'));
    await mkdir(join(media, 'dangling'));
    await writeFile(join(media, 'dangling/now-a-folder.txt'), 'type change');
    await rm(join(media, 'latest.jpg'));
    await writeTree(media, { 'latest.jpg': { symlink: 'photos/2024/new.jpg' } });
    await writeFile(join(app, 'supervisord.conf'), '[program:greaterwms]\nautostart=true\n');
    await writeFile(join(app, 'logs/app.log'), 'line 1\nline 2\n');
    const inc1 = await backup(config, app, join(out, '1.tar'), full.index);
    const tree1 = await expectedTree(app);

    const members = execFileSync('tar', ['-tf', join(out, '1.tar')], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(members).toContain('media/photos/2024/new.jpg');
    expect(members).toContain('media/photos/2024/b.jpg');
    expect(members).toContain('media/script.sh');
    expect(members).toContain('media/empty.bin');
    expect(members).toContain('media/latest.jpg');
    expect(members).toContain('config/supervisord.conf');
    expect(members).not.toContain('media/photos/2024/a.jpg');
    expect(members).not.toContain('config/greaterwms/settings.py');
    expect(inc1.stored.bytes).toBeLessThan(1024);
    const diff = diffIndexes(full.index, inc1.index);
    expect(diff.deleted.map((item) => item.path)).toContain(`${'deep/'.repeat(30)}long-name-${'x'.repeat(120)}.txt`);
    expect(diff.added.map((item) => item.path)).toEqual(expect.arrayContaining(['photos/2024/new.jpg', 'dangling/now-a-folder.txt']));
    expect(diff.changed.map((item) => `${item.set}:${item.path}`)).toEqual(
      expect.arrayContaining([
        'media:photos/2024/b.jpg',
        'media:script.sh',
        'media:empty.bin',
        'media:dangling',
        'media:latest.jpg',
        'config:supervisord.conf',
        'logs:app.log',
      ]),
    );
    expect(inc1.diff).toEqual({ added: diff.added.length, changed: diff.changed.length, deleted: diff.deleted.length });

    await rm(join(media, 'photos/2024/new.jpg'));
    await truncate(join(app, 'greaterwms/settings.py'), 5);
    const inc2 = await backup(config, app, join(out, '2.tar'), inc1.index);
    const tree2 = await expectedTree(app);
    expect(inc2.index.parentId).toBe(inc1.index.id);

    const chain = [fromFile(join(out, '0.tar')), fromFile(join(out, '1.tar')), fromFile(join(out, '2.tar'))];
    for (const [points, tree] of [
      [1, tree0],
      [2, tree1],
      [3, tree2],
    ] as const) {
      const target = await tempDir('restore');
      await restoreFileSets({ archives: chain.slice(0, points), targetDir: target });
      expect(await restoredTree(target)).toEqual(tree);
    }
  });

  it('also restores with GNU tar alone: extract in order, then delete what the last index lacks', async () => {
    const app = await makeApp();
    const out = await tempDir('out');
    const full = await backup(config, app, join(out, '0.tar'));
    await rm(join(app, 'media/photos/2024/b.jpg'));
    await writeFile(join(app, 'media/photos/2024/c.jpg'), 'c');
    await backup(config, app, join(out, '1.tar'), full.index);
    const expected = await expectedTree(app);

    const target = await tempDir('gnu');
    execFileSync('tar', ['-xpf', join(out, '0.tar'), '-C', target]);
    execFileSync('tar', ['-xpf', join(out, '1.tar'), '-C', target]);
    const index = parseFileSetIndex(await readFile(join(target, INDEX_MEMBER)));
    const kept = new Set((index.sets.media?.entries ?? []).map((entry) => entry.path));
    const present = Object.keys(await snapshotTree(join(target, 'media')));
    for (const path of present.filter((path) => !kept.has(path))) await rm(join(target, 'media', path), { recursive: true, force: true });
    const restored = await snapshotTree(join(target, 'media'));
    // GNU tar sets a folder's mtime when extracting it, before the deletions touch it; compare the rest.
    const withoutFolderTimes = (tree: Tree) =>
      Object.fromEntries(Object.entries(tree).map(([path, value]) => [path, value.startsWith('dir') ? value.replace(/@\d+$/, '') : value]));
    expect(withoutFolderTimes(restored)).toEqual(withoutFolderTimes(expected.media));
  });

  it('follows config changes: a set moved to another folder is stored whole, a dropped set is gone', async () => {
    const base = await tempDir('app');
    await writeTree(base, { 'media/a.jpg': 'a', 'uploads/media/b.jpg': 'b', 'logs/x.log': 'x' });
    const out = await tempDir('out');
    const full = await backup({ media: { path: 'media' }, logs: { path: 'logs' } }, base, join(out, '0.tar'));
    const inc = await backup({ media: { path: 'uploads/media' } }, base, join(out, '1.tar'), full.index);
    expect(inc.diff).toMatchObject({ added: 2 });
    expect(inc.stored.files).toBe(1);

    const target = await tempDir('restore');
    const result = await restoreFileSets({ archives: [fromFile(join(out, '0.tar')), fromFile(join(out, '1.tar'))], targetDir: target });
    expect(result.sets.map((set) => [set.name, set.location])).toEqual([['media', join(target, 'uploads/media')]]);
    expect(await snapshotTree(join(target, 'uploads/media'))).toEqual(await snapshotTree(join(base, 'uploads/media')));
    expect(await readdir(target)).toEqual(['uploads']);
  });

  it('restores only the named sets and leaves the rest of the target alone', async () => {
    const app = await makeApp();
    const archive = join(await tempDir('out'), 'full.tar');
    await backup(config, app, archive);
    const expected = await expectedTree(app);
    const target = await tempDir('restore');
    await writeTree(target, { 'supervisord.conf': 'live config', 'logs/live.log': 'live log' });

    const result = await restoreFileSets({ archives: [fromFile(archive)], targetDir: target, only: ['media'] });
    expect(result.sets.map((set) => set.name)).toEqual(['media']);
    expect(await snapshotTree(join(target, 'media'))).toEqual(expected.media);
    expect(await readFile(join(target, 'supervisord.conf'), 'utf8')).toBe('live config');
    expect(await readFile(join(target, 'logs/live.log'), 'utf8')).toBe('live log');

    await expect(restoreFileSets({ archives: [fromFile(archive)], targetDir: target, only: ['uploads'] })).rejects.toMatchObject({
      code: FileSetErrorCode.UnknownSet,
      context: { set: 'uploads', available: ['config', 'logs', 'media'] },
    });
  });

  it('replaces what the target holds with the exact tree and moves the old version aside', async () => {
    const app = await makeApp();
    const archive = join(await tempDir('out'), 'full.tar');
    await backup(config, app, archive);
    const expected = await expectedTree(app);
    const target = await tempDir('restore');
    await writeTree(target, {
      'media/stray.jpg': 'not in the backup',
      'media/photos/2024/b.jpg': 'damaged',
      'supervisord.conf': 'damaged',
      'db.sqlite3': 'the database is not a file set',
    });

    const result = await restoreFileSets({ archives: [fromFile(archive)], targetDir: target });
    expect(await restoredTree(target)).toEqual(expected);
    expect(result.movedAside).toMatch(/\.stowage-pre-restore-\d{14}-/);
    const aside = result.movedAside as string;
    expect(await readFile(join(aside, 'media/stray.jpg'), 'utf8')).toBe('not in the backup');
    expect(await readFile(join(aside, 'supervisord.conf'), 'utf8')).toBe('damaged');
    expect(await readFile(join(target, 'db.sqlite3'), 'utf8')).toBe('the database is not a file set');
    expect((await readdir(target)).filter((name) => name.startsWith('.stowage-restore-'))).toEqual([]);
  });

  it('refuses a chain that does not start with a full archive or skips a link', async () => {
    const app = await makeApp();
    const out = await tempDir('out');
    const full = await backup(config, app, join(out, '0.tar'));
    await writeFile(join(app, 'media/one.txt'), '1');
    const inc1 = await backup(config, app, join(out, '1.tar'), full.index);
    await writeFile(join(app, 'media/two.txt'), '2');
    await backup(config, app, join(out, '2.tar'), inc1.index);
    const target = await tempDir('restore');

    await expect(restoreFileSets({ archives: [fromFile(join(out, '1.tar'))], targetDir: target })).rejects.toMatchObject({
      code: FileSetErrorCode.ChainBroken,
    });
    await expect(restoreFileSets({ archives: [fromFile(join(out, '0.tar')), fromFile(join(out, '2.tar'))], targetDir: target })).rejects.toMatchObject({
      code: FileSetErrorCode.ChainBroken,
    });
    await expect(restoreFileSets({ archives: [], targetDir: target })).rejects.toMatchObject({ code: FileSetErrorCode.ChainBroken });
    expect(await readdir(target)).toEqual([]);
  });
});

describe('damaged archives', () => {
  it('rejects content that does not match the index, and truncated archives', async () => {
    const app = await makeApp();
    const out = await tempDir('out');
    const archive = join(out, 'full.tar');
    await backup(config, app, archive);
    const bytes = await readFile(archive);

    const flipped = Buffer.from(bytes);
    const at = flipped.indexOf('DEBUG = False');
    flipped[at] = 'X'.charCodeAt(0);
    await writeFile(join(out, 'flipped.tar'), flipped);
    await writeFile(join(out, 'truncated.tar'), bytes.subarray(0, bytes.length - 4096));
    await writeFile(join(out, 'no-index.tar'), craftArchive([{ header: member('media/', 'directory') }]));

    for (const name of ['flipped.tar', 'truncated.tar', 'no-index.tar']) {
      const target = await tempDir('restore');
      await expect(restoreFileSets({ archives: [fromFile(join(out, name))], targetDir: target }), name).rejects.toMatchObject({
        code: FileSetErrorCode.Corrupt,
      });
      expect(await readdir(target)).toEqual([]);
    }
  });
});
