import { StorageError, StorageErrorCode } from './errors.js';

/**
 * Throws `invalid_key` unless `key` is a relative `/`-separated path without empty, `.` or `..`
 * segments, backslashes, NUL or control characters. Adapters call it on every key they are given.
 */
export function assertValidKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) {
    throw new StorageError(StorageErrorCode.InvalidKey, `invalid storage key '${key}': ${problem}`, {
      context: { key },
    });
  }
}

function keyProblem(key: string): string | undefined {
  if (key.length === 0) return 'it is empty';
  if (key.length > 1024) return 'it is longer than 1024 characters';
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects
  if (/[\u0000-\u001f\\]/.test(key)) return 'it contains a control character or a backslash';
  if (key.startsWith('/')) return 'it starts with /';
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') return `it has an empty, '.' or '..' segment`;
  }
  return undefined;
}

/** Like assertValidKey for a listing prefix, which may be empty or end with `/`. */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  assertValidKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}
