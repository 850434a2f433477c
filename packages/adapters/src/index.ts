import { StorageRegistry, type AdapterFactory } from '@stowage/storage';
import { localStorageFactory } from '@stowage/storage-local';

/**
 * A registry of the adapters built into Stowage: `file:` (and plain paths), and `s3:` and `oss:`,
 * whose packages (and cloud SDKs) are loaded only when a destination uses them. A fresh registry
 * each call, so that the custom adapters one config registers never leak into another's.
 */
export function builtinRegistry(): StorageRegistry {
  return new StorageRegistry()
    .register(localStorageFactory)
    .registerLazy('s3', async () => (await import('@stowage/storage-s3')).s3StorageFactory as AdapterFactory<never>)
    .registerLazy('oss', async () => (await import('@stowage/storage-oss')).ossStorageFactory as AdapterFactory<never>);
}
