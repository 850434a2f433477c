import { fileURLToPath } from 'node:url';
import { StorageError, StorageErrorCode, type AdapterFactory } from '@stowage/storage';
import { z } from 'zod';
import { LocalStorage, type LocalStorageOptions } from './local.js';

const localOptionsSchema = z.strictObject({
  fsync: z.boolean().default(true),
});

/**
 * Opens `file:` destinations (and plain paths, which the registry turns into `file:` URLs) as a
 * `LocalStorage`. Options: `fsync` (default true) flushes every stored file and its folder.
 */
export const localStorageFactory: AdapterFactory<LocalStorageOptions> = {
  scheme: 'file',
  optionsSchema: localOptionsSchema,
  create(url, options) {
    let folder: string;
    try {
      folder = fileURLToPath(url);
    } catch (cause) {
      throw new StorageError(StorageErrorCode.InvalidConfig, `'${url.href}' is not a local folder URL`, {
        context: { url: url.href },
        cause,
      });
    }
    return new LocalStorage(folder, options);
  },
};
