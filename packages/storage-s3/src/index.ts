export { S3Storage, S3_STORAGE_CLASSES, type S3StorageClass, type S3StorageOptions } from './s3.js';
export { s3StorageFactory, createS3Client, parseS3Url } from './factory.js';
export { s3OptionsSchema, type S3DestinationOptions } from './options.js';
export { probeS3Storage, type ChecksumSupport, type S3ProbeResult } from './probe.js';
export { probeS3Endpoint, type S3ProbeTarget } from './probe-endpoint.js';
export type { ChecksumMode } from './checksums.js';
