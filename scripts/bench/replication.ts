import { join } from 'node:path';
import { startOssTestServer } from '../../packages/oss-test-server/src/index.js';
import { startS3rver } from '../../packages/storage-s3/src/s3rver.test-support.js';
import { REMOTE_ENV, s3Destination } from './remote-env.js';
import type { BenchContext, Section } from './section.js';
import { stowageRig } from './stowage.js';

const BUCKET = 'backups';

/**
 * Issue 5. One full backup to local + two S3 endpoints that report flexible checksums as AWS does (one
 * CRC-64/NVME, one SHA-256, as in verify.ts) + OSS (the OSS test server) vs to local only; then verifying
 * those backups. (Verify of 30 backups: verify.ts.)
 */
export async function replication(ctx: BenchContext): Promise<Section> {
  const dir = join(ctx.work, 'replication');
  Object.assign(process.env, REMOTE_ENV);
  const servers = await Promise.all([
    startS3rver(),
    startS3rver(),
    startOssTestServer({ accessKeyId: REMOTE_ENV.BENCH_OSS_ID, accessKeySecret: REMOTE_ENV.BENCH_OSS_SECRET, buckets: [BUCKET] }),
  ]);
  const [regionA, regionB, oss] = servers;
  const dispose = async () => void (await Promise.all([regionA.stop(), regionB.stop(), oss.close()]));
  try {
    // s3rver lets an unsigned request create a bucket.
    for (const server of [regionA, regionB]) {
      const response = await fetch(`${server.endpoint}/${BUCKET}`, { method: 'PUT' });
      if (!response.ok) throw new Error(`creating bucket ${BUCKET} at ${server.endpoint}: HTTP ${response.status}`);
    }
    const remotes = (prefix: string) => [
      s3Destination('s3-eu-west-1', regionA.endpoint, `s3://${BUCKET}/${prefix}`, 'crc64nvme'),
      s3Destination('s3-ap-southeast-1', regionB.endpoint, `s3://${BUCKET}/${prefix}`, 'sha256'),
      {
        name: 'oss-cn-hangzhou',
        url: `oss://${BUCKET}/${prefix}`,
        options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'BENCH_OSS_ID', accessKeySecretEnv: 'BENCH_OSS_SECRET' },
      },
    ];
    const source = { database: ctx.fixture.path };
    const four = await stowageRig(ctx, join(dir, 'four'), { source }, remotes('full'));
    const local = await stowageRig(ctx, join(dir, 'local'), { source });

    return {
      title: 'Replication to four destinations',
      about:
        'Default config (zstd level 3). A full backup of the fixture to four destinations — local, two S3 endpoints that report flexible ' +
        "checksums as AWS does (two processes of the project's AWS-like s3rver; one destination uploads with CRC-64/NVME, the other with " +
        'SHA-256) and Aliyun OSS (the OSS test server, in the bench process) — against the same backup to the local destination only: ' +
        'staging once and uploading in parallel should cost little over one destination. Each replica is proven after the upload by the ' +
        'checksum its store reports (S3 CRC-64/NVME or SHA-256, OSS CRC-64); for a multipart object (the database artifact) ' +
        'the SHA-256 S3 endpoint reports only a composite checksum of the parts, as AWS does, which must equal the one the part SHA-256s ' +
        'the upload sent make (each part checked by the endpoint on receipt), so nothing is read back. Then ' +
        '`stowage verify --all` without and with `--deep` over those full backups: without `--deep` the local replica is hashed, the ' +
        'CRC-64/NVME S3 and the OSS replicas are checked by HeadObject and the SHA-256 S3 replica’s database artifact is read back; ' +
        '`--deep` reads all four back, so this shows how the cost grows with the bytes stored. The ' +
        'servers run on the same 2 cores as Stowage, so the four-destination figures include their work; they compute their CRC-64s ' +
        "with their own WebAssembly (@stowage/test-server-crc64), independent of the client's (hash-wasm); s3rver MD5-hashes every part " +
        "for its ETag and gives a completed multipart object AWS's ETag from the parts' MD5s (no second pass over the object).",
      cases: [
        {
          operation: 'full backup, 4 destinations',
          // Backups accumulate on both sides (a reset could not empty the servers), so the third case finds every replica.
          stowage: { label: 'stowage backup --type full (local, 2× S3, OSS)', argv: () => four.cli('backup', '--type', 'full') },
          references: [{ label: 'stowage backup --type full (local only)', argv: () => local.cli('backup', '--type', 'full'), maxRatio: 1.3 }],
        },
        {
          operation: 'verify --all, the full backups of the first case × 4 destinations',
          stowage: { label: 'stowage verify --all', argv: () => four.cli('verify', '--all') },
          references: [{ label: 'stowage verify --all --deep', argv: () => four.cli('verify', '--all', '--deep') }],
        },
      ],
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}
