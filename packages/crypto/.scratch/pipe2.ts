import { createReadStream, statSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressStream } from '@stowage/compression';
import { EncryptionKeys, createEncryptStream } from '../src/index.js';
const file = '/tmp/bench/wms.sqlite3';
const mib = statSync(file).size / 1048576;
const keys = EncryptionKeys.fromPassphrase('pw');
const withEnc = process.argv[2] === 'enc';
const results: Record<number, number[]> = { 0: [], 1: [], 2: [] };
for (let rep = 0; rep < 5; rep++) for (const w of [0, 1, 2]) {
  const t = performance.now();
  const stages: any[] = [createCompressStream({ workers: w })];
  if (withEnc) stages.push(createEncryptStream(keys));
  await pipeline(createReadStream(file), ...stages, new Writable({ write(c, _e, cb) { cb(); } }));
  results[w]!.push(mib / ((performance.now() - t) / 1000));
}
for (const [w, r] of Object.entries(results)) { r.sort((a, b) => a - b); console.log(withEnc ? 'compress+encrypt' : 'compress', 'workers', w, 'median MiB/s', r[2]!.toFixed(0), 'all', r.map((x) => x.toFixed(0)).join(' ')); }
