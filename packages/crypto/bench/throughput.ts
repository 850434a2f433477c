/*
 * Throughput and peak RSS of the backup encoding stages on one file (default: 256 MiB of
 * generated SQLite-like rows). Not a test. Run from the repo root:
 *   npx tsx packages/crypto/bench/throughput.ts [FILE] [--runs N]
 * A realistic file: python3 ../shared/fixtures/greaterwms/gen.py build --out /tmp/wms.sqlite3 --size-mb 256
 *
 * Each variant runs in its own child process (so its peak RSS is its own), and the variants are
 * interleaved run by run, so that a loaded machine slows "before" and "after" alike. "openpgp.js"
 * is the whole-openpgp.js SEIPDv1 writer that `createEncryptStream` used before the native one.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createCompressStream, createDecompressStream } from '@stowage/compression';
import { DecryptionKeys, EncryptionKeys, createDecryptStream, createEncryptStream } from '../src/index.js';
import { encryptionMaterial } from '../src/keys.js';
import { createOpenpgpEncryptStream } from '../src/streams.js';

const MiB = 1024 * 1024;
const keys = EncryptionKeys.fromPassphrase('bench passphrase');
const openpgpEncrypt = () => createOpenpgpEncryptStream(encryptionMaterial(keys), false);
const decrypt = () => createDecryptStream(DecryptionKeys.fromPassphrase('bench passphrase'));

/** A variant: its input ('plain', or the output of another variant), its stages, whether its output is kept. */
interface Variant {
  input: 'plain' | string;
  stages: () => Duplex[];
  keep?: boolean;
}
const VARIANTS: Record<string, Variant> = {
  'zstd -3, 0 workers': { input: 'plain', stages: () => [createCompressStream({ workers: 0 })] },
  'zstd -3, 1 worker': { input: 'plain', stages: () => [createCompressStream({ workers: 1 })], keep: true },
  'zstd -3, 2 workers': { input: 'plain', stages: () => [createCompressStream({ workers: 2 })], keep: true },
  'encrypt, openpgp.js': { input: 'plain', stages: () => [openpgpEncrypt()], keep: true },
  'encrypt, native': { input: 'plain', stages: () => [createEncryptStream(keys)], keep: true },
  'decrypt (openpgp.js) of native': { input: 'encrypt, native', stages: () => [decrypt()] },
  'zstd -3 (1 w) → encrypt, openpgp.js': { input: 'plain', stages: () => [createCompressStream({ workers: 1 }), openpgpEncrypt()] },
  'zstd -3 (1 w) → encrypt, native': { input: 'plain', stages: () => [createCompressStream({ workers: 1 }), createEncryptStream(keys)], keep: true },
  'zstd -3 (2 w) → encrypt, native': { input: 'plain', stages: () => [createCompressStream({ workers: 2 }), createEncryptStream(keys)] },
  'decrypt → decompress': { input: 'zstd -3 (1 w) → encrypt, native', stages: () => [decrypt(), createDecompressStream()] },
};

const [mode, ...args] = process.argv.slice(2);
if (mode === '--child') {
  // One run of one variant: prints wall and CPU seconds and peak RSS (MiB) as JSON.
  const [name, input, output] = args as [string, string, string];
  const variant = VARIANTS[name]!;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await pipeline([
    createReadStream(input, { highWaterMark: MiB }),
    ...variant.stages(),
    variant.keep ? createWriteStream(output) : new Writable({ write: (_chunk, _encoding, callback) => callback() }),
  ]);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  console.log(JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, rssMiB: process.resourceUsage().maxRSS / 1024 }));
} else {
  const runs = Number(args[args.indexOf('--runs') + 1] ?? 3) || 3;
  const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-'));
  const file = mode !== undefined && !mode.startsWith('--') ? mode : join(dir, 'data.sqlite3');
  if (file === join(dir, 'data.sqlite3')) await generate(file, 256 * MiB);
  const size = (await stat(file)).size;
  const outputOf = (name: string) => join(dir, `${name.replace(/[^a-z0-9]+/gi, '_')}.out`);
  const inputOf = (variant: Variant) => (variant.input === 'plain' ? file : outputOf(variant.input));
  const results = new Map<string, { seconds: number[]; cpuSeconds: number[]; rss: number[] }>(
    Object.keys(VARIANTS).map((name) => [name, { seconds: [], cpuSeconds: [], rss: [] }]),
  );
  const loadBefore = loadavg()[0]!;
  for (let run = 0; run < runs; run++) {
    for (const [name, variant] of Object.entries(VARIANTS)) {
      const line = execFileSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', name, inputOf(variant), outputOf(name)], {
        encoding: 'utf8',
      });
      const { seconds, cpuSeconds, rssMiB } = JSON.parse(line.trim().split('\n').at(-1)!) as { seconds: number; cpuSeconds: number; rssMiB: number };
      const result = results.get(name)!;
      result.seconds.push(seconds);
      result.cpuSeconds.push(cpuSeconds);
      result.rss.push(rssMiB);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  console.log(
    `${(size / MiB).toFixed(0)} MiB from ${file}; ${runs} interleaved runs; load average ${loadBefore.toFixed(1)} → ${loadavg()[0]!.toFixed(1)} on ${execFileSync('nproc', { encoding: 'utf8' }).trim()} cores`,
  );
  // CPU time (all threads, of the pipeline only) is far less disturbed by a loaded machine than wall time.
  for (const [name, { seconds, cpuSeconds, rss }] of results) {
    const rates = seconds.map((s) => size / MiB / s);
    const perCpu = cpuSeconds.map((s) => size / MiB / s);
    console.log(
      `${name.padEnd(38)} ${median(rates).toFixed(0).padStart(5)} MiB/s, ${median(perCpu).toFixed(0).padStart(5)} MiB per CPU-second, peak RSS ${median(rss).toFixed(0)} MiB (wall runs: ${rates.map((r) => r.toFixed(0)).join(', ')})`,
    );
  }
  for (const name of ['zstd -3, 1 worker', 'zstd -3, 2 workers']) console.log(`ratio of ${name}: ${(size / (await stat(outputOf(name))).size).toFixed(3)}`);
  await rm(dir, { recursive: true, force: true });
}

async function generate(path: string, bytes: number): Promise<void> {
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0, size = 0; size < bytes; i++) {
          const row = Buffer.from(
            `${i}|B-${i % 97}-${i % 13}|goods ${i % 5000} 上海仓库 浦东新区|${randomBytes(6).toString('hex')}|${i % 400}|2024-01-${(i % 28) + 1}\n`,
          );
          size += row.length;
          yield row;
        }
      })(),
    ),
    createWriteStream(path),
  );
}
