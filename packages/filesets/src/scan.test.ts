import { execFileSync } from 'node:child_process';
import { chmod, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { FileSetsConfig } from './config.js';
import { FileSetErrorCode } from './errors.js';
import type { FileSetIndex, SetIndex } from './fileset-index.js';
import { scanFileSets } from './scan.js';
import { backup, sha256, tempDir, writeTree } from './test/harness.js';

const paths = (set: { entries: Array<{ path: string }> } | undefined): string[] => (set?.entries ?? []).map((entry) => entry.path);

describe('scanFileSets', () => {
  it('lists a folder set in path order, root first, storing symlinks as links', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), {
      '-first.txt': 'sorts before "."',
      'b/c.txt': 'c',
      'a.txt': 'a',
      link: { symlink: 'b/c.txt' },
      'b/empty': { dir: true },
    });
    const scan = await scanFileSets({ media: { path: 'media' } }, { baseDir: base });
    const media = scan.sets.media;
    expect(paths(media)).toEqual(['.', '-first.txt', 'a.txt', 'b', 'b/c.txt', 'b/empty', 'link']);
    expect(media?.entries.find((entry) => entry.path === 'link')).toMatchObject({ type: 'symlink', linkTarget: 'b/c.txt' });
    expect(media?.entries.find((entry) => entry.path === 'a.txt')).toMatchObject({ type: 'file', size: 1, sha256: undefined });
    expect(scan.warnings).toEqual([]);
  });

  it('never follows symlinks inside a set, so link loops cannot hang it', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), {
      self: { symlink: '.' },
      'sub/up': { symlink: '..' },
      ping: { symlink: 'pong' },
      pong: { symlink: 'ping' },
      me: { symlink: 'me' },
    });
    const scan = await scanFileSets({ media: { path: 'media' } }, { baseDir: base });
    expect(paths(scan.sets.media)).toEqual(['.', 'me', 'ping', 'pong', 'self', 'sub', 'sub/up']);
    expect(scan.warnings).toEqual([]);
  });

  it('leaves out symlinks leading outside their set, with a warning', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), {
      etc: { symlink: '/etc' },
      sibling: { symlink: '../config.ini' },
      here: { symlink: '.' },
      sneaky: { symlink: 'here/..' },
      inside: { symlink: 'sub/../a.txt' },
      'a.txt': 'a',
      sub: { dir: true },
    });
    const scan = await scanFileSets({ media: { path: 'media' } }, { baseDir: base });
    expect(paths(scan.sets.media)).toEqual(['.', 'a.txt', 'here', 'inside', 'sub']);
    expect(scan.warnings.map((warning) => [warning.code, warning.path])).toEqual([
      ['link_escapes', 'etc'],
      ['link_escapes', 'sibling'],
      ['link_escapes', 'sneaky'],
    ]);
  });

  it('filters a log folder with include and exclude globs, pruning excluded folders', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'logs'), {
      'app.log': '',
      'app.log.1': '',
      'worker/worker.log': '',
      'worker/trace.txt': '',
      'archive/2023.log': '',
      'debug/x.log': '',
      '.hidden.log': '',
    });
    const config: FileSetsConfig = { logs: { path: 'logs', include: ['*.log', '*.log.[0-9]'], exclude: ['archive', 'debug/**', '.hidden*'] } };
    const scan = await scanFileSets(config, { baseDir: base });
    expect(paths(scan.sets.logs)).toEqual(['.', 'app.log', 'app.log.1', 'worker', 'worker/worker.log']);
  });

  it('lists the files of a file-list set, following a listed symlink', async () => {
    const base = await tempDir();
    await writeTree(base, { 'greaterwms/settings.py': 'S', 'real.conf': 'R' });
    await symlink('real.conf', join(base, 'supervisord.conf'));
    const scan = await scanFileSets({ config: { files: ['supervisord.conf', 'greaterwms/settings.py'] } }, { baseDir: base });
    expect(scan.sets.config).toMatchObject({
      kind: 'files',
      entries: [
        { path: 'greaterwms/settings.py', type: 'file', size: 1 },
        { path: 'supervisord.conf', type: 'file', size: 1 },
      ],
    });
  });

  it('names the set and path when a configured path is missing or of the wrong kind', async () => {
    const base = await tempDir();
    await writeTree(base, { 'file.txt': 'f', 'folder/x': 'x' });
    await expect(scanFileSets({ media: { path: 'media' } }, { baseDir: base })).rejects.toMatchObject({
      code: FileSetErrorCode.PathMissing,
      context: { set: 'media', path: 'media', location: join(base, 'media') },
    });
    await expect(scanFileSets({ config: { files: ['file.txt', 'missing.ini'] } }, { baseDir: base })).rejects.toMatchObject({
      code: FileSetErrorCode.PathMissing,
      context: { set: 'config', path: 'missing.ini' },
    });
    await expect(scanFileSets({ media: { path: 'file.txt' } }, { baseDir: base })).rejects.toMatchObject({ code: FileSetErrorCode.WrongType });
    await expect(scanFileSets({ config: { files: ['folder'] } }, { baseDir: base })).rejects.toMatchObject({ code: FileSetErrorCode.WrongType });
    await expect(scanFileSets({ database: { path: 'folder' } }, { baseDir: base })).rejects.toMatchObject({ code: FileSetErrorCode.InvalidConfig });
  });

  it('skips sockets and FIFOs with a warning', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), { 'a.txt': 'a' });
    execFileSync('mkfifo', [join(base, 'media/pipe')]);
    const scan = await scanFileSets({ media: { path: 'media' } }, { baseDir: base });
    expect(paths(scan.sets.media)).toEqual(['.', 'a.txt']);
    expect(scan.warnings).toMatchObject([{ code: 'unsupported_type', set: 'media', path: 'pipe' }]);
  });

  it('reports a configured path it cannot read as unreadable', async () => {
    const base = await tempDir();
    await symlink('media', join(base, 'media'));
    await expect(scanFileSets({ media: { path: 'media' } }, { baseDir: base })).rejects.toMatchObject({
      code: FileSetErrorCode.Unreadable,
      context: { set: 'media', path: 'media' },
    });
  });
});

describe('scanning against a parent index', () => {
  async function setUp(): Promise<{ base: string; parent: FileSetIndex }> {
    const base = await tempDir();
    await writeTree(join(base, 'media'), { 'a.txt': { content: 'aaaa', mtimeMs: 1_700_000_000_000 } });
    const { index } = await backup({ media: { path: 'media' } }, base, join(base, 'full.tar'));
    // File times tick coarsely (a few ms): let the next change get a ctime of its own.
    await delay(20);
    return { base, parent: index };
  }
  const fileOf = (set: SetIndex | undefined) => set?.entries.find((entry) => entry.path === 'a.txt');

  it("trusts the parent's hash while size, mode, mtime and ctime are unchanged", async () => {
    const { base, parent } = await setUp();
    const media = parent.sets.media as SetIndex;
    const forged = { ...parent, sets: { media: { ...media, entries: media.entries.map((e) => (e.type === 'file' ? { ...e, sha256: 'f'.repeat(64) } : e)) } } };
    const scan = await scanFileSets({ media: { path: 'media' } }, { baseDir: base, parent: forged as FileSetIndex });
    expect(scan.sets.media?.entries.find((entry) => entry.path === 'a.txt')).toMatchObject({ sha256: 'f'.repeat(64) });
  });

  it('re-hashes when only ctime moved and keeps the hash if the content is the same', async () => {
    const { base, parent } = await setUp();
    await chmod(join(base, 'media/a.txt'), 0o644);
    const scan = await scanFileSets({ media: { path: 'media' } }, { baseDir: base, parent });
    expect(scan.sets.media?.entries.find((entry) => entry.path === 'a.txt')).toMatchObject({ sha256: sha256('aaaa') });
    expect((scan.sets.media!.entries.find((entry) => entry.path === 'a.txt') as { ctimeMs: number }).ctimeMs).not.toBe(
      (fileOf(parent.sets.media) as { ctimeMs: number }).ctimeMs,
    );
  });

  it('sees a same-size rewrite whose mtime was put back', async () => {
    const { base, parent } = await setUp();
    await writeFile(join(base, 'media/a.txt'), 'bbbb');
    await utimes(join(base, 'media/a.txt'), 1_700_000_000, 1_700_000_000);
    const scan = await scanFileSets({ media: { path: 'media' } }, { baseDir: base, parent });
    expect(scan.sets.media?.entries.find((entry) => entry.path === 'a.txt')).toMatchObject({ sha256: undefined, mtimeMs: 1_700_000_000_000 });
  });
});
