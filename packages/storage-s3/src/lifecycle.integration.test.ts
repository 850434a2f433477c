import { randomUUID } from 'node:crypto';
import {
  CreateBucketCommand,
  GetBucketLifecycleConfigurationCommand,
  PutBucketLifecycleConfigurationCommand,
  S3Client,
  type LifecycleRule,
} from '@aws-sdk/client-s3';
import { StorageRegistry } from '@stowage/storage';
import { describeBucketLifecycle, type BucketRule } from '@stowage/storage-testkit';
import { afterAll, beforeAll } from 'vitest';
import { s3StorageFactory } from './factory.js';
import type { S3Storage } from './s3.js';
import { startS3rver, type S3rverProcess } from './s3rver.test-support.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
process.env.STOWAGE_TEST_S3_KEY = 'S3RVER';
process.env.STOWAGE_TEST_S3_SECRET = 'S3RVER';

const BUCKET = 'lifecycle-tests';
let server: S3rverProcess;
let admin: S3Client;

beforeAll(async () => {
  server = await startS3rver();
  admin = new S3Client({
    region: 'us-east-1',
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  await admin.send(new CreateBucketCommand({ Bucket: BUCKET }));
}, 60_000);

afterAll(async () => {
  admin?.destroy();
  await server?.stop();
});

/** Every rule of the bucket, through the SDK (none when the bucket has no configuration). */
async function allRules(): Promise<LifecycleRule[]> {
  try {
    return (await admin.send(new GetBucketLifecycleConfigurationCommand({ Bucket: BUCKET }))).Rules ?? [];
  } catch (error) {
    if ((error as Error).name === 'NoSuchLifecycleConfiguration') return [];
    throw error;
  }
}

const neutral = (rule: LifecycleRule): BucketRule => ({
  id: rule.ID ?? '',
  prefix: rule.Filter?.Prefix ?? rule.Prefix ?? '',
  ...(rule.Transitions?.[0] && { days: rule.Transitions[0].Days!, storageClass: rule.Transitions[0].StorageClass! }),
});

describeBucketLifecycle({
  name: 'S3Storage on the s3rver launcher, through the real SDK',
  storageClass: 'DEEP_ARCHIVE',
  async create() {
    const spec = {
      url: `s3://${BUCKET}/t/${randomUUID()}`,
      options: { endpoint: server.endpoint, forcePathStyle: true, accessKeyIdEnv: 'STOWAGE_TEST_S3_KEY', secretAccessKeyEnv: 'STOWAGE_TEST_S3_SECRET' },
    };
    const storage = (await new StorageRegistry().register(s3StorageFactory).open(spec, { baseDir: process.cwd() })) as S3Storage;
    return { lifecycle: storage.lifecycle, root: `${storage.prefix}/` };
  },
  bucketRules: async () => (await allRules()).map(neutral),
  async addForeignRule(id, prefix) {
    const Rules = [...(await allRules()), { ID: id, Filter: { Prefix: prefix }, Status: 'Enabled' as const, Expiration: { Days: 30 } }];
    await admin.send(new PutBucketLifecycleConfigurationCommand({ Bucket: BUCKET, LifecycleConfiguration: { Rules } }));
  },
  parseDocument: (text) => (JSON.parse(text) as { Rules: LifecycleRule[] }).Rules.map(neutral),
});
