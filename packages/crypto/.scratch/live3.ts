import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
const gc = (globalThis as any).gc as () => void;
const total = 128 * 1048576;
const block = randomBytes(65536);
function source() { let sent = 0; return new Readable({ read() { if (sent >= total) return this.push(null); sent += block.length; this.push(Buffer.from(block)); } }); }
function websource() { let sent = 0; return new ReadableStream<Uint8Array>({ pull(c) { if (sent >= total) c.close(); else { sent += block.length; c.enqueue(new Uint8Array(block)); } } }, { highWaterMark: 0 }); }
let maxLive = 0; let i = 0;
const probe = () => { if (++i % 200 === 0) { gc(); maxLive = Math.max(maxLive, process.memoryUsage().arrayBuffers); } };
gc(); const base = process.memoryUsage().arrayBuffers;
const mode = process.argv[2];
if (mode === 'toWeb') {
  const r = (Readable.toWeb(source()) as any).getReader();
  for (;;) { const { done } = await r.read(); if (done) break; probe(); }
} else if (mode === 'fromWeb') {
  for await (const _ of Readable.fromWeb(websource() as any)) probe();
} else if (mode === 'webOnly') {
  const r = websource().getReader();
  for (;;) { const { done } = await r.read(); if (done) break; probe(); }
} else if (mode === 'iter') {
  for await (const _ of source()) probe();
}
console.log(mode, 'live growth MiB', ((maxLive - base) / 1048576).toFixed(1), i);
