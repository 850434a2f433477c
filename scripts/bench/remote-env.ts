/** Credentials go to the CLI through environment variables named in the config, as in production. */
export const REMOTE_ENV = {
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  BENCH_S3_KEY: 'S3RVER',
  BENCH_S3_SECRET: 'S3RVER',
  BENCH_OSS_ID: 'oss-bench-id',
  BENCH_OSS_SECRET: 'oss-bench-secret',
};

/** A Stowage destination on an AWS-like s3rver (flexible checksums reported, conditional writes), credentials from `REMOTE_ENV`. */
export function s3Destination(name: string, endpoint: string, url: string, checksumMode: 'crc64nvme' | 'sha256') {
  return {
    name,
    url,
    options: {
      endpoint,
      forcePathStyle: true,
      accessKeyIdEnv: 'BENCH_S3_KEY',
      secretAccessKeyEnv: 'BENCH_S3_SECRET',
      checksumMode,
      conditionalWrites: true,
    },
  };
}
