import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecompressStream } from '../src/index.js';
const d = createDecompressStream();
let n = 0;
const t = setTimeout(() => { console.log('HANG at', n, 'readableLength', d.readableLength, 'writableLength', d.writableLength, (d as any)._readableState.reading, (d as any)._readableState.needReadable, (d as any)._readableState.flowing); process.exit(1); }, 5000);
await pipeline(createReadStream('/tmp/bench/x.zst'), d, new Writable({ write(c, _e, cb) { n += c.length; cb(); } }));
clearTimeout(t); console.log('ok', n);
