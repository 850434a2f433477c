import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { EncryptionKeys, DecryptionKeys, createEncryptStream, createDecryptStream } from '../src/index.js';
const total = Number(process.argv[2] ?? 512) * 1048576;
const mode = process.argv[3] ?? 'enc';
const block = randomBytes(Number(process.env.BLOCK ?? 1 << 20));
function source() { let sent = 0; return new Readable({ read() { if (sent >= total) return this.push(null); sent += block.length; this.push(block); } }); }
let peak = 0; let at: NodeJS.MemoryUsage | undefined; const base0 = process.memoryUsage(); const base = process.memoryUsage().rss;
const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 20);
let n = 0; const sink = () => new Writable({ write(c, _e, cb) { n += c.length; if (process.env.GC && (globalThis as any).gc && Math.random() < 0.05) (globalThis as any).gc(); const m = process.memoryUsage(); if (m.rss > peak) { peak = m.rss; at = m; } setImmediate(cb); } });
const t = performance.now();
if (mode === 'enc') {
  await pipeline(source(), createEncryptStream(EncryptionKeys.fromPassphrase('pw', { aead: process.argv[4] === 'aead' })), sink());
} else {
  // decrypt: encrypt on the fly and decrypt in the same pipeline
  await pipeline(source(), createEncryptStream(EncryptionKeys.fromPassphrase('pw', { aead: process.argv[4] === 'aead' })), createDecryptStream(DecryptionKeys.fromPassphrase('pw')), sink());
}
clearInterval(timer);
const s = (performance.now() - t) / 1000;
console.log(Object.fromEntries(Object.entries(at!).map(([k, v]) => [k, ((v - (base0 as any)[k]) / 1048576).toFixed(0)])));
console.log(mode, process.argv[4] ?? '', 'MiB', total / 1048576, 'out', n, 'secs', s.toFixed(1), 'MiB/s', (total / 1048576 / s).toFixed(0), 'rss base', (base / 1048576).toFixed(0), 'peak growth MiB', ((peak - base) / 1048576).toFixed(0));
