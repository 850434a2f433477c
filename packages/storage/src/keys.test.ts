import { describe, expect, it } from 'vitest';
import { StorageErrorCode } from './errors.js';
import { assertValidKey, assertValidPrefix } from './keys.js';

const invalidKey = (details: object = {}) => expect.objectContaining({ name: 'StorageError', code: StorageErrorCode.InvalidKey, ...details });

describe('assertValidKey', () => {
  it.each(['a', 'full/full_backup_20240101_020000.sqlite3', 'a/b/c/d.txt', '.hidden', 'a..b/c.', 'ünïcode/名前 with spaces', 'x'.repeat(1024)])(
    'accepts %j',
    (key) => {
      expect(() => assertValidKey(key)).not.toThrow();
    },
  );

  it.each([
    ['', 'empty'],
    ['x'.repeat(1025), 'longer than 1024'],
    ['/etc/passwd', 'starts with /'],
    ['a//b', 'segment'],
    ['a/', 'segment'],
    ['./a', 'segment'],
    ['a/../b', 'segment'],
    ['..', 'segment'],
    ['a\\b', 'backslash'],
    ['a\u0000b', 'control character'],
    ['a\nb', 'control character'],
  ])('rejects %j (%s)', (key, why) => {
    expect(() => assertValidKey(key)).toThrow(invalidKey({ message: expect.stringContaining(why), context: { key } }));
  });
});

describe('assertValidPrefix', () => {
  it.each(['', 'full/', 'full/full_backup_2024', 'a/b/'])('accepts %j', (prefix) => {
    expect(() => assertValidPrefix(prefix)).not.toThrow();
  });

  it.each(['/', '../', 'a//', '/full/', 'a/./'])('rejects %j', (prefix) => {
    expect(() => assertValidPrefix(prefix)).toThrow(invalidKey());
  });
});
