import type { StorageAdapter } from '@stowage/storage';

/** The contract's operations a test wrapper may replace. */
export type AdapterOperations = Pick<StorageAdapter, 'put' | 'get' | 'stat' | 'list' | 'delete'>;

/**
 * An adapter that calls `overrides` where given and `inner` for everything else (the optional
 * archive methods and `close` included). Use it to misbehave in one operation: spreading an
 * adapter (`{ ...inner, put }`) drops the methods a class keeps on its prototype.
 */
export function forwarding(inner: StorageAdapter, overrides: Partial<AdapterOperations>): StorageAdapter {
  return {
    description: inner.description,
    capabilities: inner.capabilities,
    put: overrides.put ?? ((key, body, options) => inner.put(key, body, options)),
    get: overrides.get ?? ((key, options) => inner.get(key, options)),
    stat: overrides.stat ?? ((key, options) => inner.stat(key, options)),
    list: overrides.list ?? ((prefix, options) => inner.list(prefix, options)),
    delete: overrides.delete ?? ((keys, options) => inner.delete(keys, options)),
    ...(inner.setStorageClass && { setStorageClass: (key, storageClass, options) => inner.setStorageClass!(key, storageClass, options) }),
    ...(inner.requestThaw && { requestThaw: (key, options) => inner.requestThaw!(key, options) }),
    ...(inner.lifecycle && { lifecycle: inner.lifecycle }),
    close: () => inner.close?.() ?? Promise.resolve(),
  };
}
