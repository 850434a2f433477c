import { describe, expect, it, vi } from 'vitest';
import { isStowageError, StowageError } from './index.js';

/** Another copy of this package, as a custom adapter's own install would load next to the bundled CLI. */
async function otherCopy(): Promise<typeof import('./index.js')> {
  vi.resetModules();
  return import('./index.js');
}

describe('StowageError across copies of @stowage/errors', () => {
  it('recognizes errors and subclasses made by another copy, by brand and class name', async () => {
    const copy = await otherCopy();
    expect(copy.StowageError).not.toBe(StowageError);
    class StorageError extends StowageError {}
    class ForeignStorageError extends copy.StowageError {}
    Object.defineProperty(ForeignStorageError, 'name', { value: 'StorageError' });
    const foreign = new ForeignStorageError('stowage.storage.not_found', 'gone');

    expect(foreign).toBeInstanceOf(StowageError);
    expect(foreign).toBeInstanceOf(StorageError);
    expect(isStowageError(foreign, 'stowage.storage.not_found')).toBe(true);
    expect(isStowageError(foreign, 'stowage.storage.transient')).toBe(false);
  });

  it('still tells classes apart, and refuses look-alikes without the brand', async () => {
    const copy = await otherCopy();
    class StorageError extends StowageError {}
    class CryptoError extends copy.StowageError {}
    expect(new CryptoError('stowage.crypto.bad_key', 'no')).not.toBeInstanceOf(StorageError);
    expect(new StowageError('stowage.x', 'y')).not.toBeInstanceOf(StorageError);

    const lookAlike = Object.assign(new Error('fake'), { code: 'stowage.storage.not_found', name: 'StowageError' });
    expect(lookAlike).not.toBeInstanceOf(StowageError);
    expect(isStowageError(lookAlike)).toBe(false);
    expect(isStowageError(null)).toBe(false);
    expect(isStowageError('stowage.storage.not_found')).toBe(false);
  });
});
