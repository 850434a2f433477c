import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageError, StorageErrorCode, type ObjectInfo, type StorageAdapter, type ThawOptions } from '@stowage/storage';

/** The operations of the contract that chaos can target. */
export type ChaosOperation = 'put' | 'get' | 'stat' | 'list' | 'delete' | 'setStorageClass' | 'requestThaw';

/** Which calls of one operation fail, and with what. */
export interface ChaosFault {
  /** The 1-based number(s) of this operation's calls that fail, or `'always'`; none when omitted. */
  fail?: 'always' | number | readonly number[];
  /** What a failing call throws: a storage error of this code (default `transient`), or what the function returns. */
  error?: StorageErrorCode | (() => unknown);
}

/** Faults of `get`; body offsets count from the first byte the stream returns (ranges included). */
export interface ChaosGetFault extends ChaosFault {
  /** Every body stops after `after` bytes: silently (a short read) or failing with an `error` code. */
  truncate?: { after: number; error?: StorageErrorCode };
  /** Every body has the byte at this offset inverted (silent corruption). */
  corruptAt?: number;
}

/**
 * What a chaos wrapper does, by operation: `{ put: { fail: [1, 2] } }` fails the first two puts
 * with `transient`; `{ get: { truncate: { after: 100 } } }` cuts every download after 100 bytes.
 */
export interface ChaosPlan {
  put?: ChaosFault;
  get?: ChaosGetFault;
  stat?: ChaosFault;
  list?: ChaosFault;
  delete?: ChaosFault;
  /** Faults of the archive operations (offered only when the inner adapter has them). */
  setStorageClass?: ChaosFault;
  requestThaw?: ChaosFault;
  /** Every put fails with `no_space`, storing nothing, as on a full disk (replaces `put`). */
  diskFull?: boolean;
  /** Every call waits this many ms before it goes on. */
  delayMs?: number;
}

/** An adapter wrapped by `withChaos`, with the calls it has seen. */
export interface ChaosAdapter extends StorageAdapter {
  /** Calls so far by operation, failed ones included; a listing counts when its iteration starts. */
  readonly calls: Readonly<Record<ChaosOperation, number>>;
}

const DISK_FULL: ChaosFault = { fail: 'always', error: StorageErrorCode.NoSpace };

/**
 * Wraps `inner` so that it misbehaves as `plan` says: failing chosen calls, delaying calls,
 * truncating or corrupting downloads, or acting as a full disk. Everything else is passed through,
 * so the wrapper implements the same contract and composes with the retry and limit wrappers.
 */
export function withChaos(inner: StorageAdapter, plan: ChaosPlan): ChaosAdapter {
  const calls: Record<ChaosOperation, number> = { put: 0, get: 0, stat: 0, list: 0, delete: 0, setStorageClass: 0, requestThaw: 0 };
  const faults: ChaosPlan = plan.diskFull ? { ...plan, put: DISK_FULL } : plan;

  /** Counts a call, waits the delay and throws if this call is meant to fail. */
  async function enter(operation: ChaosOperation, key?: string): Promise<void> {
    const call = ++calls[operation];
    if (plan.delayMs) await sleep(plan.delayMs);
    const fault = faults[operation];
    if (fault?.fail !== undefined && strikes(fault.fail, call)) {
      throw injectedError(fault.error, `${operation} call #${call}`, key);
    }
  }

  return {
    description: inner.description,
    capabilities: inner.capabilities,
    calls,
    async put(key, body, options) {
      await enter('put', key);
      return inner.put(key, body, options);
    },
    async get(key, options) {
      await enter('get', key);
      const stream = await inner.get(key, options);
      const { truncate, corruptAt } = plan.get ?? {};
      if (truncate === undefined && corruptAt === undefined) return stream;
      return Readable.from(distort(stream, key, truncate, corruptAt), { objectMode: false });
    },
    async stat(key, options) {
      await enter('stat', key);
      return inner.stat(key, options);
    },
    async *list(prefix, options): AsyncGenerator<ObjectInfo> {
      await enter('list', prefix);
      yield* inner.list(prefix, options);
    },
    async delete(keys, options) {
      await enter('delete');
      return inner.delete(keys, options);
    },
    ...(inner.setStorageClass && {
      async setStorageClass(key: string, storageClass: string, options?: { signal?: AbortSignal }) {
        await enter('setStorageClass', key);
        return inner.setStorageClass!(key, storageClass, options);
      },
    }),
    ...(inner.requestThaw && {
      async requestThaw(key: string, options: ThawOptions) {
        await enter('requestThaw', key);
        return inner.requestThaw!(key, options);
      },
    }),
    ...(inner.lifecycle && { lifecycle: inner.lifecycle }),
    close: () => inner.close?.() ?? Promise.resolve(),
  };
}

function strikes(fail: NonNullable<ChaosFault['fail']>, call: number): boolean {
  if (fail === 'always') return true;
  return typeof fail === 'number' ? fail === call : fail.includes(call);
}

function injectedError(error: ChaosFault['error'] = StorageErrorCode.Transient, where: string, key?: string): unknown {
  if (typeof error === 'function') return error();
  return new StorageError(error, `chaos: injected ${error} into ${where}`, { context: { key, chaos: where } });
}

/** The bytes of `source`, cut short and/or with one byte inverted. */
async function* distort(source: Readable, key: string, truncate: ChaosGetFault['truncate'], corruptAt: number | undefined): AsyncGenerator<Buffer> {
  let position = 0;
  for await (const chunk of source as AsyncIterable<Buffer>) {
    const kept = truncate && position + chunk.length > truncate.after ? chunk.subarray(0, truncate.after - position) : chunk;
    if (corruptAt !== undefined && corruptAt >= position && corruptAt < position + kept.length) {
      const copy = Buffer.from(kept);
      copy[corruptAt - position]! ^= 0xff;
      yield copy;
    } else if (kept.length > 0) {
      yield kept;
    }
    position += kept.length;
    if (kept !== chunk) {
      if (truncate?.error) throw injectedError(truncate.error, `get body after ${truncate.after} bytes`, key);
      return;
    }
  }
}
