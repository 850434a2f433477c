import { describe, expect, it } from 'vitest';
import { ancestorsOf, findOverlap, linkEscapes, unsafePathReason } from './paths.js';

describe('unsafePathReason', () => {
  it('accepts canonical relative paths only', () => {
    for (const path of ['a', 'a/b.txt', '.env', 'a/.b/c', 'ü/文件', '...']) expect(unsafePathReason(path), path).toBeUndefined();
    for (const path of ['', '/a', 'a/../b', '..', 'a/./b', './a', 'a/', 'a//b', 'a\\b', 'C:x', 'a\0b']) {
      expect(unsafePathReason(path), path).toBeDefined();
    }
  });
});

describe('findOverlap', () => {
  it('finds equal paths and paths inside others, not mere prefixes', () => {
    expect(findOverlap(['media', 'media-old', 'logs'])).toBeUndefined();
    expect(findOverlap(['media/thumbs', 'logs', 'media'])).toEqual(['media', 'media/thumbs']);
    expect(findOverlap(['a', 'b', 'a'])).toEqual(['a', 'a']);
    expect(ancestorsOf('a/b/c')).toEqual(['a', 'a/b']);
  });
});

describe('linkEscapes', () => {
  const none = new Map<string, string>();

  it('resolves plain targets lexically', () => {
    expect(linkEscapes('a', 'b/c', none)).toBe(false);
    expect(linkEscapes('sub/a', '../b', none)).toBe(false);
    expect(linkEscapes('sub/a', '../../b', none)).toBe(true);
    expect(linkEscapes('a', '/etc', none)).toBe(true);
    expect(linkEscapes('a', '', none)).toBe(true);
    expect(linkEscapes('a', 'missing/../..', none)).toBe(true);
  });

  it('expands the other links of the set like the kernel', () => {
    const links = new Map([
      ['here', '.'],
      ['deep', 'x/y/z'],
      ['out', 'here/..'],
    ]);
    expect(linkEscapes('out', 'here/..', links)).toBe(true);
    expect(linkEscapes('ok', 'deep/../..', links)).toBe(false);
    expect(linkEscapes('bad', 'deep/../../../..', links)).toBe(true);
    expect(linkEscapes('via', 'out/anything', links)).toBe(true);
  });

  it('does not count a loop as escaping, and terminates', () => {
    const links = new Map([
      ['ping', 'pong'],
      ['pong', 'ping'],
      ['self', 'self/x'],
    ]);
    expect(linkEscapes('ping', 'pong', links)).toBe(false);
    expect(linkEscapes('self', 'self/x', links)).toBe(false);
  });
});
