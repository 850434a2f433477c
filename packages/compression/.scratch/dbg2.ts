import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createDecompressStream } from '../src/index.js';
const d = createDecompressStream() as any;
const t = setTimeout(() => { const r = d._readableState, w = d._writableState; console.log('HANG', { rlen: r.length, reading: r.reading, flowing: r.flowing, needReadable: r.needReadable, ended: r.ended, wlen: w.length, writing: w.writing, ending: w.ending, finished: w.finished, corked: w.corked, buffered: w.buffered?.length, pendingcb: w.pendingcb }); process.exit(1); }, 5000);
await pipeline(createReadStream('/tmp/bench/x.zst'), d, createWriteStream('/tmp/bench/x2'));
clearTimeout(t); console.log('ok');
