/*
 * Writing a destination's bucket lifecycle rules (`stowage destinations lifecycle apply`).
 *
 * A bucket has one lifecycle configuration for all its prefixes, which the adapter's `put`
 * read-modify-writes (keeping every rule that is not Stowage's for its prefix). Neither S3 nor OSS
 * can write that configuration conditionally (no If-Match on PutBucketLifecycleConfiguration /
 * PutBucketLifecycle), so two writers would lose each other's rules. The write therefore runs
 * under core's destination lock, kept at the bucket's root (`locks/lifecycle.lock`) rather than
 * under the destination's prefix: two destinations, or two Stowage installations, under different
 * prefixes of one bucket write the same configuration and must take the same lock. The lock is a
 * conditional put where the backend has one (S3 with conditional writes, OSS), with a lease.
 */
import { crashPoint, type BucketLifecycle, type LifecycleRule } from '@stowage/storage';
import type { Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { acquireDestinationLock } from './lock.js';

/** The key, at the bucket's root, of the lock every lifecycle write of the bucket takes. */
export const LIFECYCLE_LOCK_KEY = 'locks/lifecycle.lock';

/** The URL of the bucket `url` (`s3://bucket/prefix`, `oss://bucket/prefix`) names: its root, without the prefix. */
export function bucketRootUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}`;
}

/** Who applies the rules, for the lock (`stowage status` and a waiting writer show it). */
export interface LifecycleApplyOptions {
  /** How long to wait for another writer's lock on the bucket's lifecycle (default 0: fail at once). */
  waitMs?: number;
  command?: string;
}

/**
 * Replaces Stowage's lifecycle rules for destination `name`'s prefix by `rules` (none: removes
 * them), holding the bucket's lifecycle lock; resolves with Stowage's rules read back.
 * @throws `stowage.lock.held` when another writer holds the lock past `waitMs`; the adapter's
 *   errors (`unsupported`, `permission_denied`, `transient`).
 */
export async function applyLifecycle(
  engine: Engine,
  name: string,
  rules: readonly LifecycleRule[],
  options: LifecycleApplyOptions = {},
): Promise<LifecycleRule[]> {
  const lifecycle = lifecycleOf(engine, name);
  const spec = engine.config.destinations.find((d) => d.name === name)!;
  const bucket = await engine.registry.open({ ...spec, url: bucketRootUrl(spec.url) }, { baseDir: engine.config.baseDir });
  try {
    const lock = await acquireDestinationLock(
      { name: `${name} (bucket lifecycle)`, adapter: bucket },
      { operation: 'lifecycle', ...(options.command !== undefined && { command: options.command }) },
      // A holder that is gone leaves a lease of at most 10 minutes, which a waiting apply takes over.
      { key: LIFECYCLE_LOCK_KEY, waitMs: options.waitMs ?? 0, unlock: 'stowage destinations lifecycle apply --wait 11m' },
    );
    try {
      const readBack = await lifecycle.put(rules);
      crashPoint('lifecycle.written');
      return readBack;
    } finally {
      await lock.release();
    }
  } finally {
    await bucket.close?.();
  }
}

/** The bucket lifecycle of destination `name`. */
function lifecycleOf(engine: Engine, name: string): BucketLifecycle {
  const destination = engine.destinations.find((d) => d.name === name);
  if (!destination?.adapter.lifecycle)
    throw new CoreError(CoreErrorCode.ConfigInvalid, `destination '${name}' has no bucket lifecycle rules (a cloud-bucket feature: S3, OSS)`);
  return destination.adapter.lifecycle;
}
