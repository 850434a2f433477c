import { Readable, Writable, PassThrough, Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { OPENPGP_CONFIG } from '../src/keys.js';
const gc = (globalThis as any).gc as () => void;
const total = 128 * 1048576;
const block = randomBytes(65536);
function source() { let sent = 0; return new Readable({ read() { if (sent >= total) return this.push(null); sent += block.length; this.push(Buffer.from(block)); } }); }
let maxLive = 0; let i = 0;
const sink = () => new Writable({ write(c, _e, cb) { if (++i % 200 === 0) { gc(); maxLive = Math.max(maxLive, process.memoryUsage().arrayBuffers); } cb(); } });
gc(); const base = process.memoryUsage().arrayBuffers;
const mode = process.argv[2];
if (mode === 'direct') { await pipeline(source(), sink()); } else if (mode === 'bridge') {
  const input = new PassThrough();
  async function* out() { yield* Readable.fromWeb(Readable.toWeb(input) as any, { objectMode: false }); }
  await pipeline(source(), Duplex.from({ writable: input, readable: Readable.from(out(), { objectMode: false }) }), sink());
} else if (mode === 'websrc') {
  // pure web: pull-based source
  let sent = 0;
  const src = new ReadableStream<Uint8Array>({ pull(c) { if (sent >= total) c.close(); else { sent += block.length; c.enqueue(new Uint8Array(block)); } } }, { highWaterMark: 0 });
  const msg = await openpgp.createMessage({ binary: src, format: 'binary' });
  const out = await openpgp.encrypt({ message: msg, passwords: ['pw'], format: 'binary', config: OPENPGP_CONFIG });
  await pipeline(Readable.fromWeb(out as any), sink());
} else if (mode === 'literal') {
  let sent = 0;
  const src = new ReadableStream<Uint8Array>({ pull(c) { if (sent >= total) c.close(); else { sent += block.length; c.enqueue(new Uint8Array(block)); } } }, { highWaterMark: 0 });
  const msg = await openpgp.createMessage({ binary: src, format: 'binary' });
  await pipeline(Readable.fromWeb(msg.write() as any), sink());
}
console.log(mode, 'live arrayBuffers growth MiB', ((maxLive - base) / 1048576).toFixed(1), 'chunks', i);
