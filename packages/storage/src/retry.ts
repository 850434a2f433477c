import { setTimeout as sleep } from 'node:timers/promises';
import type { GetOptions, PutBody, PutOptions, StorageAdapter, StoredObject, ThawOptions } from './contract.js';
import { abortedError, isTransient } from './errors.js';

export interface RetryOptions {
  /** Attempts in all, the first included (default 5). */
  attempts?: number;
  /** Delay before the first retry in ms (default 200); doubles each time up to `maxDelayMs`. */
  baseDelayMs?: number;
  /** Upper bound of one delay in ms (default 10 000). */
  maxDelayMs?: number;
  /** Source of randomness for full jitter, in [0, 1) (default Math.random; tests pass their own). */
  random?: () => number;
  /** Called before each retry, e.g. to log it. */
  onRetry?: (event: {
    operation: string;
    key?: string | undefined;
    attempt: number;
    delayMs: number;
    error: unknown;
    /** Bytes already received, when the operation goes on from there instead of starting over (a cut download resumed). */
    resumeAt?: number | undefined;
  }) => void;
}

/**
 * Retries operations that failed with a `transient` error, with exponential backoff and full
 * jitter; any other error is passed through at once. `put` re-opens the body on each attempt.
 * A `get` is retried only until the stream is handed over; a listing only until its first item.
 */
export function withRetry(inner: StorageAdapter, options: RetryOptions = {}): StorageAdapter {
  const attempts = Math.max(1, options.attempts ?? 5);
  const base = options.baseDelayMs ?? 200;
  const max = options.maxDelayMs ?? 10_000;
  const random = options.random ?? Math.random;
  const delayFor = (attempt: number) => Math.round(random() * Math.min(max, base * 2 ** (attempt - 1)));

  async function run<T>(operation: string, key: string | undefined, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (!isTransient(error) || attempt >= attempts || signal?.aborted) throw error;
        const delayMs = delayFor(attempt);
        options.onRetry?.({ operation, key, attempt, delayMs, error });
        await backoff(delayMs, signal, key);
      }
    }
  }

  return {
    description: inner.description,
    capabilities: inner.capabilities,
    put: (key: string, body: PutBody, opts?: PutOptions): Promise<StoredObject> => run('put', key, opts?.signal, () => inner.put(key, body, opts)),
    get: (key: string, opts?: GetOptions) => run('get', key, opts?.signal, () => inner.get(key, opts)),
    stat: (key, opts) => run('stat', key, opts?.signal, () => inner.stat(key, opts)),
    delete: (keys, opts) => run('delete', undefined, opts?.signal, () => inner.delete(keys, opts)),
    // Both are idempotent by contract, so retrying them is safe.
    ...(inner.setStorageClass && {
      setStorageClass: (key: string, storageClass: string, opts?: { signal?: AbortSignal }) =>
        run('setStorageClass', key, opts?.signal, () => inner.setStorageClass!(key, storageClass, opts)),
    }),
    ...(inner.requestThaw && {
      requestThaw: (key: string, opts: ThawOptions) => run('requestThaw', key, opts.signal, () => inner.requestThaw!(key, opts)),
    }),
    ...(inner.lifecycle && { lifecycle: inner.lifecycle }),
    list(prefix, opts) {
      return {
        async *[Symbol.asyncIterator]() {
          let yielded = false;
          for (let attempt = 1; ; attempt++) {
            try {
              for await (const info of inner.list(prefix, opts)) {
                yielded = true;
                yield info;
              }
              return;
            } catch (error) {
              if (yielded || !isTransient(error) || attempt >= attempts || opts?.signal?.aborted) throw error;
              const delayMs = delayFor(attempt);
              options.onRetry?.({ operation: 'list', key: prefix, attempt, delayMs, error });
              await backoff(delayMs, opts?.signal, prefix);
            }
          }
        },
      };
    },
    close: () => inner.close?.() ?? Promise.resolve(),
  };
}

/** Waits before a retry; an abort meanwhile rejects with `aborted` like any other operation. */
async function backoff(delayMs: number, signal: AbortSignal | undefined, key: string | undefined): Promise<void> {
  try {
    await sleep(delayMs, undefined, { signal });
  } catch (cause) {
    throw abortedError(key, cause);
  }
}
