import { describe, expect, it } from 'vitest';
import { FileSetErrorCode } from './errors.js';
import {
  diffIndexes,
  INDEX_FORMAT,
  INDEX_VERSION,
  parseFileSetIndex,
  serializeFileSetIndex,
  summarizeSet,
  type FileEntry,
  type FileSetEntry,
  type FileSetIndex,
  type SetIndex,
} from './fileset-index.js';

const root: FileSetEntry = { path: '.', type: 'dir', mode: 0o755, mtimeMs: 1 };
const file = (path: string, sha = 'a', size = 1): FileEntry => ({ path, type: 'file', mode: 0o644, mtimeMs: 1, size, sha256: sha.repeat(64), ctimeMs: 1 });

function index(sets: Record<string, SetIndex>): FileSetIndex {
  return { format: INDEX_FORMAT, version: INDEX_VERSION, id: 'id', parentId: null, createdAt: '2024-01-01T00:00:00.000Z', sets };
}

describe('diffIndexes', () => {
  const before = index({
    media: { kind: 'folder', path: 'media', entries: [root, file('a'), file('b'), { path: 'l', type: 'symlink', mtimeMs: 1, linkTarget: 'a' }] },
    logs: { kind: 'folder', path: 'logs', entries: [root, file('x.log')] },
    old: { kind: 'files', entries: [file('old.ini')] },
  });

  it('lists added, changed and deleted entries per set', () => {
    const after = index({
      media: { kind: 'folder', path: 'media', entries: [root, file('a', 'b'), file('c'), { path: 'l', type: 'symlink', mtimeMs: 1, linkTarget: 'c' }] },
      logs: { kind: 'folder', path: 'logs', entries: [root, file('x.log')] },
      config: { kind: 'files', entries: [file('app.ini')] },
    });
    const diff = diffIndexes(before, after);
    expect(diff.added).toEqual([
      { set: 'config', path: 'app.ini', type: 'file' },
      { set: 'media', path: 'c', type: 'file' },
    ]);
    expect(diff.changed).toEqual([
      { set: 'media', path: 'a', type: 'file' },
      { set: 'media', path: 'l', type: 'symlink' },
    ]);
    expect(diff.deleted).toEqual([
      { set: 'media', path: 'b', type: 'file' },
      { set: 'old', path: 'old.ini', type: 'file' },
    ]);
  });

  it('treats a set whose folder moved as all new', () => {
    const after = index({ ...before.sets, logs: { kind: 'folder', path: 'var/logs', entries: [root, file('x.log')] } });
    const diff = diffIndexes(before, after);
    expect(diff.deleted.map((item) => `${item.set}:${item.path}`)).toEqual(['logs:.', 'logs:x.log']);
    expect(diff.added.map((item) => `${item.set}:${item.path}`)).toEqual(['logs:.', 'logs:x.log']);
    expect(diff.changed).toEqual([]);
  });

  it('counts everything as added without a parent, and summarizes a set', () => {
    expect(diffIndexes(undefined, before).added).toHaveLength(7);
    expect(summarizeSet(before.sets.media as SetIndex)).toEqual({ files: 2, dirs: 1, symlinks: 1, bytes: 2 });
  });
});

describe('parseFileSetIndex', () => {
  it('round-trips what serializeFileSetIndex wrote', () => {
    const value = index({ media: { kind: 'folder', path: 'media', entries: [root, file('a')] } });
    const { bytes, sha256 } = serializeFileSetIndex(value);
    expect(parseFileSetIndex(bytes)).toEqual(value);
    expect(sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects what is not a version-1 index', () => {
    const good = index({ media: { kind: 'folder', path: 'media', entries: [root] } });
    for (const bad of ['{', '[]', JSON.stringify({ ...good, version: 2 }), JSON.stringify({ ...good, sets: { Media: good.sets.media } })]) {
      expect(() => parseFileSetIndex(bad), bad).toThrow(expect.objectContaining({ code: FileSetErrorCode.Corrupt }));
    }
  });

  it('rejects duplicate paths, a missing root and a root that is not a folder', () => {
    const cases = [[root, file('a'), file('a')], [file('a')], [{ ...file('.') }]];
    for (const entries of cases) {
      expect(() => parseFileSetIndex(JSON.stringify(index({ media: { kind: 'folder', path: 'media', entries } })))).toThrow(
        expect.objectContaining({ code: FileSetErrorCode.UnsafePath }),
      );
    }
  });
});
