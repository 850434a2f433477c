import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { bufferBody } from './body.js';
import type { ObjectInfo, PutBody, StorageAdapter } from './contract.js';
import { StorageError, StorageErrorCode, objectNotFound } from './errors.js';
import { withRetry, type RetryOptions } from './retry.js';

const transient = (n: number) => new StorageError(StorageErrorCode.Transient, `hiccup ${n}`);
const info = (key: string): ObjectInfo => ({ key, size: 1, modified: new Date(0), checksums: {} });

/**
 * An adapter that plays a script: each call (and each listed item) takes the next entry of
 * `outcomes` and throws it, or goes ahead when the entry is `undefined` or the script has run out.
 */
function scriptedAdapter(outcomes: unknown[]) {
  const calls: string[] = [];
  const putBodies: string[] = [];
  const step = () => {
    const outcome = outcomes.shift();
    if (outcome !== undefined) throw outcome;
  };
  const adapter: StorageAdapter = {
    description: 'scripted',
    capabilities: { serverChecksums: [], conditionalPut: false, rangeReads: false, maxParallelism: 1 },
    async put(key, body) {
      calls.push('put');
      putBodies.push(await text(body.open()));
      step();
      return info(key);
    },
    async get() {
      calls.push('get');
      step();
      return Readable.from([Buffer.from('x')]);
    },
    async stat(key) {
      calls.push('stat');
      step();
      return info(key);
    },
    async delete() {
      calls.push('delete');
      step();
    },
    async *list(prefix) {
      calls.push('list');
      step();
      yield info(`${prefix}1`);
      step();
      yield info(`${prefix}2`);
    },
    async setStorageClass(key) {
      calls.push('setStorageClass');
      step();
      return info(key);
    },
    async requestThaw(key) {
      calls.push('requestThaw');
      step();
      return info(key);
    },
  };
  return { adapter, calls, putBodies };
}

const noWait: RetryOptions = { random: () => 0 };

async function keys(listing: AsyncIterable<ObjectInfo>): Promise<string[]> {
  const seen: string[] = [];
  for await (const item of listing) seen.push(item.key);
  return seen;
}

describe('withRetry', () => {
  it('retries transient errors until the operation succeeds', async () => {
    const { adapter, calls } = scriptedAdapter([transient(1), transient(2)]);
    const retries: number[] = [];
    const retrying = withRetry(adapter, { ...noWait, onRetry: (event) => retries.push(event.attempt) });
    await expect(retrying.stat('k')).resolves.toEqual(info('k'));
    await expect(retrying.delete(['k'])).resolves.toBeUndefined();
    expect(calls).toEqual(['stat', 'stat', 'stat', 'delete']);
    expect(retries).toEqual([1, 2]);
  });

  it('waits a random share of an exponentially growing, capped delay', async () => {
    const { adapter } = scriptedAdapter([transient(1), transient(2), transient(3), transient(4)]);
    const delays: number[] = [];
    const retrying = withRetry(adapter, {
      baseDelayMs: 8,
      maxDelayMs: 20,
      random: () => 0.5,
      onRetry: (event) => delays.push(event.delayMs),
    });
    await retrying.stat('k');
    expect(delays).toEqual([4, 8, 10, 10]);
  });

  it('gives up after the configured number of attempts with the last error', async () => {
    const errors = [transient(1), transient(2), transient(3), transient(4)];
    const { adapter, calls } = scriptedAdapter([...errors]);
    await expect(withRetry(adapter, { ...noWait, attempts: 3 }).stat('k')).rejects.toBe(errors[2]);
    expect(calls).toHaveLength(3);
  });

  it('forwards and retries the archive operations (idempotent by contract)', async () => {
    const { adapter, calls } = scriptedAdapter([transient(1), undefined, transient(2)]);
    const retrying = withRetry(adapter, noWait);
    await retrying.setStorageClass!('k', 'Archive');
    await retrying.requestThaw!('k', { days: 1 });
    expect(calls).toEqual(['setStorageClass', 'setStorageClass', 'requestThaw', 'requestThaw']);
  });

  it('offers no archive operations when the adapter has none', () => {
    const { adapter } = scriptedAdapter([]);
    const { setStorageClass: _, requestThaw: __, ...plain } = adapter;
    const retrying = withRetry(plain);
    expect([retrying.setStorageClass, retrying.requestThaw]).toEqual([undefined, undefined]);
  });

  it('passes any other error through at once', async () => {
    const missing = objectNotFound('k', 'scripted');
    const { adapter, calls } = scriptedAdapter([missing]);
    let retried = false;
    const retrying = withRetry(adapter, { ...noWait, onRetry: () => (retried = true) });
    await expect(retrying.get('k')).rejects.toBe(missing);
    expect(calls).toEqual(['get']);
    expect(retried).toBe(false);
  });

  it('re-opens the put body from its first byte on each attempt', async () => {
    const { adapter, putBodies } = scriptedAdapter([transient(1), transient(2)]);
    const source = bufferBody('payload');
    let opened = 0;
    const body: PutBody = { size: source.size, sha256: source.sha256, open: () => (opened++, source.open()) };
    await withRetry(adapter, noWait).put('k', body);
    expect(opened).toBe(3);
    expect(putBodies).toEqual(['payload', 'payload', 'payload']);
  });

  it('retries a listing that fails before its first item', async () => {
    const { adapter, calls } = scriptedAdapter([transient(1)]);
    await expect(keys(withRetry(adapter, noWait).list('p/'))).resolves.toEqual(['p/1', 'p/2']);
    expect(calls).toEqual(['list', 'list']);
  });

  it('does not retry a listing that fails after an item was yielded', async () => {
    const failure = transient(1);
    const { adapter, calls } = scriptedAdapter([undefined, failure]);
    const seen: string[] = [];
    const listing = async () => {
      for await (const item of withRetry(adapter, noWait).list('p/')) seen.push(item.key);
    };
    await expect(listing()).rejects.toBe(failure);
    expect(seen).toEqual(['p/1']);
    expect(calls).toEqual(['list']);
  });

  it('rejects with aborted when the signal aborts during a backoff', async () => {
    const { adapter, calls } = scriptedAdapter([transient(1)]);
    const controller = new AbortController();
    const retrying = withRetry(adapter, { baseDelayMs: 60_000, random: () => 0.99 });
    const pending = retrying.stat('k', { signal: controller.signal });
    setTimeout(() => controller.abort(), 5);
    await expect(pending).rejects.toMatchObject({ code: StorageErrorCode.Aborted });
    expect(calls).toEqual(['stat']);
  });
});
