import { z } from 'zod';
import { S3_STORAGE_CLASSES } from './s3.js';

/** Option names that would hold a credential itself, by normalised name (lower case, letters only). */
const LITERAL_SECRET_KEYS: Readonly<Record<string, string>> = {
  accesskeyid: 'accessKeyIdEnv',
  awsaccesskeyid: 'accessKeyIdEnv',
  accesskey: 'accessKeyIdEnv',
  secretaccesskey: 'secretAccessKeyEnv',
  awssecretaccesskey: 'secretAccessKeyEnv',
  secretkey: 'secretAccessKeyEnv',
  secret: 'secretAccessKeyEnv',
  password: 'secretAccessKeyEnv',
  sessiontoken: 'sessionTokenEnv',
  awssessiontoken: 'sessionTokenEnv',
  token: 'sessionTokenEnv',
  credentials: 'accessKeyIdEnv/secretAccessKeyEnv/sessionTokenEnv',
};

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be the NAME of an environment variable (letters, digits, _), not its value');

const destinationOptions = z
  .strictObject({
    /** AWS region; default: the SDK's (AWS_REGION, the profile), or us-east-1 with a custom endpoint. */
    region: z.string().min(1).optional(),
    /** An S3-compatible endpoint (MinIO, Ceph, s3rver, …), http(s) without credentials. */
    endpoint: z
      .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
      .refine((text) => {
        const url = new URL(text);
        return url.username === '' && url.password === '';
      }, 'must not contain credentials')
      .optional(),
    /** Path-style requests (`endpoint/bucket/key`); default true with a custom endpoint, false for AWS. */
    forcePathStyle: z.boolean().optional(),
    /** Names of environment variables holding the credentials; default: the SDK's default chain. */
    accessKeyIdEnv: envName.optional(),
    secretAccessKeyEnv: envName.optional(),
    sessionTokenEnv: envName.optional(),
    storageClass: z.enum(S3_STORAGE_CLASSES).optional(),
    sse: z.enum(['AES256', 'aws:kms']).optional(),
    kmsKeyId: z.string().min(1).optional(),
    /** Multipart part size in MiB, 5–5120 (default 16); bodies up to one part go up in one PutObject. */
    partSizeMiB: z.int().min(5).max(5120).default(16),
    /** Parts of one upload in flight at once (default 4). */
    queueSize: z.int().min(1).max(64).default(4),
    /** Default `crc64nvme` for AWS (full-object, so multipart objects too), `none` with a custom endpoint (run the probe). */
    checksumMode: z.enum(['sha256', 'crc64nvme', 'none']).optional(),
    /** The SDK's own setting; default `WHEN_REQUIRED` with a custom endpoint, the SDK's default for AWS. */
    requestChecksumCalculation: z.enum(['WHEN_SUPPORTED', 'WHEN_REQUIRED']).optional(),
    /** The endpoint enforces If-None-Match; default true for AWS, false with a custom endpoint. */
    conditionalWrites: z.boolean().optional(),
    listApi: z.enum(['v2', 'v1']).default('v2'),
    listPageSize: z.int().min(1).max(1000).default(1000),
    maxParallelism: z.int().min(1).max(64).default(8),
    /**
     * Attempts per request inside the SDK, the first included (default 1: Stowage's own retry
     * wrapper is the one retrier, so that the two never multiply). The SDK's retries are logged
     * like the wrapper's.
     */
    maxAttempts: z.int().min(1).max(10).default(1),
    connectTimeoutMs: z.int().positive().default(10_000),
    /** A request whose socket stays silent this long fails as transient (default 60 s). */
    idleTimeoutMs: z.int().positive().default(60_000),
  })
  .superRefine((options, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    if ((options.accessKeyIdEnv === undefined) !== (options.secretAccessKeyEnv === undefined)) {
      issue(options.accessKeyIdEnv === undefined ? 'accessKeyIdEnv' : 'secretAccessKeyEnv', 'accessKeyIdEnv and secretAccessKeyEnv go together');
    }
    if (options.sessionTokenEnv !== undefined && options.accessKeyIdEnv === undefined) {
      issue('sessionTokenEnv', 'sessionTokenEnv needs accessKeyIdEnv and secretAccessKeyEnv');
    }
    if (options.kmsKeyId !== undefined && options.sse !== 'aws:kms') issue('kmsKeyId', `kmsKeyId needs sse: 'aws:kms'`);
  });

/** The options of an `s3:` destination after validation, defaults applied where they do not depend on the endpoint. */
export type S3DestinationOptions = z.output<typeof destinationOptions>;

/**
 * The zod schema of an `s3:` destination's `options`. Credentials are never literal: options such
 * as `secretAccessKey` are refused with a message pointing at the `…Env` option that names an
 * environment variable instead (values are never echoed).
 */
export const s3OptionsSchema = z
  .unknown()
  .superRefine((input, ctx) => {
    if (typeof input !== 'object' || input === null) return;
    for (const name of Object.keys(input)) {
      const instead = LITERAL_SECRET_KEYS[name.toLowerCase().replace(/[^a-z]/g, '')];
      if (instead === undefined) continue;
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message:
          `literal secrets are not allowed in a destination's options (config files get copied, logged and committed): ` +
          `put the value in an environment variable and give its name in '${instead}', or leave credentials to the AWS SDK's default chain`,
      });
    }
  })
  .pipe(destinationOptions);
