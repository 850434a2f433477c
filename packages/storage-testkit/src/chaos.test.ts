import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { StorageErrorCode, bufferBody, withRetry } from '@stowage/storage';
import { withChaos } from './chaos.js';
import { describeStorageAdapter } from './conformance.js';
import { MemoryStorage } from './memory.js';

async function storedWith(bytes: Buffer | string) {
  const memory = new MemoryStorage();
  await memory.put('object', bufferBody(bytes));
  return memory;
}

/** The bytes a stream delivered before it ended or failed, and how it failed. */
async function drain(stream: Readable): Promise<{ bytes: Buffer; error?: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return { bytes: Buffer.concat(chunks) };
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
}

describe('withChaos', () => {
  it('passes calls through and counts them by operation', async () => {
    const chaos = withChaos(new MemoryStorage(), {});
    await chaos.put('a', bufferBody('a'));
    await chaos.stat('a');
    await chaos.stat('b');
    await buffer(await chaos.get('a'));
    const listing = chaos.list('');
    expect(chaos.calls.list).toBe(0);
    for await (const _ of listing);
    await chaos.delete(['a']);
    expect(chaos.calls).toEqual({ put: 1, get: 1, stat: 2, list: 1, delete: 1, setStorageClass: 0, requestThaw: 0 });
  });

  it('forwards the archive operations, with their faults, only when the inner adapter has them', async () => {
    expect(withChaos(new MemoryStorage(), {}).setStorageClass).toBeUndefined();
    const memory = new MemoryStorage('m', { archiveClasses: ['Archive'] });
    await memory.put('a', bufferBody('a'));
    const chaos = withChaos(memory, { setStorageClass: { fail: 1 }, requestThaw: { fail: 1, error: StorageErrorCode.PermissionDenied } });
    await expect(chaos.setStorageClass!('a', 'Archive')).rejects.toMatchObject({ code: StorageErrorCode.Transient });
    expect((await chaos.setStorageClass!('a', 'Archive')).archive).toEqual({ state: 'archived' });
    await expect(chaos.requestThaw!('a', { days: 1 })).rejects.toMatchObject({ code: StorageErrorCode.PermissionDenied });
    expect((await chaos.requestThaw!('a', { days: 1 })).archive?.state).toBe('thawing');
    expect(chaos.calls).toMatchObject({ setStorageClass: 2, requestThaw: 2 });
  });

  it('fails the chosen call of an operation with transient by default', async () => {
    const chaos = withChaos(await storedWith('x'), { stat: { fail: 2 } });
    await expect(chaos.stat('object')).resolves.toBeDefined();
    await expect(chaos.stat('object')).rejects.toMatchObject({ code: StorageErrorCode.Transient, context: { key: 'object' } });
    await expect(chaos.stat('object')).resolves.toBeDefined();
    expect(chaos.calls.stat).toBe(3);
  });

  it('fails several chosen calls, or every call, with a chosen code or error', async () => {
    const boom = new Error('boom');
    const chaos = withChaos(await storedWith('x'), {
      get: { fail: [1, 3], error: StorageErrorCode.PermissionDenied },
      delete: { fail: 'always', error: () => boom },
    });
    await expect(chaos.get('object')).rejects.toMatchObject({ code: StorageErrorCode.PermissionDenied });
    await expect(chaos.get('object')).resolves.toBeDefined();
    await expect(chaos.get('object')).rejects.toMatchObject({ code: StorageErrorCode.PermissionDenied });
    await expect(chaos.delete(['object'])).rejects.toBe(boom);
    await expect(chaos.delete(['object'])).rejects.toBe(boom);
  });

  it('fails a listing when its iteration starts', async () => {
    const chaos = withChaos(await storedWith('x'), { list: { fail: 1 } });
    const keys = async () => {
      const seen: string[] = [];
      for await (const info of chaos.list('')) seen.push(info.key);
      return seen;
    };
    await expect(keys()).rejects.toMatchObject({ code: StorageErrorCode.Transient });
    await expect(keys()).resolves.toEqual(['object']);
  });

  it('acts as a full disk: every put fails with no_space and stores nothing', async () => {
    const memory = new MemoryStorage();
    const chaos = withChaos(memory, { diskFull: true });
    await expect(chaos.put('a', bufferBody('a'))).rejects.toMatchObject({ code: StorageErrorCode.NoSpace });
    await expect(chaos.put('b', bufferBody('b'))).rejects.toMatchObject({ code: StorageErrorCode.NoSpace });
    expect(await memory.stat('a')).toBeUndefined();
    expect(chaos.calls.put).toBe(2);
  });

  it('delays every call', async () => {
    const chaos = withChaos(new MemoryStorage(), { delayMs: 30 });
    const started = performance.now();
    await chaos.stat('a');
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });

  it('cuts get bodies short silently, or with an error', async () => {
    const bytes = randomBytes(200_000);
    const memory = await storedWith(bytes);
    const silent = await drain(await withChaos(memory, { get: { truncate: { after: 100_000 } } }).get('object'));
    expect(silent).toEqual({ bytes: bytes.subarray(0, 100_000) });

    const failing = withChaos(memory, { get: { truncate: { after: 70_000, error: StorageErrorCode.Transient } } });
    const reset = await drain(await failing.get('object'));
    expect(reset.bytes).toEqual(bytes.subarray(0, 70_000));
    expect(reset.error).toMatchObject({ code: StorageErrorCode.Transient });

    const short = await drain(await withChaos(await storedWith('tiny'), { get: { truncate: { after: 10 } } }).get('object'));
    expect(short).toEqual({ bytes: Buffer.from('tiny') });
  });

  it('inverts one byte of get bodies, counting from the first byte returned', async () => {
    const bytes = randomBytes(200_000);
    const chaos = withChaos(await storedWith(bytes), { get: { corruptAt: 65_540 } });
    const differences = (read: Buffer, original: Buffer) => [...read.keys()].filter((i) => read[i] !== original[i]).map((i) => [i, read[i]! ^ original[i]!]);

    expect(differences(await buffer(await chaos.get('object')), bytes)).toEqual([[65_540, 0xff]]);
    const ranged = await buffer(await chaos.get('object', { range: { offset: 1000, length: 100_000 } }));
    expect(differences(ranged, bytes.subarray(1000, 101_000))).toEqual([[65_540, 0xff]]);
  });

  it('composes with the retry wrapper, which sees the injected transient errors', async () => {
    const memory = new MemoryStorage();
    const chaos = withChaos(memory, { put: { fail: [1, 2] } });
    await withRetry(chaos, { random: () => 0 }).put('a', bufferBody('a'));
    expect(chaos.calls.put).toBe(3);
    expect(await memory.stat('a')).toMatchObject({ size: 1 });
  });
});

describeStorageAdapter({
  name: 'withChaos(MemoryStorage, { delayMs: 1 })',
  create: async () => ({ adapter: withChaos(new MemoryStorage(), { delayMs: 1 }) }),
});
