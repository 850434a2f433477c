import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** A running s3rver child process (see scripts/s3rver.mjs). */
export interface S3rverProcess {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  /** The folder s3rver stores its buckets in. */
  readonly directory: string;
  /** Stops the process (SIGTERM, SIGKILL after 5 s) and removes its folder. */
  stop(): Promise<void>;
}

const LAUNCHER = fileURLToPath(new URL('../scripts/s3rver.mjs', import.meta.url));

/**
 * Starts s3rver in a child process on 127.0.0.1 and a port the OS picks, over a new temp folder.
 * The child runs with NODE_OPTIONS=--openssl-legacy-provider (s3rver's ListObjectsV2 continuation
 * tokens use DES), which a vitest worker cannot switch on for itself, unless `legacyOpenSsl` is
 * false; it exits when this process goes away, since it watches its stdin.
 */
export async function startS3rver(options: { legacyOpenSsl?: boolean } = {}): Promise<S3rverProcess> {
  const directory = await mkdtemp(join(tmpdir(), 'stowage-s3rver-'));
  const child = spawn(process.execPath, [LAUNCHER, '--directory', directory], {
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
    await rm(directory, { recursive: true, force: true });
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
    return { endpoint: `http://127.0.0.1:${port}`, directory, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
