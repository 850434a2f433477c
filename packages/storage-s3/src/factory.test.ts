import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { StorageErrorCode, StorageRegistry } from '@stowage/storage';
import { s3StorageFactory, parseS3Url } from './factory.js';
import { s3OptionsSchema } from './options.js';
import { S3Storage } from './s3.js';
import { S3_ARCHIVE_CLASS_FACTS, S3_ARCHIVE_CLASSES } from './archive.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const registry = new StorageRegistry().register(s3StorageFactory);
const open = (url: string, options?: unknown) => registry.open({ url, options }, { baseDir: '/tmp' });
const opened: S3Storage[] = [];
async function openS3(url: string, options?: unknown): Promise<S3Storage> {
  const storage = (await open(url, options)) as S3Storage;
  opened.push(storage);
  return storage;
}
afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
  delete process.env.STOWAGE_UNIT_KEY;
  delete process.env.STOWAGE_UNIT_SECRET;
});

describe('s3 options schema', () => {
  it('accepts no options and fills in the defaults', () => {
    expect(s3OptionsSchema.parse({})).toEqual({
      partSizeMiB: 16,
      queueSize: 4,
      listApi: 'v2',
      listPageSize: 1000,
      maxParallelism: 8,
      maxAttempts: 1,
      connectTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
    });
  });

  it('accepts every documented option', () => {
    const options = {
      region: 'eu-west-1',
      endpoint: 'https://minio.example:9000',
      forcePathStyle: true,
      accessKeyIdEnv: 'BACKUP_AWS_KEY',
      secretAccessKeyEnv: 'BACKUP_AWS_SECRET',
      sessionTokenEnv: 'BACKUP_AWS_TOKEN',
      storageClass: 'GLACIER_IR',
      sse: 'aws:kms',
      kmsKeyId: 'arn:aws:kms:eu-west-1:111122223333:key/abcd',
      partSizeMiB: 64,
      queueSize: 8,
      checksumMode: 'crc64nvme',
      requestChecksumCalculation: 'WHEN_SUPPORTED',
      conditionalWrites: true,
      listApi: 'v1',
      listPageSize: 500,
      maxParallelism: 16,
      maxAttempts: 5,
      connectTimeoutMs: 5000,
      idleTimeoutMs: 30_000,
    };
    expect(s3OptionsSchema.parse(options)).toEqual(options);
  });

  for (const name of ['secretAccessKey', 'accessKeyId', 'sessionToken', 'aws_secret_access_key', 'credentials', 'password']) {
    it(`refuses the literal secret option '${name}' without echoing its value`, async () => {
      const value = name === 'credentials' ? { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalr-do-not-print' } : 'wJalr-do-not-print';
      const error = await open('s3://bucket/prefix', { [name]: value }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: StorageErrorCode.InvalidConfig });
      const message = (error as Error).message;
      expect(message).toContain(`options.${name}: literal secrets are not allowed`);
      expect(message).toMatch(/Env'/);
      expect(message).not.toContain('wJalr');
      expect(JSON.stringify(error)).not.toContain('wJalr');
    });
  }

  it('wants environment variable names, not values, for credentials', async () => {
    await expect(open('s3://bucket', { accessKeyIdEnv: 'AKIA/EXAMPLE+KEY', secretAccessKeyEnv: 'X' })).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringContaining('options.accessKeyIdEnv: must be the NAME of an environment variable'),
    });
  });

  it('refuses inconsistent or out-of-range options, and unknown ones', async () => {
    const problems: Array<[unknown, string]> = [
      [{ accessKeyIdEnv: 'K' }, 'options.secretAccessKeyEnv: accessKeyIdEnv and secretAccessKeyEnv go together'],
      [{ secretAccessKeyEnv: 'S' }, 'options.accessKeyIdEnv: accessKeyIdEnv and secretAccessKeyEnv go together'],
      [{ sessionTokenEnv: 'T' }, 'options.sessionTokenEnv: sessionTokenEnv needs accessKeyIdEnv'],
      [{ kmsKeyId: 'key' }, `options.kmsKeyId: kmsKeyId needs sse: 'aws:kms'`],
      [{ sse: 'aws:kms:dsse' }, 'options.sse'],
      [{ partSizeMiB: 4 }, 'options.partSizeMiB'],
      [{ storageClass: 'REDUCED_REDUNDANCY' }, 'options.storageClass'],
      [{ checksumMode: 'md5' }, 'options.checksumMode'],
      [{ listPageSize: 1001 }, 'options.listPageSize'],
      [{ endpoint: 'ftp://example.com' }, 'options.endpoint: must be an http:// or https:// URL'],
      [{ endpoint: 'https://user:pass@example.com' }, 'options.endpoint: must not contain credentials'],
      [{ bucket: 'other' }, 'options: Unrecognized key'],
    ];
    for (const [options, message] of problems) {
      await expect(open('s3://bucket', options), JSON.stringify(options)).rejects.toMatchObject({
        code: StorageErrorCode.InvalidConfig,
        message: expect.stringContaining(message),
      });
    }
  });
});

describe('s3 destination URLs', () => {
  it('takes the bucket from the host and the prefix from the path', () => {
    expect(parseS3Url(new URL('s3://my-bucket'))).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Url(new URL('s3://my-bucket/'))).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Url(new URL('s3://my-bucket/backups/greaterwms/'))).toEqual({ bucket: 'my-bucket', prefix: 'backups/greaterwms' });
  });

  it('refuses credentials in the URL without echoing them, and ports, queries and bad buckets', async () => {
    const leaked = await open('s3://AKIAEXAMPLE:wJalr-do-not-print@bucket/prefix').catch((e: unknown) => e);
    expect(leaked).toMatchObject({ code: StorageErrorCode.InvalidConfig, message: expect.stringContaining('credentials in the URL') });
    expect(JSON.stringify(leaked)).not.toContain('wJalr');
    for (const [url, problem] of [
      ['s3://bucket:9000/prefix', 'a port belongs in options.endpoint'],
      ['s3://bucket/prefix?region=eu', 'no query or fragment'],
      ['s3://b/prefix', 'not a valid bucket name'],
      ['s3://bucket//double', 'invalid S3 prefix'],
      ['s3://bucket/a%5Cb', 'invalid S3 prefix'],
    ] as const) {
      await expect(open(url), url).rejects.toMatchObject({ code: StorageErrorCode.InvalidConfig, message: expect.stringContaining(problem) });
    }
  });
});

/** What every S3 destination can do with archive classes (GLACIER, DEEP_ARCHIVE). */
const ARCHIVE_CAPABILITIES = { archiveClasses: [...S3_ARCHIVE_CLASSES], archiveClassFacts: S3_ARCHIVE_CLASS_FACTS };

describe('s3StorageFactory', () => {
  it('defaults to SHA-256 checksums and conditional writes on AWS', async () => {
    const storage = await openS3('s3://bucket/backups', { region: 'eu-west-1' });
    expect(storage).toBeInstanceOf(S3Storage);
    expect(storage).toMatchObject({ bucket: 'bucket', prefix: 'backups', checksumMode: 'crc64nvme', description: 's3://bucket/backups in eu-west-1' });
    expect(storage.capabilities).toEqual({
      serverChecksums: ['crc64nvme'],
      conditionalPut: true,
      rangeReads: true,
      maxParallelism: 8,
      ...ARCHIVE_CAPABILITIES,
    });
    expect(await storage.client.config.requestChecksumCalculation()).toBe('WHEN_SUPPORTED');
    expect(storage.client.config.forcePathStyle).toBe(false);
  });

  it('defaults to the cautious settings with a custom endpoint until told otherwise', async () => {
    const storage = await openS3('s3://bucket', { endpoint: 'http://127.0.0.1:9000', maxParallelism: 3 });
    expect(storage.description).toBe('s3://bucket/ at http://127.0.0.1:9000');
    expect(storage.capabilities).toEqual({ serverChecksums: [], conditionalPut: false, rangeReads: true, maxParallelism: 3, ...ARCHIVE_CAPABILITIES });
    expect(await storage.client.config.requestChecksumCalculation()).toBe('WHEN_REQUIRED');
    expect(await storage.client.config.region()).toBe('us-east-1');
    expect(storage.client.config.forcePathStyle).toBe(true);

    const told = await openS3('s3://bucket', { endpoint: 'http://127.0.0.1:9000', checksumMode: 'crc64nvme', conditionalWrites: true });
    expect(told.capabilities).toMatchObject({ serverChecksums: ['crc64nvme'], conditionalPut: true });
  });

  it('reads credentials from the environment variables the options name', async () => {
    const options = { region: 'us-east-1', accessKeyIdEnv: 'STOWAGE_UNIT_KEY', secretAccessKeyEnv: 'STOWAGE_UNIT_SECRET' };
    await expect(open('s3://bucket', options)).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: 'environment variable STOWAGE_UNIT_KEY (named by options.accessKeyIdEnv) is not set',
    });
    process.env.STOWAGE_UNIT_KEY = 'AKIAEXAMPLE';
    process.env.STOWAGE_UNIT_SECRET = 'wJalr-do-not-print';
    const storage = await openS3('s3://bucket', options);
    expect(await storage.client.config.credentials()).toMatchObject({ accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'wJalr-do-not-print' });
    expect(storage.description).not.toContain('wJalr');
  });

  it('refuses a part size below S3’s 5 MiB minimum when built directly', async () => {
    const storage = await openS3('s3://bucket', { region: 'us-east-1' });
    expect(() => new S3Storage({ client: storage.client, bucket: 'bucket', partSize: 1024 * 1024 })).toThrow(
      expect.objectContaining({ code: StorageErrorCode.InvalidConfig }),
    );
    expect(() => new S3Storage({ client: storage.client, bucket: 'bucket', prefix: '/abs' })).toThrow(
      expect.objectContaining({ code: StorageErrorCode.InvalidConfig }),
    );
  });
});

describe("the SDK's own retries", () => {
  /** A port on 127.0.0.1 nothing listens on: each attempt is refused (ECONNREFUSED), which the SDK retries. */
  const closedPort = async () => {
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  };
  const attempts = async (maxAttempts: number) => {
    const events: unknown[] = [];
    const options = {
      endpoint: `http://127.0.0.1:${await closedPort()}`,
      accessKeyIdEnv: 'STOWAGE_UNIT_KEY',
      secretAccessKeyEnv: 'STOWAGE_UNIT_SECRET',
      maxAttempts,
    };
    Object.assign(process.env, { STOWAGE_UNIT_KEY: 'id', STOWAGE_UNIT_SECRET: 'secret' });
    const storage = (await registry.open(
      { url: 's3://bucket/some/prefix', options },
      { baseDir: '/tmp', onRetry: (event) => events.push({ ...event, code: (event.error as { code?: unknown }).code }) },
    )) as S3Storage;
    opened.push(storage);
    await expect(storage.stat('full/k.bin')).rejects.toMatchObject({ code: StorageErrorCode.Transient });
    return events;
  };

  it('are reported through the context’s onRetry (operation, adapter key, attempt, error), one per retry', async () => {
    const events = await attempts(3);
    expect(events).toEqual(
      [1, 2].map((attempt) => ({
        operation: 'HeadObject',
        key: 'full/k.bin',
        attempt,
        delayMs: expect.any(Number),
        error: expect.anything(),
        code: 'ECONNREFUSED',
      })),
    );
  });

  it('none with the default maxAttempts of 1 (the retry wrapper is the one retrier)', async () => {
    expect(await attempts(1)).toEqual([]);
  });
});

describe('the SDK Node-version warning', () => {
  it('is not printed when a client is created (it would be on every S3 command under Node 20)', () => {
    const env = { ...process.env };
    delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    const script = `import { createS3Client } from ${JSON.stringify(new URL('./factory.ts', import.meta.url).href)};
createS3Client({ endpoint: 'http://127.0.0.1:9', region: 'us-east-1', partSizeMiB: 16, queueSize: 4, listApi: 'v2', listPageSize: 1000, maxParallelism: 8 }).destroy();
console.log('created');`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, encoding: 'utf8' });
    expect(child.stdout).toBe('created\n');
    expect(child.stderr).not.toMatch(/NodeVersionSupportWarning|AWS SDK/);
  });
});
