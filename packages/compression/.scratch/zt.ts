import { createCompressStream, createDecompressStream } from '../src/index.js';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
const data = Buffer.alloc(10 << 20, 7);
const c = await buffer(Readable.from([data]).pipe(createCompressStream()));
console.log(c.length);
const d = createDecompressStream();
Readable.from([c]).pipe(d);
let n = 0; let maxBuf = 0;
for await (const chunk of d) { n += chunk.length; maxBuf = Math.max(maxBuf, d.readableLength); await new Promise(r => setImmediate(r)); }
console.log(n, maxBuf);
