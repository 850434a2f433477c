import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import type { StorageAdapter } from './contract.js';
import { StorageError, StorageErrorCode } from './errors.js';
import type { RetryOptions } from './retry.js';

/** What a factory is given besides the destination's URL and options. */
export interface AdapterContext {
  /** Resolves relative paths: the config file's folder. */
  baseDir: string;
  /**
   * Where an adapter reports what it retries on its own (a download cut mid-stream that it resumes,
   * a request its client repeats), so these are logged with the retry wrapper's retries: core
   * passes the callback it gives `RetryOptions.onRetry`. Optional; an adapter that retries nothing
   * itself ignores it.
   */
  onRetry?: RetryOptions['onRetry'] | undefined;
}

/** How one URL scheme (`file:`, `s3:`, …) turns a destination's URL and options into an adapter. */
export interface AdapterFactory<Options = unknown> {
  /** URL scheme without the colon, lower case: `file`, `s3`, `oss`. */
  readonly scheme: string;
  /** Validates the destination's `options` object (and supplies defaults). */
  readonly optionsSchema: z.ZodType<Options>;
  /** Builds the adapter (see `AdapterContext` for what `context` holds). */
  create(url: URL, options: Options, context: AdapterContext): StorageAdapter | Promise<StorageAdapter>;
  /**
   * Finds out by trying what the destination's endpoint really supports beyond what the adapter
   * declares (`stowage destinations probe`), leaving nothing behind. Optional.
   */
  probe?(url: URL, options: Options, context: AdapterContext): Promise<EndpointProbe>;
}

/** What a factory's probe found out about an endpoint. */
export interface EndpointProbe {
  /** One line for people, e.g. `sha256 reported, conditional writes enforced`. */
  summary: string;
  /** Destination options that match what was found, to put in the config. */
  recommended?: Record<string, unknown>;
  /** The adapter's own findings, for `--json`. */
  details?: unknown;
}

export interface DestinationSpec {
  url: string;
  options?: unknown;
}

/** Adapter factories by URL scheme. */
export class StorageRegistry {
  readonly #factories = new Map<string, AdapterFactory<never>>();

  readonly #lazy = new Map<string, () => Promise<AdapterFactory<never>>>();

  /**
   * Registering the same factory again is a no-op.
   * @throws `duplicate_scheme` when another factory has the scheme (two adapters would claim its URLs).
   */
  register<Options>(factory: AdapterFactory<Options>): this {
    if (this.#factories.get(factory.scheme.toLowerCase()) === (factory as unknown)) return this;
    const scheme = this.#claim(factory.scheme);
    this.#factories.set(scheme, factory as unknown as AdapterFactory<never>);
    return this;
  }

  /**
   * Registers a scheme whose factory is loaded on first use, so that a config without, say, S3
   * destinations never loads the AWS SDK.
   * @throws `duplicate_scheme` when the scheme is registered already.
   */
  registerLazy(scheme: string, load: () => Promise<AdapterFactory<never>>): this {
    this.#lazy.set(this.#claim(scheme), load);
    return this;
  }

  #claim(name: string): string {
    const scheme = name.toLowerCase();
    if (this.#factories.has(scheme) || this.#lazy.has(scheme)) {
      throw new StorageError(
        StorageErrorCode.DuplicateScheme,
        `a storage adapter for '${scheme}:' is registered already; give the custom adapter a scheme of its own`,
        { context: { scheme } },
      );
    }
    return scheme;
  }

  schemes(): string[] {
    return [...new Set([...this.#factories.keys(), ...this.#lazy.keys()])].sort();
  }

  /** Loads a lazily registered factory once; it must be for the scheme it was registered under. */
  async #load(scheme: string): Promise<AdapterFactory<never> | undefined> {
    const load = this.#lazy.get(scheme);
    if (!load) return undefined;
    const factory = await load();
    this.#factories.set(scheme, factory);
    return factory;
  }

  /**
   * What the scheme's factory finds out by trying the destination (`AdapterFactory.probe`), or
   * `undefined` when the factory has no probe. Errors of the probe are its own.
   */
  async probe(spec: DestinationSpec, context: AdapterContext): Promise<EndpointProbe | undefined> {
    const { factory, url, options } = await this.#resolve(spec, context);
    return factory.probe?.(url, options, context);
  }

  /**
   * Validates `spec.options` with the scheme's schema and creates the adapter.
   * @throws `unknown_scheme` for a scheme nobody registered; `invalid_config` for bad options,
   *   with every problem as `options.path: message`.
   */
  async open(spec: DestinationSpec, context: AdapterContext): Promise<StorageAdapter> {
    const { factory, url, options } = await this.#resolve(spec, context);
    return factory.create(url, options, context);
  }

  async #resolve(spec: DestinationSpec, context: AdapterContext): Promise<{ factory: AdapterFactory<unknown>; url: URL; options: unknown }> {
    const url = parseDestinationUrl(spec.url, context.baseDir);
    const scheme = url.protocol.slice(0, -1).toLowerCase();
    const factory = (this.#factories.get(scheme) ?? (await this.#load(scheme))) as AdapterFactory<unknown> | undefined;
    if (!factory) {
      throw new StorageError(
        StorageErrorCode.UnknownScheme,
        `unknown storage scheme '${scheme}:' in '${spec.url}'; known: ${this.schemes()
          .map((s) => `${s}:`)
          .join(', ')}`,
        { context: { url: spec.url, scheme } },
      );
    }
    const parsed = factory.optionsSchema.safeParse(spec.options ?? {});
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `options${issue.path.map((p) => `.${String(p)}`).join('')}: ${issue.message}`);
      throw new StorageError(StorageErrorCode.InvalidConfig, problems.join('; '), { context: { url: spec.url } });
    }
    return { factory, url, options: parsed.data };
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
