import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { bufferBody } from './body.js';
import type { ObjectInfo, StorageAdapter } from './contract.js';
import { withConcurrencyLimit } from './limit.js';

const info = (key: string): ObjectInfo => ({ key, size: 0, modified: new Date(0), checksums: {} });

/** An adapter whose operations take a few ms and which records how many ran at once. */
function busyAdapter() {
  const state = { inFlight: 0, maxInFlight: 0, started: [] as string[], streams: [] as PassThrough[] };
  const busy = async <T>(operation: string, value: T): Promise<T> => {
    state.started.push(operation);
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    await sleep(2);
    state.inFlight--;
    return value;
  };
  const adapter: StorageAdapter = {
    description: 'busy',
    capabilities: { serverChecksums: [], conditionalPut: false, rangeReads: false, maxParallelism: 3 },
    put: (key) => busy('put', info(key)),
    stat: (key) => busy('stat', info(key)),
    delete: () => busy('delete', undefined),
    async get() {
      const stream = new PassThrough();
      state.streams.push(stream);
      return busy('get', stream);
    },
    async *list() {
      yield await busy('list', info('a'));
    },
    setStorageClass: (key) => busy('setStorageClass', info(key)),
    requestThaw: (key) => busy('requestThaw', info(key)),
  };
  return { adapter, state };
}

/** Lets pending promise callbacks and timers run. */
const settle = () => sleep(10);

describe('withConcurrencyLimit', () => {
  it('never has more than the limit of operations in flight', async () => {
    const { adapter, state } = busyAdapter();
    const limited = withConcurrencyLimit(adapter, 3);
    await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        i % 3 === 0 ? limited.put(`k${i}`, bufferBody('x')) : i % 3 === 1 ? limited.stat(`k${i}`) : limited.delete([`k${i}`]),
      ),
    );
    expect(state.started).toHaveLength(24);
    expect(state.maxInFlight).toBe(3);
  });

  it('limits the archive operations too', async () => {
    const { adapter, state } = busyAdapter();
    const limited = withConcurrencyLimit(adapter, 1);
    await Promise.all([limited.setStorageClass!('a', 'Archive'), limited.requestThaw!('a', { days: 1 }), limited.stat('a')]);
    expect(state.maxInFlight).toBe(1);
    expect(state.started.sort()).toEqual(['requestThaw', 'setStorageClass', 'stat']);
  });

  it('holds the slot of a get until its stream has ended', async () => {
    const { adapter, state } = busyAdapter();
    const limited = withConcurrencyLimit(adapter, 1);
    const stream: Readable = await limited.get('k');
    const stat = limited.stat('other');
    await settle();
    expect(state.started).toEqual(['get']);

    stream.resume();
    state.streams[0]?.end('bytes');
    await expect(stat).resolves.toEqual(info('other'));
    expect(state.started).toEqual(['get', 'stat']);
  });

  it('frees the slot of a get whose stream is destroyed', async () => {
    const { adapter, state } = busyAdapter();
    const limited = withConcurrencyLimit(adapter, 1);
    const stream = await limited.get('k');
    const stat = limited.stat('other');
    await settle();
    expect(state.started).toEqual(['get']);

    stream.destroy();
    await expect(stat).resolves.toEqual(info('other'));
  });

  it('frees the slot when an operation fails', async () => {
    const { adapter } = busyAdapter();
    const failing: StorageAdapter = { ...adapter, stat: () => Promise.reject(new Error('boom')) };
    const limited = withConcurrencyLimit(failing, 1);
    await expect(limited.stat('k')).rejects.toThrow('boom');
    await expect(limited.delete(['k'])).resolves.toBeUndefined();
  });
});
