import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex, StorageErrorCode, StorageRegistry, type StorageAdapter } from '@stowage/storage';
import { s3StorageFactory } from '@stowage/storage-s3';
import { startS3rver, type S3rverProcess } from '@stowage/storage-s3/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { confirmStored, stagedBody, withSentChecksums, type StagedArtifact } from './replica.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const BUCKET = 'composite';
const MiB = 1024 * 1024;

let server: S3rverProcess;
let folder: string;
let staged: StagedArtifact;
const registry = new StorageRegistry().register(s3StorageFactory);

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket(BUCKET);
  folder = await mkdtemp(join(tmpdir(), 'stowage-composite-'));
  // Three parts of 5, 5 and 1 MiB at the adapter's smallest part size.
  const bytes = randomBytes(11 * MiB);
  const path = join(folder, 'db.sqlite3.zst');
  await writeFile(path, bytes);
  staged = {
    path,
    artifact: {
      role: 'database',
      key: 'full/db.sqlite3.zst',
      encoding: [],
      size: bytes.length,
      sha256: sha256Hex(bytes),
      decodedSize: bytes.length,
      decodedSha256: sha256Hex(bytes),
    },
  };
  process.env.COMPOSITE_S3_KEY = 'S3RVER';
  process.env.COMPOSITE_S3_SECRET = 'S3RVER';
});

afterAll(async () => {
  await server?.stop();
  await rm(folder, { recursive: true, force: true });
});

async function openSha256S3(prefix: string): Promise<StorageAdapter> {
  const options = { endpoint: server.endpoint, forcePathStyle: true, accessKeyIdEnv: 'COMPOSITE_S3_KEY', secretAccessKeyEnv: 'COMPOSITE_S3_SECRET' };
  return registry.open({ url: `s3://${BUCKET}/${prefix}`, options: { ...options, checksumMode: 'sha256', partSizeMiB: 5 } }, { baseDir: folder });
}

/** GETs of the artifact since `from` in the server's request log: read-backs. */
const readBacks = async (from: number) => (await server.requests()).slice(from).filter((r) => r.method === 'GET' && r.path.endsWith('/full/db.sqlite3.zst'));

describe('a multipart artifact at an S3 endpoint that reports only a composite SHA-256', () => {
  it('is confirmed right after its put by the composite of the parts sent, without a read-back', async () => {
    const adapter = await openSha256S3('confirmed');
    const destination = { name: 's3-sha256', adapter };
    try {
      const stored = await adapter.put(staged.artifact.key, stagedBody(staged));
      expect(stored.sent?.sha256Composite).toMatch(/-3$/);
      const from = (await server.requests()).length;
      const artifact = withSentChecksums(destination, staged.artifact, stored);
      expect(await confirmStored(destination, artifact, { deep: false, stored })).toBe('server-sha256');
      expect(await readBacks(from)).toEqual([]);
      // Without the put's answer (verify, sync of an existing replica) or `deep`, the bytes are read back as before.
      expect(await confirmStored(destination, artifact, { deep: false })).toBe('sha256-readback');
      expect(await confirmStored(destination, artifact, { deep: true, stored })).toBe('sha256-readback');
      expect(await readBacks(from)).toHaveLength(2);
    } finally {
      await adapter.close?.();
    }
  });

  it('is refused when the composite the endpoint reports differs from the one sent, or the size does', async () => {
    const adapter = await openSha256S3('refused');
    try {
      const stored = await adapter.put(staged.artifact.key, stagedBody(staged));
      const composite = stored.sent!.sha256Composite!;
      const other = `${sha256Base64('another part list')}-3`;
      for (const reported of [{ sha256Composite: other }, { sha256Composite: `${composite.slice(0, -2)}-4` }]) {
        // The endpoint's answer as a damaged or replaced object would give it.
        const lying: StorageAdapter = { ...adapter, stat: async (key, options) => ({ ...(await adapter.stat(key, options))!, checksums: reported }) };
        await expect(
          confirmStored({ name: 's3-sha256', adapter: lying }, staged.artifact, { deep: false, stored }),
          JSON.stringify(reported),
        ).rejects.toMatchObject({
          code: StorageErrorCode.ChecksumMismatch,
        });
      }
      const shorter: StorageAdapter = {
        ...adapter,
        stat: async (key, options) => ({ ...(await adapter.stat(key, options))!, size: staged.artifact.size - 1 }),
      };
      await expect(confirmStored({ name: 's3-sha256', adapter: shorter }, staged.artifact, { deep: false, stored })).rejects.toMatchObject({
        code: StorageErrorCode.ChecksumMismatch,
      });
    } finally {
      await adapter.close?.();
    }
  });
});

function sha256Base64(text: string): string {
  return Buffer.from(sha256Hex(text), 'hex').toString('base64');
}
