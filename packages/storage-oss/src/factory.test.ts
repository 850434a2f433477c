import { StorageErrorCode, StorageRegistry } from '@stowage/storage';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ossStorageFactory, parseOssUrl } from './factory.js';
import { OssStorage } from './oss.js';

const registry = new StorageRegistry().register(ossStorageFactory);
const open = (url: string, options: Record<string, unknown> = {}) => registry.open({ url, options: { region: 'cn-hangzhou', ...options } }, { baseDir: '/' });
const ENV = { OSS_ACCESS_KEY_ID: 'LTAI5tFactoryTestId', OSS_ACCESS_KEY_SECRET: 'factory-test-secret', OSS_TEST_STS: 'sts-token' };

describe('parseOssUrl', () => {
  it.each([
    ['oss://backups', ''],
    ['oss://backups/', ''],
    ['oss://backups/prod/orders', 'prod/orders/'],
    ['oss://backups/prod/orders/', 'prod/orders/'],
    ['oss://backups/with%20space', 'with space/'],
  ])('%s → prefix %j', (url, prefix) => {
    expect(parseOssUrl(new URL(url))).toEqual({ bucket: 'backups', prefix });
  });

  it.each([
    ['oss://Backups/x', 'not a bucket name'],
    ['oss://ab/x', 'not a bucket name'],
    ['oss://backups:8080/x', 'without port'],
    ['oss://backups/x?versionId=1', 'without port, query or fragment'],
    ['oss://backups/a//b', 'empty'],
    ['oss://backups/a/%5Cb', 'backslash'],
    ['oss://backups/%E0%A4%A', 'percent-encoding'],
  ])('refuses %s', (url, problem) => {
    expect(() => parseOssUrl(new URL(url))).toThrow(
      expect.objectContaining({ code: StorageErrorCode.InvalidConfig, message: expect.stringContaining(problem) }),
    );
  });

  it('refuses credentials in the URL without repeating them', () => {
    const error = (() => {
      try {
        parseOssUrl(new URL('oss://LTAIuser:TopSecret@backups/x'));
      } catch (caught) {
        return caught as Error;
      }
    })();
    expect(error).toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringContaining('credentials do not belong in the URL'),
    });
    expect(JSON.stringify(error) + error!.message).not.toContain('TopSecret');
  });
});

describe('ossStorageFactory', () => {
  beforeEach(() => void Object.assign(process.env, ENV));
  afterEach(() => {
    for (const name of Object.keys(ENV)) delete process.env[name];
  });

  it('fills in defaults', () => {
    expect(ossStorageFactory.optionsSchema.parse({ region: 'cn-hangzhou' })).toEqual({
      region: 'cn-hangzhou',
      accessKeyIdEnv: 'OSS_ACCESS_KEY_ID',
      accessKeySecretEnv: 'OSS_ACCESS_KEY_SECRET',
      storageClass: 'Standard',
      partSizeMiB: 8,
      parallel: 4,
      signatureVersion: 'v4',
      secure: true,
      timeoutMs: 60_000,
    });
  });

  it('opens oss: URLs as OssStorage, reading credentials from the named environment variables', async () => {
    const storage = await open('oss://backups/prod', {
      securityTokenEnv: 'OSS_TEST_STS',
      storageClass: 'IA',
      signatureVersion: 'v1',
    });
    expect(storage).toBeInstanceOf(OssStorage);
    expect(storage.description).toBe('oss://backups/prod/');
    expect(storage.capabilities).toMatchObject({ serverChecksums: ['crc64ecma'], conditionalPut: true, rangeReads: true });
    expect(storage.description + JSON.stringify(storage)).not.toContain(ENV.OSS_ACCESS_KEY_SECRET);
    await storage.close?.();
  });

  it.each(['accessKeyId', 'accessKeySecret', 'securityToken', 'stsToken'])('refuses a literal %s in the options without repeating it', async (option) => {
    const error = (await open('oss://backups/x', { [option]: 'LiteralSecretValue' }).catch((caught: unknown) => caught)) as Error;
    expect(error).toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringMatching(new RegExp(`^options\\.${option}: credentials do not belong in the configuration`)),
    });
    expect(error.message).not.toContain('LiteralSecretValue');
  });

  it('refuses a secret given where an environment variable name belongs, without repeating it', async () => {
    const error = (await open('oss://backups/x', { accessKeySecretEnv: 'kP3xSecretLooking+Value/9' }).catch((caught: unknown) => caught)) as Error;
    expect(error).toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringContaining('options.accessKeySecretEnv: must be the name of an environment variable'),
    });
    expect(error.message).not.toContain('kP3xSecretLooking');
  });

  it('names a missing environment variable', async () => {
    delete process.env.OSS_ACCESS_KEY_SECRET;
    await expect(open('oss://backups/x')).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: 'the environment variable OSS_ACCESS_KEY_SECRET (options.accessKeySecretEnv) is not set',
    });
    await expect(open('oss://backups/x', { securityTokenEnv: 'OSS_TEST_MISSING' })).rejects.toMatchObject({
      message: expect.stringContaining('OSS_TEST_MISSING'),
    });
  });

  it.each([
    [{ region: 'Hangzhou' }, 'options.region'],
    [{ partSizeMiB: 0.05 }, 'options.partSizeMiB'],
    [{ parallel: 0 }, 'options.parallel'],
    [{ storageClass: 'Glacier' }, 'options.storageClass'],
    [{ signatureVersion: 'v2' }, 'options.signatureVersion'],
    [{ acessKeyIdEnv: 'X' }, 'acessKeyIdEnv'],
  ])('refuses bad options: %j', async (options, problem) => {
    await expect(open('oss://backups/x', options)).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringContaining(problem),
    });
  });
});
