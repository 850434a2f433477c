import { describe, expect, it } from 'vitest';
import { StorageError, StorageErrorCode, isAborted, isObjectNotFound, isStorageError, isTransient } from './errors.js';
import { withRetry } from './retry.js';
import type { StorageAdapter } from './contract.js';

/** An error as a custom adapter built against its own copy of @stowage/storage throws it: another class, same code. */
class ForeignStorageError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

describe('error guards check the code, not the class', () => {
  it('classify a foreign error object that carries a storage code', () => {
    const foreign = new ForeignStorageError(StorageErrorCode.Transient, 'socket reset');
    expect(foreign).not.toBeInstanceOf(StorageError);
    expect(isTransient(foreign)).toBe(true);
    expect(isStorageError(foreign)).toBe(true);
    expect(isObjectNotFound({ code: StorageErrorCode.ObjectNotFound })).toBe(true);
    expect(isAborted(foreign)).toBe(false);
  });

  it('do not mistake other codes, or non-objects, for storage errors', () => {
    expect(isStorageError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(false);
    expect(isStorageError({ code: 'stowage.core.config_invalid' })).toBe(false);
    for (const value of [undefined, null, 'stowage.storage.transient', 42]) {
      expect(isStorageError(value)).toBe(false);
      expect(isTransient(value)).toBe(false);
    }
  });

  it('the retry wrapper retries a foreign transient error', async () => {
    let calls = 0;
    const flaky = {
      stat: async () => {
        if (++calls < 3) throw new ForeignStorageError(StorageErrorCode.Transient, 'try again');
        return undefined;
      },
    } as unknown as StorageAdapter;
    const retries: number[] = [];
    await withRetry(flaky, { baseDelayMs: 1, onRetry: (event) => retries.push(event.attempt) }).stat('k');
    expect([calls, retries]).toEqual([3, [1, 2]]);
  });
});
