import { StorageErrorCode, type BucketLifecycle, type LifecycleRule } from '@stowage/storage';
import { describe, expect, it } from 'vitest';

/** A rule of a bucket's whole lifecycle configuration, as the provider's own client reads it back. */
export interface BucketRule {
  id: string;
  prefix: string;
  /** Transition days and class, for a transition rule. */
  days?: number;
  storageClass?: string;
}

export interface BucketLifecycleSuiteOptions {
  name: string;
  /** A fresh adapter's lifecycle over a fresh prefix of the bucket, and that prefix (`''` or ending with `/`). */
  create(): Promise<{ lifecycle: BucketLifecycle; root: string }>;
  /** An archive class the backend transitions to, and a class name it does not know. */
  storageClass: string;
  /** Every rule of the bucket, read with the provider's client (not through the adapter). */
  bucketRules(): Promise<BucketRule[]>;
  /** Adds a rule someone else wrote (an expiration of `prefix`), with the provider's client. */
  addForeignRule(id: string, prefix: string): Promise<void>;
  /** The rules of a document `BucketLifecycle.document` printed, parsed with an ordinary parser. */
  parseDocument(text: string): BucketRule[];
}

/**
 * The `BucketLifecycle` contract against a real server: the printed document parses and says the
 * rules; put writes them under the adapter's prefix and reads them back; a second put changes
 * nothing; rules that are not Stowage's (foreign ids, or another prefix's) are kept; an empty
 * put removes only Stowage's rules of this prefix; a class the backend lacks is refused first.
 */
export function describeBucketLifecycle(options: BucketLifecycleSuiteOptions): void {
  const rules = (storageClass: string): LifecycleRule[] => [
    { prefix: 'full/', days: 30, storageClass },
    { prefix: 'incremental/', days: 30, storageClass },
  ];
  const sorted = (list: BucketRule[]) => [...list].sort((a, b) => a.id.localeCompare(b.id));

  describe(`${options.name}: bucket lifecycle rules`, () => {
    it('prints the document the provider takes: parsed back it names the prefixes, days and class, ids stowage-<prefix>', async () => {
      const { lifecycle, root } = await options.create();
      const { text } = lifecycle.document(rules(options.storageClass));
      expect(options.parseDocument(text)).toEqual([
        { id: `stowage-${root}full/`, prefix: `${root}full/`, days: 30, storageClass: options.storageClass },
        { id: `stowage-${root}incremental/`, prefix: `${root}incremental/`, days: 30, storageClass: options.storageClass },
      ]);
    });

    it('put writes the rules, reads them back, is idempotent, keeps foreign rules and other prefixes, and an empty put removes only its own', async () => {
      const [mine, neighbour] = await Promise.all([options.create(), options.create()]);
      const foreignId = `logs-expire-${mine.root.replace(/\W/g, '')}`;
      await options.addForeignRule(foreignId, `${mine.root}logs/`);
      await neighbour.lifecycle.put([{ prefix: 'full/', days: 90, storageClass: options.storageClass }]);

      const readBack = await mine.lifecycle.put(rules(options.storageClass));
      expect(readBack).toEqual(rules(options.storageClass));
      expect(await mine.lifecycle.get()).toEqual(rules(options.storageClass));
      const before = sorted(await options.bucketRules());
      expect(before.map((r) => r.id)).toEqual(
        expect.arrayContaining([foreignId, `stowage-${mine.root}full/`, `stowage-${mine.root}incremental/`, `stowage-${neighbour.root}full/`]),
      );
      expect(before.find((r) => r.id === `stowage-${mine.root}full/`)).toEqual({
        id: `stowage-${mine.root}full/`,
        prefix: `${mine.root}full/`,
        days: 30,
        storageClass: options.storageClass,
      });

      await mine.lifecycle.put(rules(options.storageClass));
      expect(sorted(await options.bucketRules()), 'a second put leaves the bucket as it was').toEqual(before);

      // A changed policy replaces Stowage's rules of this prefix only.
      await mine.lifecycle.put([{ prefix: 'full/', days: 7, storageClass: options.storageClass }]);
      const changed = await options.bucketRules();
      expect(changed.filter((r) => r.id.startsWith(`stowage-${mine.root}`))).toEqual([
        { id: `stowage-${mine.root}full/`, prefix: `${mine.root}full/`, days: 7, storageClass: options.storageClass },
      ]);

      expect(await mine.lifecycle.put([])).toEqual([]);
      const after = (await options.bucketRules()).map((r) => r.id);
      expect(after).toEqual(expect.arrayContaining([foreignId, `stowage-${neighbour.root}full/`]));
      expect(after.filter((id) => id.startsWith(`stowage-${mine.root}`))).toEqual([]);
      expect(await neighbour.lifecycle.get()).toEqual([{ prefix: 'full/', days: 90, storageClass: options.storageClass }]);
    });

    it("keeps a nested destination's rules and a user's rule named stowage-… unchanged, through a put and an empty put", async () => {
      const mine = await options.create();
      const nested = { id: `stowage-${mine.root}nested/full/`, prefix: `${mine.root}nested/full/` };
      const named = { id: `stowage-${mine.root.replace(/\W/g, '')}-keep`, prefix: `${mine.root}full/` };
      for (const rule of [nested, named]) await options.addForeignRule(rule.id, rule.prefix);
      const theirs = async () => sorted((await options.bucketRules()).filter((r) => r.id === nested.id || r.id === named.id));
      const before = await theirs();
      expect(before.map((r) => r.id)).toEqual(sorted([nested, named] as BucketRule[]).map((r) => r.id));

      expect(await mine.lifecycle.put(rules(options.storageClass))).toEqual(rules(options.storageClass));
      expect(await theirs()).toEqual(before);
      expect(await mine.lifecycle.put([])).toEqual([]);
      expect(await theirs()).toEqual(before);
    });

    it('refuses a class the backend cannot transition to, and zero days, before writing anything', async () => {
      const { lifecycle } = await options.create();
      const before = sorted(await options.bucketRules());
      await expect(lifecycle.put([{ prefix: 'full/', days: 30, storageClass: 'NO_SUCH_CLASS' }])).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });
      await expect(lifecycle.put([{ prefix: 'full/', days: 0, storageClass: options.storageClass }])).rejects.toThrow(RangeError);
      expect(sorted(await options.bucketRules())).toEqual(before);
    });
  });
}
