import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createCompressStream, createDecompressStream } from '@stowage/compression';
import { EncryptionKeys, DecryptionKeys, createEncryptStream, createDecryptStream } from '../src/index.js';
const src = '/tmp/bench/small.sqlite3';
const keys = EncryptionKeys.fromPassphrase('pw');
await pipeline(createReadStream(src), createCompressStream(), createEncryptStream(keys), createWriteStream('/tmp/bench/small.zst.pgp'));
console.log('encoded');
const mode = process.argv[2];
const t = setTimeout(() => { console.log('HANG', mode); process.exit(1); }, 10000);
if (mode === 'dec') await pipeline(createReadStream('/tmp/bench/small.zst.pgp'), createDecryptStream(DecryptionKeys.fromPassphrase('pw')), createWriteStream('/tmp/bench/out.zst'));
if (mode === 'decomp') { await pipeline(createReadStream(src), createCompressStream(), createWriteStream('/tmp/bench/x.zst')); await pipeline(createReadStream('/tmp/bench/x.zst'), createDecompressStream(), createWriteStream('/tmp/bench/x')); }
if (mode === 'both') await pipeline(createReadStream('/tmp/bench/small.zst.pgp'), createDecryptStream(DecryptionKeys.fromPassphrase('pw')), createDecompressStream(), createWriteStream('/tmp/bench/out'));
clearTimeout(t);
console.log('ok', mode);
