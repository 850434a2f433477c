import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { startS3rver, type S3rverProcess } from '@stowage/storage-s3/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TSX, cliArgs, runCli } from './cli-process.test-support.js';

const ENV = {
  ...process.env,
  STOWAGE_CONFIG: '',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  CLI_OSS_ID: 'cli-archive-id',
  CLI_OSS_SECRET: 'cli-archive-secret',
  CLI_S3_KEY: 'S3RVER',
  CLI_S3_SECRET: 'S3RVER',
};

/** A server with archive classes: the destination on it, its thaw clock, and what its class's thaws take. */
interface ArchiveServer {
  destination: { name: string; url: string; options: Record<string, unknown> };
  storageClass: string;
  /** The expected thaw times, as a restore refused without --thaw says them. */
  thawTimes: RegExp;
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** OSS ColdArchive on the OSS test server, and S3 GLACIER on the s3rver launcher: the same test body runs on each. */
const SERVERS: Array<{ label: string; start(): Promise<ArchiveServer> }> = [
  {
    label: 'OSS ColdArchive on the OSS test server',
    async start() {
      const oss: OssTestServer = await startOssTestServer({ accessKeyId: ENV.CLI_OSS_ID, accessKeySecret: ENV.CLI_OSS_SECRET, buckets: ['cold'] });
      return {
        destination: {
          name: 'cold',
          url: 'oss://cold/wms',
          options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'CLI_OSS_ID', accessKeySecretEnv: 'CLI_OSS_SECRET' },
        },
        storageClass: 'ColdArchive',
        thawTimes: /expedited ≤ 60 min, standard ≤ 5\.0 h, bulk ≤ 12\.0 h/,
        advance: async (ms) => oss.clock.advance(ms),
        close: () => oss.close(),
      };
    },
  },
  {
    label: 'S3 GLACIER on the s3rver launcher',
    async start() {
      const s3: S3rverProcess = await startS3rver();
      const client = new S3Client({
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: ENV.CLI_S3_KEY, secretAccessKey: ENV.CLI_S3_SECRET },
      });
      await client.send(new CreateBucketCommand({ Bucket: 'cold' }));
      client.destroy();
      return {
        destination: {
          name: 'cold',
          url: 's3://cold/wms',
          options: {
            endpoint: s3.endpoint,
            forcePathStyle: true,
            checksumMode: 'crc64nvme',
            conditionalWrites: true,
            accessKeyIdEnv: 'CLI_S3_KEY',
            secretAccessKeyEnv: 'CLI_S3_SECRET',
          },
        },
        storageClass: 'GLACIER',
        thawTimes: /expedited ≤ 5 min, standard ≤ 5\.0 h, bulk ≤ 12\.0 h/,
        advance: (ms) => s3.advanceThawClock(ms),
        close: () => s3.stop(),
      };
    },
  },
];

describe.each(SERVERS)('archive offload from the command line ($label)', ({ start }) => {
  let dir: string;
  let server: ArchiveServer;
  /** Runs the CLI without blocking this process, which may serve the test server. */
  const run = (...rest: string[]) => runCli(dir, ENV, ...rest);

  /** Starts the CLI and resolves once it waits for a thaw; its output so far, and its exit. */
  async function untilThawing(...rest: string[]) {
    const child = spawn(TSX, cliArgs(...rest), { cwd: dir, env: ENV });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = new Promise<number | null>((resolveExit) => child.once('exit', resolveExit));
    for (let waited = 0; !stderr.includes('waiting for 1 thaw') && waited < 60_000; waited += 200) await new Promise((r) => setTimeout(r, 200));
    return { exited, stdout: () => stdout, stderr: () => stderr };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-cli-archive-'));
    server = await start();
    createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 3 });
    const config = {
      source: { database: 'db.sqlite3' },
      destinations: [{ ...server.destination, archive: { after: '30d', storageClass: server.storageClass } }],
    };
    await writeFile(join(dir, 'stowage.config.json'), JSON.stringify(config));
  }, 60_000);

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('archive run, a restore refused without --thaw, thaw status, then restore --thaw --wait', async () => {
    const backup = await run('backup', '--type', 'full', '--json');
    expect(backup.code, backup.stderr).toBe(0);
    const id = (JSON.parse(backup.stdout) as { result: { id: string } }).result.id;
    const asOf = new Date(Date.now() + 40 * 86_400_000).toISOString();

    const archived = await run('archive', 'run', '--as-of', asOf);
    expect(archived.code, archived.stderr).toBe(0);
    expect(archived.stdout).toMatch(new RegExp(`moved cold: full/${id}\\.sqlite3\\.zst \\(.+\\) to ${server.storageClass}`));

    const refused = await run('restore', id, '--test-mode');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`full/${id}.sqlite3.zst at cold (${server.storageClass}, archived)`);
    expect(refused.stderr).toMatch(server.thawTimes);
    expect(refused.stderr).toContain(`Run: stowage restore ${id} --test-mode --thaw --tier standard --wait`);

    const { result: status } = JSON.parse((await run('thaw', 'status', id, '--json')).stdout) as {
      result: { artifacts: Array<{ state: string }>; readable: boolean };
    };
    expect([status.readable, status.artifacts.map((a) => a.state)]).toEqual([false, ['archived']]);
    expect((await run('restore', id, '--test-mode', '--wait')).code, 'a bare --wait goes with --thaw').toBe(2);

    const restoring = await untilThawing('restore', id, '--test-mode', '--thaw', '--tier', 'expedited', '--wait', '--poll', '1s', '--json');
    expect(JSON.parse((await run('thaw', 'status', id, '--json')).stdout)).toMatchObject({
      result: { artifacts: [{ state: 'thawing', storageClass: server.storageClass }] },
    });
    await server.advance(60 * 60_000);
    expect(await restoring.exited, restoring.stderr()).toBe(0);
    expect(JSON.parse(restoring.stdout())).toMatchObject({ ok: true, result: { id, testMode: true, thawMs: expect.any(Number) } });

    // Eight days on, the 7-day thawed copy is gone: a drill thaws again and reports the wait apart from its RTO.
    for (const json of [false, true]) {
      await server.advance(8 * 86_400_000);
      expect(JSON.parse((await run('thaw', 'status', id, '--json')).stdout)).toMatchObject({ result: { artifacts: [{ state: 'archived' }] } });
      const drill = await untilThawing('drill', '--backup', id, '--thaw', '--tier', 'expedited', '--wait', '--poll', '1s', ...(json ? ['--json'] : []));
      await new Promise((r) => setTimeout(r, 1500)); // a poll finds it still thawing
      await server.advance(60 * 60_000);
      expect(await drill.exited, drill.stderr()).toBe(0);
      if (json) {
        const { result } = JSON.parse(drill.stdout()) as { result: { ok: boolean; rtoMs: number; thawMs: number; durationMs: number } };
        expect(result).toMatchObject({ ok: true, id, thawMs: expect.any(Number) });
        expect(result.thawMs).toBeGreaterThanOrEqual(1000);
        expect(result.rtoMs + result.thawMs, 'the RTO leaves the thaw out').toBeLessThanOrEqual(result.durationMs + 50);
      } else {
        expect(drill.stdout()).toMatch(
          new RegExp(
            `drill of ${id} from cold \\(chain of 1\\): OK — usable database after .+ \\(RTO target 30m\\), after \\d+ s waiting for thaws \\(not counted in the RTO\\)`,
          ),
        );
      }
    }
  }, 240_000);
});
