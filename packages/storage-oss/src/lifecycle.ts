import { assertLifecycleRules, isOwnLifecycleRule, lifecycleRuleId, type BucketLifecycle, type LifecycleRule } from '@stowage/storage';

/*
 * Bucket lifecycle rules on OSS (GetBucketLifecycle, PutBucketLifecycle, DeleteBucketLifecycle,
 * through ali-oss). A Put replaces the bucket's whole configuration, so Stowage reads it, swaps
 * its own rules (id `stowage-<prefix>`, under the adapter's prefix) and writes the others back as
 * ali-oss returned them.
 */

/** A rule as ali-oss reads and writes it (element names with a lower-case first letter). */
interface AliLifecycleRule {
  id?: string;
  prefix?: string;
  status?: string;
  transition?: { days?: string | number; storageClass?: string } | Array<{ days?: string | number; storageClass?: string }>;
  [element: string]: unknown;
}

/** The part of the ali-oss client the lifecycle operations use. */
export interface AliOssLifecycleClient {
  getBucketLifecycle(bucket: string): Promise<{ rules: AliLifecycleRule[] | null }>;
  putBucketLifecycle(bucket: string, rules: AliLifecycleRule[]): Promise<unknown>;
  deleteBucketLifecycle(bucket: string): Promise<unknown>;
}

/** What the lifecycle operations need of the adapter. */
export interface OssLifecycleContext {
  client: AliOssLifecycleClient;
  bucket: string;
  description: string;
  /** The adapter's prefix: `''` or ending with `/`. */
  root: string;
  /** Classes a rule may transition to. */
  storageClasses: readonly string[];
  /** Runs a request, mapping its error onto a StorageError. */
  call<T>(operation: string, request: () => Promise<T>, signal: AbortSignal | undefined): Promise<T>;
}

const escapeXml = (text: string) => text.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`);

/** The `BucketLifecycle` of an OSS adapter. */
export function ossLifecycle(oss: OssLifecycleContext): BucketLifecycle {
  const aliRule = (rule: LifecycleRule): AliLifecycleRule => {
    const prefix = oss.root + rule.prefix;
    return { id: lifecycleRuleId(prefix), prefix, status: 'Enabled', transition: { days: rule.days, storageClass: rule.storageClass } };
  };
  const own = (rule: AliLifecycleRule) => isOwnLifecycleRule(rule.id, rule.prefix, oss.root);

  async function readAll(signal: AbortSignal | undefined): Promise<AliLifecycleRule[]> {
    try {
      return (await oss.call('getLifecycle', () => oss.client.getBucketLifecycle(oss.bucket), signal)).rules ?? [];
    } catch (error) {
      if ((error as { context?: { ossCode?: unknown } }).context?.ossCode === 'NoSuchLifecycle') return [];
      throw error;
    }
  }

  async function get({ signal }: { signal?: AbortSignal } = {}): Promise<LifecycleRule[]> {
    return (await readAll(signal)).filter(own).flatMap((rule) =>
      [rule.transition ?? []].flat().map((t) => ({
        prefix: (rule.prefix ?? '').slice(oss.root.length),
        days: Number(t.days),
        storageClass: t.storageClass ?? '',
      })),
    );
  }

  return {
    document: (rules) => ({
      format: 'xml',
      text:
        '<?xml version="1.0" encoding="UTF-8"?>\n<LifecycleConfiguration>\n' +
        rules
          .map(aliRule)
          .map(
            (rule) =>
              `  <Rule>\n    <ID>${escapeXml(rule.id!)}</ID>\n    <Prefix>${escapeXml(rule.prefix!)}</Prefix>\n    <Status>Enabled</Status>\n` +
              `    <Transition>\n      <Days>${(rule.transition as { days: number }).days}</Days>\n      <StorageClass>${(rule.transition as { storageClass: string }).storageClass}</StorageClass>\n    </Transition>\n  </Rule>\n`,
          )
          .join('') +
        '</LifecycleConfiguration>\n',
    }),
    get,
    async put(rules, { signal } = {}) {
      assertLifecycleRules(rules, oss.storageClasses, oss.description);
      const kept = (await readAll(signal)).filter((rule) => !own(rule));
      const next = [...kept, ...rules.map(aliRule)];
      if (next.length === 0) await oss.call('putLifecycle', () => oss.client.deleteBucketLifecycle(oss.bucket), signal);
      else await oss.call('putLifecycle', () => oss.client.putBucketLifecycle(oss.bucket, structuredClone(next)), signal);
      return get(signal ? { signal } : {});
    },
  };
}
