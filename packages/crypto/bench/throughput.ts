/*
 * Throughput of the backup encoding stages on one file (default: 256 MiB of generated
 * SQLite-like rows). Not a test. Run from the repo root:
 *   npx tsx packages/crypto/bench/throughput.ts [FILE]
 * A realistic file: python3 ../shared/fixtures/greaterwms/gen.py build --out /tmp/wms.sqlite3 --size-mb 256
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressStream, createDecompressStream } from '@stowage/compression';
import { DecryptionKeys, EncryptionKeys, createDecryptStream, createEncryptStream } from '../src/index.js';

const MiB = 1024 * 1024;
const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-'));
const file = process.argv[2] ?? join(dir, 'data.sqlite3');
if (process.argv[2] === undefined) {
  await pipeline(
    Readable.from(
      (function* () {
        for (let i = 0, size = 0; size < 256 * MiB; i++) {
          const row = Buffer.from(`${i}|B-${i % 97}-${i % 13}|goods ${i % 5000} 上海仓库 浦东新区|${randomBytes(6).toString('hex')}|${i % 400}|2024-01-${(i % 28) + 1}\n`);
          size += row.length;
          yield row;
        }
      })(),
    ),
    createWriteStream(file),
  );
}
const size = (await stat(file)).size;
const keys = EncryptionKeys.fromPassphrase('bench passphrase');
const decryptionKeys = DecryptionKeys.fromPassphrase('bench passphrase');
const sink = () => new Writable({ write: (_chunk, _encoding, callback) => callback() });

async function measure(name: string, input: string, stages: () => Duplex[], output?: string): Promise<void> {
  const rates: number[] = [];
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    await pipeline([createReadStream(input, { highWaterMark: MiB }), ...stages(), output === undefined ? sink() : createWriteStream(output)]);
    rates.push(size / MiB / ((performance.now() - started) / 1000));
  }
  rates.sort((a, b) => a - b);
  console.log(`${name.padEnd(34)} ${rates[1]!.toFixed(0).padStart(5)} MiB/s of plaintext (runs: ${rates.map((r) => r.toFixed(0)).join(', ')})`);
}

console.log(`${(size / MiB).toFixed(0)} MiB from ${file}`);
const compressed = join(dir, 'data.zst');
const encrypted = join(dir, 'data.pgp');
await measure('compress (zstd -3, 1 worker)', file, () => [createCompressStream()], compressed);
await measure('compress (zstd -3, calling thread)', file, () => [createCompressStream({ workers: 0 })]);
console.log(`  ratio ${(size / (await stat(compressed)).size).toFixed(2)}`);
await measure('decompress', compressed, () => [createDecompressStream()]);
await measure('encrypt (passphrase, SEIPDv1)', file, () => [createEncryptStream(keys)], encrypted);
await measure('decrypt (passphrase, SEIPDv1)', encrypted, () => [createDecryptStream(decryptionKeys)]);
await measure('compress → encrypt', file, () => [createCompressStream(), createEncryptStream(keys)], encrypted);
await measure('decrypt → decompress', encrypted, () => [createDecryptStream(decryptionKeys), createDecompressStream()]);
await rm(dir, { recursive: true, force: true });
