import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

/** A running s3rver child process (see scripts/s3rver.mjs). */
export interface S3rverProcess {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** The folder s3rver stores its buckets in. */
  readonly directory: string;
  /** Every request answered so far, oldest first. */
  requests(): Promise<S3rverRequest[]>;
  /** The next `times` (default 1) GetObject answers drop the connection after `after` body bytes. */
  cutNextGets(after: number, times?: number): Promise<void>;
  /** Moves the server's thaw clock `ms` forward: restores under way finish, restored copies expire. */
  advanceThawClock(ms: number): Promise<void>;
  /** Creates bucket `name` with s3rver's built-in credentials (`S3RVER` / `S3RVER`). */
  createBucket(name: string): Promise<void>;
  /** Stops the process (SIGTERM, SIGKILL after 5 s) and removes its folder. */
  stop(): Promise<void>;
}

/** One request as the launcher logged it. */
export interface S3rverRequest {
  method: string;
  /** `/<bucket>/<key>`, as sent (URL-encoded). */
  path: string;
  status: number;
  /** Response body bytes sent. */
  bytesOut: number;
  /** The request's Range header, if it had one. */
  range?: string;
}

/** What the test server does beyond s3rver's own behaviour (each on unless turned off). */
export interface S3rverOptions {
  /** Run with --openssl-legacy-provider (default true; see startS3rver). */
  legacyOpenSsl?: boolean;
  /** Flexible checksums as AWS documents them (`x-amz-checksum-*`, BadDigest); default true. */
  checksums?: boolean;
  /** `If-None-Match: *` and `If-Match` on writes (and If-Match on reads); default true. */
  conditionalWrites?: boolean;
  /** A fault: every CopyObject stores its copy with the first byte flipped (default false). */
  corruptCopies?: boolean;
}

const LAUNCHER = fileURLToPath(new URL('../scripts/s3rver.mjs', import.meta.url));

/**
 * Starts s3rver in a child process on 127.0.0.1 and a port the OS picks, over a new temp folder.
 * The child runs with NODE_OPTIONS=--openssl-legacy-provider (s3rver's ListObjectsV2 continuation
 * tokens use DES), which a vitest worker cannot switch on for itself, unless `legacyOpenSsl` is
 * false; it exits when this process goes away, since it watches its stdin. The server behaves as
 * AWS documents for flexible checksums and conditional writes unless `checksums` or
 * `conditionalWrites` is false (see scripts/aws-behaviour.mjs), and logs every request.
 */
export async function startS3rver(options: S3rverOptions = {}): Promise<S3rverProcess> {
  const folder = await mkdtemp(join(tmpdir(), 'stowage-s3rver-'));
  const directory = join(folder, 'data');
  const requestLog = join(folder, 'requests.jsonl');
  await mkdir(directory);
  const args = [LAUNCHER, '--directory', directory, '--request-log', requestLog];
  if (options.checksums === false) args.push('--no-checksums');
  if (options.conditionalWrites === false) args.push('--no-conditional-writes');
  if (options.corruptCopies) args.push('--corrupt-copies');
  const child = spawn(process.execPath, args, {
    env: { ...process.env, NODE_OPTIONS: options.legacyOpenSsl === false ? '' : '--openssl-legacy-provider' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    await rm(folder, { recursive: true, force: true });
  };
  const requests = async (): Promise<S3rverRequest[]> => {
    const text = await readFile(requestLog, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as S3rverRequest);
  };

  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start within 20 s: ${stderr}`)), 20_000);
      createInterface({ input: child.stdout }).once('line', (line) => {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { port: number }).port);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited (${code ?? signal}) before it listened: ${stderr}`));
      });
      child.once('error', reject);
    });
    const endpoint = `http://127.0.0.1:${port}`;
    const advanceThawClock = async (ms: number) => {
      const response = await fetch(`${endpoint}/_stowage/thaw-clock?advance=${ms}`, { method: 'POST' });
      if (!response.ok) throw new Error(`the thaw clock did not move: ${response.status} ${await response.text()}`);
    };
    const cutNextGets = async (after: number, times = 1) => {
      const response = await fetch(`${endpoint}/_stowage/faults?cut-get-after=${after}&times=${times}`, { method: 'POST' });
      if (!response.ok) throw new Error(`the fault was not set: ${response.status} ${await response.text()}`);
    };
    const createBucket = async (name: string) => {
      const client = new S3Client({
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    };
    return { endpoint, directory, requests, cutNextGets, advanceThawClock, createBucket, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
