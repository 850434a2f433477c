import { copyFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startOssTestServer, type OssTestServer } from '../../packages/oss-test-server/src/index.js';
import { startS3rver, type S3rverProcess } from '../../packages/storage-s3/src/s3rver.test-support.js';
import { ensureFixture, mutate } from './fixture.js';
import { runOk } from './measure.js';
import { REMOTE_ENV, s3Destination } from './remote-env.js';
import type { BenchContext, Section } from './section.js';
import { stowageRig } from './stowage.js';

const BACKUPS = 30;
const FULL_EVERY = 10;
const FIXTURE_MB = 16;
const MAX_SECONDS = 2;
const BUCKET = 'backups';
const PREFIX = 'verify';

/**
 * Issue 18. Non-deep `verify --all` of 30 backups at local + two S3 endpoints that report flexible
 * checksums (the AWS-like test server; one destination CRC-64/NVME, one SHA-256) + OSS (CRC-64/ECMA):
 * every replica is proven by the checksum its store reports, without a download. The bytes of
 * artifacts downloaded are counted from the servers' own request logs during one more run.
 */
export async function zeroEgressVerify(ctx: BenchContext): Promise<Section> {
  Object.assign(process.env, REMOTE_ENV);
  const [regionA, regionB, oss] = await Promise.all([
    startS3rver(),
    startS3rver(),
    startOssTestServer({ accessKeyId: REMOTE_ENV.BENCH_OSS_ID, accessKeySecret: REMOTE_ENV.BENCH_OSS_SECRET, buckets: [BUCKET] }),
  ]);
  const dispose = async () => void (await Promise.all([regionA.stop(), regionB.stop(), oss.close()]));
  try {
    for (const server of [regionA, regionB]) {
      const response = await fetch(`${server.endpoint}/${BUCKET}`, { method: 'PUT' }); // s3rver lets an unsigned request create a bucket
      if (!response.ok) throw new Error(`creating bucket ${BUCKET} at ${server.endpoint}: HTTP ${response.status}`);
    }
    const oss1 = {
      name: 'oss-cn-hangzhou',
      url: `oss://${BUCKET}/${PREFIX}`,
      options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'BENCH_OSS_ID', accessKeySecretEnv: 'BENCH_OSS_SECRET' },
    };
    const db = join(ctx.work, 'zero-egress', 'db.sqlite3');
    const rig = await stowageRig(ctx, join(ctx.work, 'zero-egress', 'rig'), { source: { database: db } }, [
      s3Destination('s3-eu-west-1', regionA.endpoint, `s3://${BUCKET}/${PREFIX}`, 'crc64nvme'),
      s3Destination('s3-ap-southeast-1', regionB.endpoint, `s3://${BUCKET}/${PREFIX}`, 'sha256'),
      oss1,
    ]);

    return {
      title: 'Verify without a download (S3 flexible checksums, OSS CRC-64)',
      about:
        `\`stowage verify --all\` (not \`--deep\`) of ${BACKUPS} backups of the ${FIXTURE_MB} MiB fixture (a full every ${FULL_EVERY}, incrementals between ` +
        'with `gen.py mutate`) at four destinations: local, two S3 endpoints that report flexible checksums as AWS does (two processes of the ' +
        "project's AWS-like s3rver; one destination uploads with CRC-64/NVME, the other with SHA-256) and Aliyun OSS (the OSS test server, " +
        'CRC-64/ECMA). Each remote replica is proven by comparing the checksum HeadObject reports with the manifest; the local one by hashing ' +
        'the file. Against `verify --all --deep`, which reads every artifact back. The bytes of artifacts downloaded (manifests excluded) are ' +
        "counted from the S3 servers' request logs and the OSS server's request records over one more `verify --all`.",
      cases: [
        {
          operation: `verify --all, ${BACKUPS} backups × 4 destinations`,
          maxSeconds: MAX_SECONDS,
          setup: async () => {
            await copyFile((await ensureFixture(ctx.root, FIXTURE_MB)).path, db);
            for (let i = 0; i < BACKUPS; i++) {
              if (i > 0) await mutate(ctx.root, db, i);
              await runOk(rig.cli('backup', '--type', i % FULL_EVERY === 0 ? 'full' : 'incremental'), ctx.root);
              if ((i + 1) % FULL_EVERY === 0) console.log(`  ${i + 1}/${BACKUPS} backups taken`);
            }
          },
          stowage: { label: 'stowage verify --all', argv: () => rig.cli('verify', '--all') },
          references: [{ label: 'stowage verify --all --deep', argv: () => rig.cli('verify', '--all', '--deep') }],
        },
      ],
      figures: async () => {
        const s3From = await Promise.all([regionA, regionB].map(async (server) => (await server.requests()).length));
        const ossFrom = oss.requests.length;
        await runOk(rig.cli('verify', '--all'), ctx.root);
        const s3 = await Promise.all([regionA, regionB].map((server, i) => artifactTraffic(server, s3From[i]!)));
        const ossGets = ossArtifactGets(oss, ossFrom);
        const total = s3.reduce((sum, { bytes }) => sum + bytes, 0);
        const [nvme, sha] = s3;
        const inside = await verifyMs(rig.backups);
        return [
          { name: 'time inside that `verify --all` (its audit record: CLI startup and config loading excluded)', value: `${(inside / 1000).toFixed(2)} s` },
          {
            name: 'artifact bytes downloaded by one `verify --all`',
            value:
              `${total} B (S3 CRC-64/NVME: ${nvme!.bytes} B, ${nvme!.heads} HeadObject; S3 SHA-256: ${sha!.bytes} B, ${sha!.heads} HeadObject; ` +
              `OSS: ${ossGets} artifact GetObject)`,
            target: { target: '0 bytes of artifacts downloaded', measured: `${total} B, ${ossGets} OSS artifact reads`, met: total === 0 && ossGets === 0 },
          },
        ];
      },
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

const isArtifact = (key: string) => key.startsWith(`${PREFIX}/`) && !key.endsWith('.manifest.json') && !key.includes('/locks/');

/** Response bytes of GETs of artifacts, and HEADs of them, in an S3 server's request log from entry `from` on. */
async function artifactTraffic(server: S3rverProcess, from: number): Promise<{ bytes: number; heads: number }> {
  const requests = (await server.requests()).slice(from).filter((r) => isArtifact(decodeURIComponent(r.path).slice(`/${BUCKET}/`.length)));
  return {
    bytes: requests.filter((r) => r.method === 'GET').reduce((sum, r) => sum + r.bytesOut, 0),
    heads: requests.filter((r) => r.method === 'HEAD').length,
  };
}

/** GetObject requests for artifacts in the OSS server's records, from record `from` on. */
function ossArtifactGets(oss: OssTestServer, from: number): number {
  return oss.requests.slice(from).filter((r) => r.operation === 'GetObject' && isArtifact(r.key)).length;
}

/** How long the last `verify` took by its own account: the duration in its last audit record (logs of the first local destination). */
async function verifyMs(localBackups: string): Promise<number> {
  const records = (await readFile(join(localBackups, 'logs', 'audit.jsonl'), 'utf8')).split('\n').filter(Boolean);
  const last = records.map((line) => JSON.parse(line) as { operation: string; durationMs: number }).findLast((r) => r.operation === 'verify');
  if (!last) throw new Error('no verify record in the audit log');
  return last.durationMs;
}
