import { StorageRegistry } from '@stowage/storage';
import { s3StorageFactory } from './factory.js';
import { probeS3Storage, type S3ProbeResult } from './probe.js';
import { S3Storage } from './s3.js';

/** An S3 adapter, or a destination's URL and options (validated as the registry validates a config's). */
export type S3ProbeTarget = S3Storage | { url: string | URL; options?: unknown };

/** `probeS3Storage` of `target`, opening (and closing) an adapter when it is a URL and options. */
export async function probeS3Endpoint(target: S3ProbeTarget, options: { signal?: AbortSignal } = {}): Promise<S3ProbeResult> {
  if (target instanceof S3Storage) return probeS3Storage(target, options);
  const registry = new StorageRegistry().register(s3StorageFactory);
  const storage = (await registry.open({ url: String(target.url), options: target.options }, { baseDir: process.cwd() })) as S3Storage;
  try {
    return await probeS3Storage(storage, options);
  } finally {
    await storage.close();
  }
}
