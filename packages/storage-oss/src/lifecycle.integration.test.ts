import OSS from 'ali-oss';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { describeBucketLifecycle, type BucketRule } from '@stowage/storage-testkit';
import { afterAll, beforeAll } from 'vitest';
import { OssStorage } from './oss.js';

const KEYS = { accessKeyId: 'LTAI5tStowageTestKey', accessKeySecret: 'Zq8nYtSecretThatMustNeverBePrinted' };
const BUCKET = 'stowage-lifecycle-test';

/** A rule as ali-oss reads it. */
interface AliRule {
  id: string;
  prefix: string;
  status: string;
  transition?: { days: string; storageClass: string };
  expiration?: { days: string };
}
/** The lifecycle calls of ali-oss, which @types/ali-oss declares only in part. */
interface LifecycleCalls {
  getBucketLifecycle(bucket: string): Promise<{ rules: AliRule[] | null }>;
  putBucketLifecycle(bucket: string, rules: object[]): Promise<unknown>;
}

let server: OssTestServer;
let admin: LifecycleCalls;
beforeAll(async () => {
  server = await startOssTestServer({ ...KEYS, buckets: [BUCKET] });
  admin = new OSS({ ...KEYS, endpoint: server.endpoint, region: 'oss-cn-hangzhou', bucket: BUCKET }) as unknown as LifecycleCalls;
});
afterAll(() => server.close());

/** Every rule of the bucket, through ali-oss (none when the bucket has no configuration). */
async function allRules(): Promise<AliRule[]> {
  try {
    return (await admin.getBucketLifecycle(BUCKET)).rules ?? [];
  } catch (error) {
    if ((error as { code?: unknown }).code === 'NoSuchLifecycle') return [];
    throw error;
  }
}

const neutral = (rule: { id: string; prefix: string; transition?: { days: string; storageClass: string } }): BucketRule => ({
  id: rule.id,
  prefix: rule.prefix,
  ...(rule.transition && { days: Number(rule.transition.days), storageClass: rule.transition.storageClass }),
});

let prefixes = 0;
describeBucketLifecycle({
  name: 'OssStorage on the OSS test server, through ali-oss',
  storageClass: 'ColdArchive',
  async create() {
    const storage = new OssStorage({ bucket: BUCKET, prefix: `t${++prefixes}/`, region: 'cn-hangzhou', endpoint: server.endpoint, credentials: KEYS });
    return { lifecycle: storage.lifecycle, root: storage.prefix };
  },
  bucketRules: async () => (await allRules()).map(neutral),
  async addForeignRule(id, prefix) {
    await admin.putBucketLifecycle(BUCKET, [...(await allRules()), { id, prefix, status: 'Enabled', expiration: { days: 30 } }]);
  },
  parseDocument: (text) =>
    [...text.matchAll(/<Rule>([\s\S]*?)<\/Rule>/g)].map(([, rule]) => {
      const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(rule!)?.[1] ?? '';
      return neutral({ id: field('ID'), prefix: field('Prefix'), transition: { days: field('Days'), storageClass: field('StorageClass') } });
    }),
});
