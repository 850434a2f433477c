import { finished } from 'node:stream/promises';
import type { StorageAdapter } from './contract.js';

/** A counting semaphore; `acquire` resolves to a release function. */
export class Semaphore {
  #available: number;
  readonly #waiting: Array<() => void> = [];

  constructor(permits: number) {
    this.#available = Math.max(1, permits);
  }

  async acquire(): Promise<() => void> {
    if (this.#available > 0) this.#available--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#available++;
    };
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/**
 * At most `limit` operations in flight against `inner`. A `get` holds its slot until the
 * returned stream has ended or been destroyed, so downloads count too; a listing holds one
 * slot per page request it is waiting for.
 */
export function withConcurrencyLimit(inner: StorageAdapter, limit: number): StorageAdapter {
  const slots = new Semaphore(limit);
  return {
    description: inner.description,
    capabilities: inner.capabilities,
    put: (key, body, opts) => slots.run(() => inner.put(key, body, opts)),
    stat: (key, opts) => slots.run(() => inner.stat(key, opts)),
    delete: (keys, opts) => slots.run(() => inner.delete(keys, opts)),
    ...(inner.setStorageClass && {
      setStorageClass: (key, storageClass, opts) => slots.run(() => inner.setStorageClass!(key, storageClass, opts)),
    }),
    ...(inner.requestThaw && { requestThaw: (key, opts) => slots.run(() => inner.requestThaw!(key, opts)) }),
    ...(inner.lifecycle && { lifecycle: inner.lifecycle }),
    async get(key, opts) {
      const release = await slots.acquire();
      try {
        const stream = await inner.get(key, opts);
        finished(stream).then(release, release);
        return stream;
      } catch (error) {
        release();
        throw error;
      }
    },
    list(prefix, opts) {
      return {
        async *[Symbol.asyncIterator]() {
          const iterator = inner.list(prefix, opts)[Symbol.asyncIterator]();
          try {
            for (;;) {
              const next = await slots.run(() => iterator.next());
              if (next.done) return;
              yield next.value;
            }
          } finally {
            await iterator.return?.();
          }
        },
      };
    },
    close: () => inner.close?.() ?? Promise.resolve(),
  };
}
