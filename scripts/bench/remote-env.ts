/** Credentials go to the CLI through environment variables named in the config, as in production. */
export const REMOTE_ENV = {
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  BENCH_S3_KEY: 'S3RVER',
  BENCH_S3_SECRET: 'S3RVER',
  BENCH_OSS_ID: 'oss-bench-id',
  BENCH_OSS_SECRET: 'oss-bench-secret',
};
