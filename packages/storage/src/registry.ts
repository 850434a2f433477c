import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import type { StorageAdapter } from './contract.js';
import { StorageError, StorageErrorCode } from './errors.js';

/** How one URL scheme (`file:`, `s3:`, …) turns a destination's URL and options into an adapter. */
export interface AdapterFactory<Options = unknown> {
  /** URL scheme without the colon, lower case: `file`, `s3`, `oss`. */
  readonly scheme: string;
  /** Validates the destination's `options` object (and supplies defaults). */
  readonly optionsSchema: z.ZodType<Options>;
  /** Builds the adapter. `baseDir` resolves relative paths (the config file's folder). */
  create(url: URL, options: Options, context: { baseDir: string }): StorageAdapter | Promise<StorageAdapter>;
}

export interface DestinationSpec {
  url: string;
  options?: unknown;
}

/** Adapter factories by URL scheme. */
export class StorageRegistry {
  readonly #factories = new Map<string, AdapterFactory<never>>();

  readonly #lazy = new Map<string, () => Promise<AdapterFactory<never>>>();

  register<Options>(factory: AdapterFactory<Options>): this {
    this.#factories.set(factory.scheme.toLowerCase(), factory as unknown as AdapterFactory<never>);
    return this;
  }

  /**
   * Registers a scheme whose factory is loaded on first use, so that a config without, say, S3
   * destinations never loads the AWS SDK.
   */
  registerLazy(scheme: string, load: () => Promise<AdapterFactory<never>>): this {
    this.#lazy.set(scheme.toLowerCase(), load);
    return this;
  }

  schemes(): string[] {
    return [...new Set([...this.#factories.keys(), ...this.#lazy.keys()])].sort();
  }

  /**
   * Validates `spec.options` with the scheme's schema and creates the adapter.
   * @throws `unknown_scheme` for a scheme nobody registered; `invalid_config` for bad options,
   *   with every problem as `options.path: message`.
   */
  async open(spec: DestinationSpec, context: { baseDir: string }): Promise<StorageAdapter> {
    const url = parseDestinationUrl(spec.url, context.baseDir);
    const scheme = url.protocol.slice(0, -1).toLowerCase();
    const load = this.#lazy.get(scheme);
    if (!this.#factories.has(scheme) && load) this.register(await load());
    const factory = this.#factories.get(scheme) as AdapterFactory<unknown> | undefined;
    if (!factory) {
      throw new StorageError(
        StorageErrorCode.UnknownScheme,
        `unknown storage scheme '${scheme}:' in '${spec.url}'; known: ${this.schemes().map((s) => `${s}:`).join(', ')}`,
        { context: { url: spec.url, scheme } },
      );
    }
    const parsed = factory.optionsSchema.safeParse(spec.options ?? {});
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `options${issue.path.map((p) => `.${String(p)}`).join('')}: ${issue.message}`);
      throw new StorageError(StorageErrorCode.InvalidConfig, problems.join('; '), { context: { url: spec.url } });
    }
    return factory.create(url, parsed.data, context);
  }
}

/**
 * Parses a destination URL. A plain path (no scheme) means a local folder, resolved against
 * `baseDir`: `./backups` and `/var/backups/stowage` are `file:` URLs.
 */
export function parseDestinationUrl(text: string, baseDir: string): URL {
  if (!/^[a-z][a-z0-9+.-]+:/i.test(text)) return pathToFileURL(resolve(baseDir, text));
  try {
    return new URL(text);
  } catch (cause) {
    throw new StorageError(StorageErrorCode.InvalidConfig, `'${text}' is not a valid destination URL`, { context: { url: text }, cause });
  }
}
