import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { StorageError, StorageErrorCode, type AdapterFactory, type RetryOptions } from '@stowage/storage';
import { s3OptionsSchema, type S3DestinationOptions } from './options.js';
import { S3Storage } from './s3.js';

const MiB = 1024 * 1024;

/**
 * Opens `s3://bucket/prefix` destinations as an `S3Storage`; `options` are validated by
 * `s3OptionsSchema` (see the package README for the table). With a custom `endpoint` the defaults
 * are the cautious ones (`checksumMode: 'none'`, `conditionalWrites: false`,
 * `requestChecksumCalculation: 'WHEN_REQUIRED'`, path-style requests) until a probe shows more.
 * A download cut mid-stream resumes, reported through the context's `onRetry`, as are the SDK's
 * own retries (`maxAttempts` above 1).
 */
export const s3StorageFactory: AdapterFactory<S3DestinationOptions> = {
  scheme: 's3',
  optionsSchema: s3OptionsSchema,
  create(url, options, { onRetry }) {
    const { bucket, prefix } = parseS3Url(url);
    const custom = options.endpoint !== undefined;
    return new S3Storage({
      client: createS3Client(options, onRetry && { root: prefix === '' ? '' : `${prefix}/`, onRetry }),
      bucket,
      prefix,
      description: `s3://${bucket}/${prefix}${custom ? ` at ${new URL(options.endpoint!).origin}` : options.region ? ` in ${options.region}` : ''}`,
      checksumMode: options.checksumMode ?? (custom ? 'none' : 'crc64nvme'),
      conditionalWrites: options.conditionalWrites ?? !custom,
      storageClass: options.storageClass,
      sse: options.sse,
      kmsKeyId: options.kmsKeyId,
      partSize: options.partSizeMiB * MiB,
      queueSize: options.queueSize,
      listApi: options.listApi,
      listPageSize: options.listPageSize,
      maxParallelism: options.maxParallelism,
      onRetry,
    });
  },
  async probe(url, options, context) {
    const { probeS3Storage, endpointProbe } = await import('./probe.js');
    const storage = this.create(url, options, context) as S3Storage;
    try {
      return endpointProbe(await probeS3Storage(storage));
    } finally {
      await storage.close();
    }
  },
};

/** Bucket and prefix of an `s3://bucket/prefix` URL; refuses credentials, ports, queries and fragments in it. */
export function parseS3Url(url: URL): { bucket: string; prefix: string } {
  const refuse = (problem: string) =>
    new StorageError(StorageErrorCode.InvalidConfig, `invalid S3 destination URL: ${problem}`, {
      context: { bucket: url.hostname },
    });
  if (url.protocol !== 's3:') throw refuse(`the scheme must be s3:, not ${url.protocol}`);
  // Never echo the URL itself here: it may hold the very credentials being refused.
  if (url.username !== '' || url.password !== '') {
    throw refuse('credentials in the URL are not allowed (use accessKeyIdEnv/secretAccessKeyEnv or the SDK default chain)');
  }
  if (url.port !== '') throw refuse(`a port belongs in options.endpoint, not in the s3:// URL`);
  if (url.search !== '' || url.hash !== '') throw refuse('no query or fragment is allowed');
  const bucket = decodeURIComponent(url.hostname);
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(bucket)) throw refuse(`'${bucket}' is not a valid bucket name`);
  const prefix = decodeURIComponent(url.pathname).replace(/^\//, '').replace(/\/$/, '');
  return { bucket, prefix };
}

/**
 * The SDK client for a destination's options: endpoint, path style, region, credentials from the
 * environment variables the options name (or the SDK default chain), checksum calculation,
 * attempts and timeouts; with `report`, its own retries are reported (see `reportSdkRetries`).
 * @throws `invalid_config` when a named environment variable is not set.
 */
export function createS3Client(options: S3DestinationOptions, report?: SdkRetryReport): S3Client {
  const custom = options.endpoint !== undefined;
  const region = options.region ?? (custom ? 'us-east-1' : undefined);
  const requestChecksumCalculation = options.requestChecksumCalculation ?? (custom ? 'WHEN_REQUIRED' : undefined);
  // Unset, not undefined: the SDK's defaults (region from the environment, checksums when supported) apply.
  const config: S3ClientConfig = {
    ...(region !== undefined && { region }),
    ...(options.endpoint !== undefined && { endpoint: options.endpoint }),
    forcePathStyle: options.forcePathStyle ?? custom,
    maxAttempts: options.maxAttempts,
    requestHandler: { connectionTimeout: options.connectTimeoutMs, socketTimeout: options.idleTimeoutMs },
    ...(requestChecksumCalculation !== undefined && { requestChecksumCalculation }),
  };
  if (options.accessKeyIdEnv !== undefined && options.secretAccessKeyEnv !== undefined) {
    const sessionToken = options.sessionTokenEnv === undefined ? undefined : fromEnv(options.sessionTokenEnv, 'sessionTokenEnv');
    config.credentials = {
      accessKeyId: fromEnv(options.accessKeyIdEnv, 'accessKeyIdEnv'),
      secretAccessKey: fromEnv(options.secretAccessKeyEnv, 'secretAccessKeyEnv'),
      ...(sessionToken !== undefined && { sessionToken }),
    };
  }
  // The SDK warns on Node < 22 from every process that creates a client (its support for Node 20
  // ends in January 2027): Stowage supports Node 20 and says so once, in the README, not per command.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const client = new S3Client(config);
  if (report && options.maxAttempts > 1) reportSdkRetries(client, report);
  return client;
}

/** Where `createS3Client` reports the SDK's own retries: the destination's key prefix (`''` or ending with `/`) and the callback. */
export interface SdkRetryReport {
  root: string;
  onRetry: NonNullable<RetryOptions['onRetry']>;
}

/**
 * Reports each retry the SDK makes itself (`maxAttempts` above 1) through `onRetry`, as the retry
 * wrapper reports its own: the operation (`HeadObject`), the adapter's key, the attempt that
 * failed, the delay waited since and its error. A middleware just inside the SDK's retry loop sees
 * every attempt of a command, and calls `onRetry` as the next one starts.
 */
function reportSdkRetries(client: S3Client, { root, onRetry }: SdkRetryReport): void {
  const failures = new WeakMap<object, { attempt: number; error: unknown; at: number }>();
  type Args = { input: { Key?: unknown } };
  const middleware =
    (next: (args: Args) => Promise<unknown>, context: { commandName?: string }) =>
    async (args: Args): Promise<unknown> => {
      const failed = failures.get(context);
      if (failed) {
        const key = args.input.Key;
        onRetry({
          operation: context.commandName?.replace(/Command$/, '') ?? 'request',
          key: typeof key === 'string' && key.startsWith(root) ? key.slice(root.length) : undefined,
          attempt: failed.attempt,
          delayMs: Math.round(performance.now() - failed.at),
          error: failed.error,
        });
      }
      try {
        return await next(args);
      } catch (error) {
        failures.set(context, { attempt: (failed?.attempt ?? 0) + 1, error, at: performance.now() });
        throw error;
      }
    };
  // The stack's middleware type is a union of every step's; this one belongs to finalizeRequest.
  client.middlewareStack.addRelativeTo(middleware as Parameters<typeof client.middlewareStack.addRelativeTo>[0], {
    relation: 'after',
    toMiddleware: 'retryMiddleware',
    name: 'stowageReportRetries',
  });
}

function fromEnv(name: string, option: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new StorageError(StorageErrorCode.InvalidConfig, `environment variable ${name} (named by options.${option}) is not set`, {
      context: { variable: name, option },
    });
  }
  return value;
}
