import { resolve } from 'node:path';
import type { AdapterFactory } from '@stowage/storage';
import { z } from 'zod';
import { ExampleStorage } from './example.js';

/** Declare every option of your adapter here; the registry reports bad ones as `options.<name>: …`. */
const exampleOptionsSchema = z.strictObject({
  maxParallelism: z.number().int().min(1).default(4),
});

export type ExampleStorageOptions = z.output<typeof exampleOptionsSchema>;

/**
 * Opens `example:<folder>` destinations, e.g. `example:./backups` (relative to the config file's
 * folder) or `example:///var/backups/stowage`. Register it with `registry.register(exampleStorageFactory)`.
 */
export const exampleStorageFactory: AdapterFactory<ExampleStorageOptions> = {
  scheme: 'example',
  optionsSchema: exampleOptionsSchema,
  create: (url, options, { baseDir }) => new ExampleStorage(resolve(baseDir, decodeURIComponent(url.pathname)), options.maxParallelism),
};
