import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  composeAdapter,
  isStorageError,
  parseDestinationUrl,
  StorageError,
  StorageRegistry,
  type AdapterFactory,
  type RetryOptions,
  type StorageAdapter,
} from '@stowage/storage';
import { localStorageFactory } from '@stowage/storage-local';
import type { ResolvedConfig } from './config.js';
import { Alerting } from './alerting.js';
import { appendAudit } from './audit.js';
import { warnUnrecorded } from './oplog.js';
import { writePrivateAtomic } from './private-fs.js';
import { Codec } from './encoding.js';
import { repairAfterCrash } from './leftovers.js';
import { CoreError, CoreErrorCode } from './errors.js';
import type { Destination, DestinationFailure, ProgressEvent } from './destination.js';

export type { Destination, DestinationFailure, ProgressEvent } from './destination.js';

export interface EngineOptions {
  /**
   * Adapter factories by scheme; the config's custom adapters are registered into it. Default:
   * `file:` only — core knows no cloud adapter: a program with S3 or OSS destinations passes a
   * registry that has them (the CLI passes `builtinRegistry()` of `@stowage/adapters`).
   */
  registry?: StorageRegistry;
  /** Extra wrappers around every destination's adapter (fault injection in tests, metrics). */
  wrappers?: ReadonlyArray<(adapter: StorageAdapter, destination: string) => StorageAdapter>;
  retry?: RetryOptions | false;
  /** The clock (tests pass their own). */
  now?: () => Date;
  onProgress?: (event: ProgressEvent) => void;
  /** Warnings worth a line on stderr (a fallback to another destination, a skipped destination). */
  onWarning?: (message: string) => void;
}

/** A config brought to life: destinations opened, folders known. Close it when done. */
export interface Engine {
  readonly config: ResolvedConfig;
  /** The adapter factories the destinations were opened with (custom adapters included). */
  readonly registry: StorageRegistry;
  /** The destinations this run works on: every configured one, less `unavailable`. */
  readonly destinations: readonly Destination[];
  /**
   * Configured destinations left out of this run because their lock could not be taken (read-only,
   * full, unreachable): a backup counts them as failed destinations, other operations skip them.
   */
  readonly unavailable: readonly DestinationFailure[];
  readonly logDir: string;
  readonly stagingDir: string;
  /** Compression and encryption of artifacts, with the keys loaded on first use. */
  readonly codec: Codec;
  /** Raises and resolves alerts (a no-op without an `alerts` section). */
  readonly alerts: Alerting;
  now(): Date;
  progress(event: ProgressEvent): void;
  warn(message: string): void;
  close(): Promise<void>;
}

/** A registry of the one adapter core itself depends on: `file:` (and plain paths). */
export function localRegistry(): StorageRegistry {
  return new StorageRegistry().register(localStorageFactory);
}

/**
 * Where a custom adapter named by package is looked for: the config's folder (and its parents), then
 * Stowage's own install (which also reaches packages installed beside a global `npm i -g`), then the
 * global modules folder of the running node.
 */
function adapterSearchFrom(baseDir: string): string[] {
  const prefix = dirname(dirname(process.execPath));
  const globalModules = process.platform === 'win32' ? join(dirname(process.execPath), 'node_modules') : join(prefix, 'lib', 'node_modules');
  return [join(baseDir, 'stowage.config.json'), fileURLToPath(import.meta.url), join(globalModules, 'stowage.config.json')];
}

function resolveAdapter(spec: string, baseDir: string): string {
  if (isAbsolute(spec)) return spec;
  const searched = adapterSearchFrom(baseDir);
  for (const from of searched) {
    try {
      return createRequire(from).resolve(spec);
    } catch {
      // not installed there; try the next place
    }
  }
  throw new Error(`not installed in ${baseDir}, beside Stowage or in the global modules (${dirname(searched[2]!)}); install it with npm there`);
}

/**
 * Registers the custom adapters a config names: each module exports an `AdapterFactory` as its
 * default export or as `storageAdapterFactory` (see templates/storage-adapter).
 */
async function registerCustomAdapters(registry: StorageRegistry, config: ResolvedConfig): Promise<void> {
  for (const [index, spec] of config.adapters.entries()) {
    let module: Record<string, unknown>;
    try {
      module = (await import(pathToFileURL(resolveAdapter(spec, config.baseDir)).href)) as Record<string, unknown>;
    } catch (cause) {
      throw new CoreError(CoreErrorCode.ConfigInvalid, `adapters.${index}: cannot load '${spec}': ${(cause as Error).message}`, { context: { spec }, cause });
    }
    const factories = [module.default, module.storageAdapterFactory].filter(isAdapterFactory);
    if (factories.length === 0) {
      throw new CoreError(
        CoreErrorCode.ConfigInvalid,
        `adapters.${index}: '${spec}' exports no storage adapter factory (export it as default or as storageAdapterFactory)`,
        { context: { spec } },
      );
    }
    for (const factory of new Set(factories)) {
      try {
        registry.register(factory);
      } catch (cause) {
        throw new CoreError(CoreErrorCode.ConfigInvalid, `adapters.${index}: '${spec}': ${(cause as Error).message}`, { context: { spec }, cause });
      }
    }
  }
}

function isAdapterFactory(value: unknown): value is AdapterFactory {
  const candidate = value as Partial<AdapterFactory> | undefined;
  return typeof candidate?.scheme === 'string' && typeof candidate.create === 'function' && candidate.optionsSchema !== undefined;
}

/**
 * `offsite: put 'full/x.sqlite3' failed (stowage.storage.transient: …); retry 1 in 180 ms`, or for
 * a download the adapter resumes, `…; resume 1 from byte 1048576`.
 */
function retryWarning(destination: string, event: Parameters<NonNullable<RetryOptions['onRetry']>>[0]): string {
  const cause = event.error as { code?: unknown; message?: unknown } | undefined;
  const why = [cause?.code, cause?.message].filter((part) => typeof part === 'string').join(': ');
  const next = event.resumeAt === undefined ? `retry ${event.attempt} in ${event.delayMs} ms` : `resume ${event.attempt} from byte ${event.resumeAt}`;
  return `${destination}: ${event.operation}${event.key === undefined ? '' : ` '${event.key}'`} failed (${why}); ${next}`;
}

export async function openEngine(config: ResolvedConfig, options: EngineOptions = {}): Promise<Engine> {
  const registry = options.registry ?? localRegistry();
  await registerCustomAdapters(registry, config);
  const destinations: Destination[] = [];
  for (const [index, spec] of config.destinations.entries()) {
    const retry = options.retry ?? {};
    // Every retry is worth a line (a flaky region shows long before it fails a backup), unless the
    // caller logs them itself; the adapter's own (a cut download resumed) go the same way.
    const onRetry: NonNullable<RetryOptions['onRetry']> =
      (retry ? retry.onRetry : undefined) ?? ((event) => options.onWarning?.(retryWarning(spec.name, event)));
    const raw = await registry.open(spec, { baseDir: config.baseDir, onRetry }).catch((error: unknown) => {
      if (!isStorageError(error)) throw error;
      throw new StorageError(error.code, `destinations.${index} (${spec.name}): ${error.message}`, {
        context: { destination: spec.name, ...error.context },
        cause: error,
      });
    });
    const adapter = composeAdapter(raw, {
      retry: retry && { ...retry, onRetry },
      wrappers: (options.wrappers ?? []).map((wrap) => (inner: StorageAdapter) => wrap(inner, spec.name)),
    });
    destinations.push({ name: spec.name, adapter });
  }
  const logDir = logDirOf(config);
  const warn = (message: string) => options.onWarning?.(message);
  await auditConfigChange(config, logDir, warn);
  const engine: Engine = {
    config,
    registry,
    destinations,
    unavailable: [],
    logDir,
    stagingDir: join(config.stateDir, 'staging'),
    codec: new Codec(config, (use, keys) =>
      appendAudit(logDir, {
        operation: 'key-use',
        outcome: use,
        durationMs: 0,
        detail: `mode=${keys.mode}${keys.fingerprints.length ? ` keys=${keys.fingerprints.join(',')}` : ''}`,
      }).catch(warnUnrecorded(warn, 'the key use in the audit log')),
    ),
    alerts: new Alerting(config, warn, options.now ?? (() => new Date())),
    now: options.now ?? (() => new Date()),
    progress: (event) => options.onProgress?.(event),
    warn,
    close: async () => {
      await Promise.all(destinations.map((d) => d.adapter.close?.()));
    },
  };
  await repairAfterCrash(engine);
  return engine;
}

/**
 * The same engine without the destinations in `unavailable` (each warned about by name), for a run
 * that could not lock them. Closing either closes every destination.
 */
export function withoutDestinations(engine: Engine, unavailable: readonly DestinationFailure[]): Engine {
  if (unavailable.length === 0) return engine;
  const names = new Set(unavailable.map((f) => f.destination));
  for (const failure of unavailable) engine.warn(`destination ${failure.destination} is left out of this run: ${failure.message}`);
  return { ...engine, destinations: engine.destinations.filter((d) => !names.has(d.name)), unavailable: [...engine.unavailable, ...unavailable] };
}

/** @throws CoreError `stowage.destination.none_available`, naming each destination and why, when the run has none left. */
export function requireDestinations(engine: Pick<Engine, 'destinations' | 'unavailable'>): void {
  if (engine.destinations.length > 0) return;
  throw new CoreError(
    CoreErrorCode.NoDestinationAvailable,
    `no destination can be used: ${engine.unavailable.map((f) => `${f.destination}: ${f.message}`).join('; ')}`,
    {
      context: { unavailable: engine.unavailable },
    },
  );
}

/** The destinations to use: all, or the one named (an unknown name is a usage error). */
export function selectDestinations(engine: Pick<Engine, 'destinations' | 'unavailable'>, name: string | undefined): readonly Destination[] {
  if (name === undefined) return engine.destinations;
  const found = engine.destinations.filter((d) => d.name === name);
  const unavailable = engine.unavailable.find((f) => f.destination === name);
  if (unavailable) {
    throw new CoreError(CoreErrorCode.NoDestinationAvailable, `destination ${name} cannot be used now: ${unavailable.message}`, {
      context: { name, code: unavailable.code },
    });
  }
  if (found.length === 0) {
    throw new CoreError(CoreErrorCode.UnknownDestination, `no destination named '${name}'; configured: ${engine.destinations.map((d) => d.name).join(', ')}`, {
      context: { name },
    });
  }
  return found;
}

/** The folder of backup.log, restore.log and the audit log: `logDir`, else logs/ in the first local destination, else `<stateDir>/logs`. */
export function logDirOf(config: ResolvedConfig): string {
  const firstLocal = config.destinations.map((d) => parseDestinationUrl(d.url, config.baseDir)).find((url) => url.protocol === 'file:');
  return config.logDir ?? (firstLocal ? join(fileURLToPath(firstLocal), 'logs') : join(config.stateDir, 'logs'));
}

/**
 * Notes in the audit log when the config file changed since the last run on this machine (its
 * SHA-256 is kept in the state folder). Only the hash is recorded, never the content.
 */
async function auditConfigChange(config: ResolvedConfig, logDir: string, warn: (message: string) => void): Promise<void> {
  const text = await readFile(config.configPath).catch(() => undefined);
  if (!text) return;
  const hash = createHash('sha256').update(text).digest('hex');
  const seenPath = join(config.stateDir, 'status', 'config.sha256');
  const seen = await readFile(seenPath, 'utf8').catch(() => undefined);
  if (seen?.trim() === hash) return;
  await appendAudit(logDir, {
    operation: 'config-change',
    outcome: seen === undefined ? 'first-seen' : 'changed',
    durationMs: 0,
    detail: `config=${config.configPath} sha256=${hash}`,
  }).catch(warnUnrecorded(warn, 'the config change in the audit log'));
  await writePrivateAtomic(seenPath, `${hash}\n`).catch(warnUnrecorded(warn, `the config's hash in ${seenPath}`));
}
