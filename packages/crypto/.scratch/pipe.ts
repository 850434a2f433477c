import { createReadStream, statSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressStream } from '@stowage/compression';
import { EncryptionKeys, createEncryptStream } from '../src/index.js';
const file = '/tmp/bench/wms.sqlite3';
const mib = statSync(file).size / 1048576;
const keys = EncryptionKeys.fromPassphrase('pw');
for (const nbWorkers of [0, 1, 2, 0, 1, 2]) {
  let out = 0;
  const t = performance.now();
  await pipeline(createReadStream(file), createCompressStream({ workers: nbWorkers }), createEncryptStream(keys), new Writable({ write(c, _e, cb) { out += c.length; cb(); } }));
  const s = (performance.now() - t) / 1000;
  console.log(`compress+encrypt nbWorkers=${nbWorkers} ${(mib / s).toFixed(0)} MiB/s (${s.toFixed(2)} s)`);
}
