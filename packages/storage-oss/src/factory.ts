import { StorageError, StorageErrorCode, assertValidPrefix, type AdapterFactory } from '@stowage/storage';
import { z } from 'zod';
import { OssStorage } from './oss.js';

/** Names of environment variables: the options say where the secrets are, never what they are. */
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be the name of an environment variable (A-Z, 0-9 and _), not a credential');

/** A key that would put a credential in the config file. */
const noLiteralSecret = (envOption: string) =>
  z
    .never({
      error: `credentials do not belong in the configuration: put the value in an environment variable named by ${envOption}`,
    })
    .optional();

const ossOptionsSchema = z.strictObject({
  /** Region id: `cn-hangzhou` (or `oss-cn-hangzhou`). */
  region: z.string().regex(/^(oss-)?[a-z]{2,}(-[a-z0-9]+)+$/, 'must be an OSS region id such as cn-hangzhou'),
  /** Endpoint instead of the region's public one: a host name or an http(s) URL. */
  endpoint: z.string().min(1).optional(),
  accessKeyIdEnv: envName.default('OSS_ACCESS_KEY_ID'),
  accessKeySecretEnv: envName.default('OSS_ACCESS_KEY_SECRET'),
  /** Set for temporary (STS) credentials. */
  securityTokenEnv: envName.optional(),
  storageClass: z.enum(['Standard', 'IA', 'Archive', 'ColdArchive']).default('Standard'),
  /** MiB per multipart part (OSS allows 100 KiB to 5 GiB), and the largest object sent in one request. */
  partSizeMiB: z.number().min(0.1).max(5120).default(8),
  /** Parts uploaded at once. */
  parallel: z.number().int().min(1).max(64).default(4),
  signatureVersion: z.enum(['v1', 'v4']).default('v4'),
  secure: z.boolean().default(true),
  timeoutMs: z.number().int().positive().default(60_000),
  accessKeyId: noLiteralSecret('accessKeyIdEnv'),
  accessKeySecret: noLiteralSecret('accessKeySecretEnv'),
  securityToken: noLiteralSecret('securityTokenEnv'),
  stsToken: noLiteralSecret('securityTokenEnv'),
});

/** The options of an `oss:` destination, after validation and defaults. */
export type OssDestinationOptions = z.output<typeof ossOptionsSchema>;

/**
 * Opens `oss://<bucket>/<prefix>` destinations as an `OssStorage`. Credentials come from the
 * environment variables named by `accessKeyIdEnv`, `accessKeySecretEnv` (default
 * `OSS_ACCESS_KEY_ID`, `OSS_ACCESS_KEY_SECRET`) and `securityTokenEnv`, read when the adapter is
 * created; options holding a credential itself are refused. A download cut mid-stream resumes,
 * reported through the context's `onRetry`.
 */
export const ossStorageFactory: AdapterFactory<OssDestinationOptions> = {
  scheme: 'oss',
  optionsSchema: ossOptionsSchema,
  create(url, options, { onRetry }) {
    const { bucket, prefix } = parseOssUrl(url);
    const variable = (name: string, option: string) => {
      const value = process.env[name];
      if (!value) {
        throw new StorageError(StorageErrorCode.InvalidConfig, `the environment variable ${name} (options.${option}) is not set`, {
          context: { url: url.href, variable: name },
        });
      }
      return value;
    };
    const securityToken = options.securityTokenEnv === undefined ? undefined : variable(options.securityTokenEnv, 'securityTokenEnv');
    return new OssStorage({
      bucket,
      prefix,
      region: options.region,
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      credentials: {
        accessKeyId: variable(options.accessKeyIdEnv, 'accessKeyIdEnv'),
        accessKeySecret: variable(options.accessKeySecretEnv, 'accessKeySecretEnv'),
        ...(securityToken === undefined ? {} : { securityToken }),
      },
      storageClass: options.storageClass,
      partSize: Math.round(options.partSizeMiB * 1024 * 1024),
      parallel: options.parallel,
      signatureVersion: options.signatureVersion,
      secure: options.secure,
      timeoutMs: options.timeoutMs,
      onRetry,
    });
  },
};

/** Bucket and key prefix (`''` or ending with `/`) of `oss://bucket/prefix`. */
export function parseOssUrl(url: URL): { bucket: string; prefix: string } {
  const invalid = (problem: string) =>
    new StorageError(StorageErrorCode.InvalidConfig, `'oss://${url.host}${url.pathname}' is not a valid OSS destination: ${problem}`, {
      context: { bucket: url.hostname },
    });
  // Never echo a user name or password someone put in the URL.
  if (url.username || url.password) {
    throw invalid('credentials do not belong in the URL; name their environment variables in the options');
  }
  if (url.port || url.search || url.hash) throw invalid('write it as oss://<bucket>/<prefix>, without port, query or fragment');
  const bucket = url.hostname;
  if (!/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw invalid(`'${bucket}' is not a bucket name (3-63 of a-z, 0-9 and -)`);
  }
  let prefix: string;
  try {
    prefix = decodeURIComponent(url.pathname).replace(/^\/+/, '');
  } catch {
    throw invalid('the prefix is not valid percent-encoding');
  }
  if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';
  try {
    assertValidPrefix(prefix);
  } catch (error) {
    throw invalid(`the prefix is not usable: ${(error as Error).message}`);
  }
  return { bucket, prefix };
}
