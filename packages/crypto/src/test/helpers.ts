import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Duplex } from 'node:stream';
import { createDecryptStream, createEncryptStream, type DecryptionKeys, type EncryptionKeys, type EncryptOptions } from '../index.js';
import { decryptPrefix, scanForSeipd } from '../quick-check.js';
import { CFB_CIPHERS, passphraseSessionKeys, SeipdDecryptor, startsLiteral } from '../seipd-decrypt.js';

const made: string[] = [];

/** A fresh temporary folder (mode 700); `cleanup()` removes every folder made so far. */
export async function tempDir(prefix = 'stowage-crypto-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o700);
  made.push(dir);
  return dir;
}
const gnupgHomes: string[] = [];
export async function cleanup(): Promise<void> {
  // Each GnuPG home started its own gpg-agent: stop them before removing their folders.
  await Promise.all(gnupgHomes.splice(0).map((home) => run('gpgconf', ['--homedir', home, '--kill', 'all'], { env: { GNUPGHOME: home } })));
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
}

/** What a stream pipeline produced: its output, how much of it, and its error if it failed. */
export interface Outcome {
  output: Buffer;
  error: unknown;
}

/** Runs `input` (written in chunks of `chunkSize`) through `stages` and collects the result. */
export async function through(input: Buffer, stages: Duplex[], chunkSize = 64 * 1024): Promise<Outcome> {
  const chunks: Buffer[] = [];
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < input.length; offset += chunkSize) pieces.push(input.subarray(offset, offset + chunkSize));
  try {
    await pipeline(
      Readable.from(pieces),
      ...(stages as [Duplex]),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          chunks.push(chunk);
          callback();
        },
      }),
    );
    return { output: Buffer.concat(chunks), error: undefined };
  } catch (error) {
    return { output: Buffer.concat(chunks), error };
  }
}

/**
 * Writes `input` to `stream` through one 10 000-byte buffer that is overwritten as soon as each
 * write completes (as some producers do), and collects the output.
 */
export async function throughReusedBuffer(input: Buffer, stream: Duplex): Promise<Outcome> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const finished = new Promise<unknown>((resolve) => {
    stream.on('error', resolve);
    stream.on('end', () => resolve(undefined));
  });
  const reused = Buffer.alloc(10_000);
  for (let offset = 0; offset < input.length; offset += reused.length) {
    const length = input.copy(reused, 0, offset, offset + reused.length);
    const error = await new Promise<Error | null | undefined>((resolve) => stream.write(reused.subarray(0, length), resolve));
    if (error) break;
    reused.fill(0xee);
  }
  stream.end();
  const error = await finished;
  return { output: Buffer.concat(chunks), error };
}

export async function encrypt(plain: Buffer, keys: EncryptionKeys, options?: EncryptOptions): Promise<Buffer> {
  const { output, error } = await through(plain, [createEncryptStream(keys, options)]);
  if (error !== undefined) throw error;
  return output;
}

export function decrypt(encrypted: Buffer, keys: DecryptionKeys, chunkSize?: number): Promise<Outcome> {
  return through(encrypted, [createDecryptStream(keys)], chunkSize);
}

/** Runs a program; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(
  command: string,
  args: string[],
  options: { input?: Buffer; env?: Record<string, string> } = {},
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr).toString('utf8') }));
    child.stdin.on('error', () => {
      // The program may exit before reading all its input; its exit code tells what happened.
    });
    child.stdin.end(options.input ?? Buffer.alloc(0));
  });
}

/** A scratch GnuPG home (mkdtemp, mode 700) and a runner for `gpg --batch` in it. */
export async function gnupg(): Promise<{ home: string; gpg: (args: string[], input?: Buffer) => ReturnType<typeof run> }> {
  const home = await tempDir('stowage-gnupg-');
  gnupgHomes.push(home);
  return {
    home,
    gpg: (args, input) =>
      run('gpg', ['--homedir', home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', ...args], {
        ...(input === undefined ? {} : { input }),
        env: { GNUPGHOME: home },
      }),
  };
}

/** Decrypts `message` with SeipdDecryptor fed `piece` bytes at a time; the literal data, or the error. */
export async function nativeDecrypt(message: Buffer, passphrase: string, piece: number): Promise<{ output: Buffer; error?: unknown }> {
  const scan = scanForSeipd(message);
  if (scan.state !== 'found') throw new Error(`no SEIPD packet (${scan.state})`);
  const keys = (await passphraseSessionKeys(message.subarray(0, scan.start), passphrase)) ?? [];
  const key = keys.find((k) => decryptPrefix(k, scan.prefix)?.[18] !== undefined && startsLiteral(decryptPrefix(k, scan.prefix)![18]!));
  if (!key) throw new Error('no session key');
  const decryptor = new SeipdDecryptor(CFB_CIPHERS[key.algorithm]!, key.data);
  const out: Buffer[] = [];
  try {
    for (let at = scan.start; at < message.length; at += piece) out.push(...decryptor.update(message.subarray(at, at + piece)));
    decryptor.final();
    return { output: Buffer.concat(out) };
  } catch (error) {
    return { output: Buffer.concat(out), error };
  }
}
