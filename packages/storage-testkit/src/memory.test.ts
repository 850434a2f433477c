import { StorageErrorCode, bufferBody } from '@stowage/storage';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { describeStorageAdapter } from './conformance.js';
import { MemoryStorage } from './memory.js';

describeStorageAdapter({ name: 'MemoryStorage', create: async () => ({ adapter: new MemoryStorage() }) });
describeStorageAdapter({
  name: "MemoryStorage with archiveClasses ['Archive']",
  create: async () => ({ adapter: new MemoryStorage('archive', { archiveClasses: ['Archive'] }) }),
  completeThaws: (adapter) => (adapter as MemoryStorage).completeThaws(),
});

describe('MemoryStorage archive tiers', () => {
  afterEach(() => vi.useRealTimers());

  it('a thaw lasts its days, then the object is archived again; thawing objects say so', async () => {
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2026-01-01T00:00:00Z') });
    const memory = new MemoryStorage('m', { archiveClasses: ['Archive', 'ColdArchive'] });
    await memory.put('k', bufferBody('bytes'));
    expect(await memory.stat('k')).toMatchObject({ storageClass: 'Standard' });
    await memory.setStorageClass!('k', 'ColdArchive');
    await memory.requestThaw!('k', { days: 3 });
    await expect(memory.get('k')).rejects.toMatchObject({
      code: StorageErrorCode.ObjectArchived,
      context: { state: 'thawing', storageClass: 'ColdArchive' },
    });
    memory.completeThaws();
    expect((await memory.stat('k'))!.archive).toEqual({ state: 'readable', thawExpires: new Date('2026-01-04T00:00:00Z') });
    vi.setSystemTime(new Date('2026-01-04T00:00:00Z'));
    expect((await memory.stat('k'))!.archive).toEqual({ state: 'archived' });
    await expect(memory.setStorageClass!('k', 'GLACIER')).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });
    await expect(memory.requestThaw!('k', { days: 0 })).rejects.toThrow(RangeError);
  });
});
