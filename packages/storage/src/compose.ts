import type { StorageAdapter } from './contract.js';
import { withConcurrencyLimit } from './limit.js';
import { withRetry, type RetryOptions } from './retry.js';

export interface CompositionOptions {
  /** Retry policy for transient errors; `false` disables retries. */
  retry?: RetryOptions | false;
  /** Operations in flight at once (default: the adapter's `capabilities.maxParallelism`). */
  concurrency?: number;
  /** Extra wrappers applied innermost-first around the raw adapter (fault injection, metrics, …). */
  wrappers?: ReadonlyArray<(adapter: StorageAdapter) => StorageAdapter>;
}

/**
 * The one place where cross-cutting wrappers are stacked around an adapter:
 * raw adapter → caller's wrappers (faults, logging) → retry → concurrency limit.
 * Retry sits inside the limit so that a retried call keeps its slot and backoff does not
 * let other calls overrun the backend.
 */
export function composeAdapter(raw: StorageAdapter, options: CompositionOptions = {}): StorageAdapter {
  let adapter = raw;
  for (const wrap of options.wrappers ?? []) adapter = wrap(adapter);
  if (options.retry !== false) adapter = withRetry(adapter, options.retry ?? {});
  return withConcurrencyLimit(adapter, options.concurrency ?? raw.capabilities.maxParallelism);
}
