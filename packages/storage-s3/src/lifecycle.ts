import {
  DeleteBucketLifecycleCommand,
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  type LifecycleRule as S3LifecycleRule,
  type S3Client,
  type TransitionStorageClass,
} from '@aws-sdk/client-s3';
import { assertLifecycleRules, isOwnLifecycleRule, lifecycleRuleId, type BucketLifecycle, type LifecycleRule } from '@stowage/storage';
import { S3_ARCHIVE_CLASSES } from './archive.js';
import { toStorageError, type S3Operation } from './errors.js';

/*
 * Bucket lifecycle rules on S3 (GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration,
 * DeleteBucketLifecycle). A Put replaces the bucket's whole configuration, so Stowage reads it,
 * swaps its own rules (id `stowage-<prefix>`, under the adapter's prefix) and writes the rest back
 * as the SDK returned them.
 */

/** What the lifecycle operations need of the adapter. */
export interface S3LifecycleContext {
  client: S3Client;
  bucket: string;
  description: string;
  /** The adapter's folder in the bucket: `''` or ending with `/`. */
  root: string;
  op(operation: string, key: string | undefined, signal: AbortSignal | undefined): S3Operation;
}

/** S3's rule for one neutral rule: a prefix filter and one transition. */
function s3Rule(root: string, rule: LifecycleRule): S3LifecycleRule {
  const prefix = root + rule.prefix;
  return {
    ID: lifecycleRuleId(prefix),
    Filter: { Prefix: prefix },
    Status: 'Enabled',
    Transitions: [{ Days: rule.days, StorageClass: rule.storageClass as TransitionStorageClass }],
  };
}

/** The `BucketLifecycle` of an S3 adapter. */
export function s3Lifecycle(s3: S3LifecycleContext): BucketLifecycle {
  const send = async <T>(operation: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (error) {
      throw toStorageError(error, s3.op(operation, undefined, signal));
    }
  };
  const sendOptions = (signal: AbortSignal | undefined) => (signal ? { abortSignal: signal } : {});

  async function readAll(signal: AbortSignal | undefined) {
    try {
      return await s3.client.send(new GetBucketLifecycleConfigurationCommand({ Bucket: s3.bucket }), sendOptions(signal));
    } catch (error) {
      if ((error as { name?: unknown }).name === 'NoSuchLifecycleConfiguration') return { Rules: [] };
      throw toStorageError(error, s3.op('getLifecycle', undefined, signal));
    }
  }

  const own = (rule: S3LifecycleRule) => isOwnLifecycleRule(rule.ID, rule.Filter?.Prefix ?? rule.Prefix, s3.root);

  async function get({ signal }: { signal?: AbortSignal } = {}): Promise<LifecycleRule[]> {
    const { Rules = [] } = await readAll(signal);
    return Rules.filter(own).flatMap((rule) =>
      (rule.Transitions ?? []).map((t) => ({
        prefix: (rule.Filter?.Prefix ?? rule.Prefix ?? '').slice(s3.root.length),
        days: t.Days ?? 0,
        storageClass: t.StorageClass ?? '',
      })),
    );
  }

  return {
    document: (rules) => ({ format: 'json', text: `${JSON.stringify({ Rules: rules.map((rule) => s3Rule(s3.root, rule)) }, null, 2)}\n` }),
    get,
    async put(rules, { signal } = {}) {
      assertLifecycleRules(rules, S3_ARCHIVE_CLASSES, s3.description);
      const current = await readAll(signal);
      const kept = (current.Rules ?? []).filter((rule) => !own(rule));
      const next = [...kept, ...rules.map((rule) => s3Rule(s3.root, rule))];
      if (next.length === 0) {
        await send('putLifecycle', signal, () => s3.client.send(new DeleteBucketLifecycleCommand({ Bucket: s3.bucket }), sendOptions(signal)));
      } else {
        await send('putLifecycle', signal, () =>
          s3.client.send(
            new PutBucketLifecycleConfigurationCommand({
              Bucket: s3.bucket,
              LifecycleConfiguration: { Rules: next },
              ...('TransitionDefaultMinimumObjectSize' in current &&
                current.TransitionDefaultMinimumObjectSize !== undefined && { TransitionDefaultMinimumObjectSize: current.TransitionDefaultMinimumObjectSize }),
            }),
            sendOptions(signal),
          ),
        );
      }
      return get(signal ? { signal } : {});
    },
  };
}
