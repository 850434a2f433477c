export { S3Storage, S3_STORAGE_CLASSES, type S3StorageClass, type S3StorageOptions } from './s3.js';
export { s3StorageFactory, createS3Client, parseS3Url } from './factory.js';
export { s3OptionsSchema, type S3DestinationOptions } from './options.js';
export { probeS3Endpoint, type ChecksumSupport, type S3ProbeResult, type S3ProbeTarget } from './probe.js';
export type { ChecksumMode } from './checksums.js';
