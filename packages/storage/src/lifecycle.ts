import type { LifecycleRule } from './contract.js';
import { StorageError, StorageErrorCode } from './errors.js';

/** Ids of the lifecycle rules Stowage writes start with this; other rules are never touched. */
export const STOWAGE_RULE_ID_PREFIX = 'stowage-';

/** The id of Stowage's rule for a bucket-level prefix (`backups/orders/full/`): unique in the bucket, at most 255 bytes. */
export function lifecycleRuleId(bucketPrefix: string): string {
  const id = `${STOWAGE_RULE_ID_PREFIX}${bucketPrefix}`;
  if (Buffer.byteLength(id) > 255)
    throw new StorageError(StorageErrorCode.Unsupported, `the prefix '${bucketPrefix}' is too long for a lifecycle rule id (255 bytes)`);
  return id;
}

/**
 * Whether a bucket rule with `id` and `bucketPrefix` is Stowage's, for an adapter whose objects
 * are under `root`: its id is the one `lifecycleRuleId` gives its prefix, and that prefix is one
 * folder of the adapter's (`<root><folder>/`). A rule of a destination nested deeper (`<root>x/full/`,
 * or any prefixed destination when `root` is the bucket's root) is that destination's, and a
 * rule someone else wrote (another id, even one starting with `stowage-`) is theirs.
 */
export const isOwnLifecycleRule = (id: string | undefined, bucketPrefix: string | undefined, root: string): boolean =>
  bucketPrefix !== undefined &&
  id === `${STOWAGE_RULE_ID_PREFIX}${bucketPrefix}` &&
  bucketPrefix.startsWith(root) &&
  /^[^/]+\/$/.test(bucketPrefix.slice(root.length));

/** Checks `rules` before anything is written: whole days of at least 1, a class the backend transitions to, distinct prefixes. */
export function assertLifecycleRules(rules: readonly LifecycleRule[], storageClasses: readonly string[], where: string): void {
  const seen = new Set<string>();
  for (const rule of rules) {
    if (!Number.isSafeInteger(rule.days) || rule.days < 1)
      throw new RangeError(`a lifecycle rule's days must be a whole number of at least 1, not ${rule.days}`);
    if (!storageClasses.includes(rule.storageClass)) {
      throw new StorageError(
        StorageErrorCode.Unsupported,
        `${where} has no archive class '${rule.storageClass}' for a lifecycle rule (use one of ${storageClasses.join(', ')})`,
        { context: { storageClass: rule.storageClass } },
      );
    }
    if (seen.has(rule.prefix)) throw new RangeError(`two lifecycle rules for the prefix '${rule.prefix}'`);
    seen.add(rule.prefix);
  }
}
