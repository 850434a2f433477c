import { bufferBody } from '@stowage/storage';
import { describe, expect, it } from 'vitest';
import { forwarding } from './forwarding.js';
import { MemoryStorage } from './memory.js';

describe('forwarding', () => {
  it('replaces only the operations given and forwards the rest, prototype methods included', async () => {
    const inner = new MemoryStorage('inner', { archiveClasses: ['Archive'] });
    const puts: string[] = [];
    const adapter = forwarding(inner, { put: (key, body, options) => (puts.push(key), inner.put(key, body, options)) });
    await adapter.put('a', bufferBody('bytes'));
    expect(puts).toEqual(['a']);
    expect((await adapter.stat('a'))?.size).toBe(5);
    expect(Buffer.concat(await (await adapter.get('a')).toArray()).toString()).toBe('bytes');
    expect((await adapter.setStorageClass?.('a', 'Archive'))?.storageClass).toBe('Archive');
    await adapter.delete(['a']);
    expect(await inner.stat('a')).toBeUndefined();
  });
});
