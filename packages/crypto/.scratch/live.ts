import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { EncryptionKeys, DecryptionKeys, createEncryptStream, createDecryptStream } from '../src/index.js';
const gc = (globalThis as any).gc as () => void;
const total = Number(process.argv[2] ?? 128) * 1048576;
const block = randomBytes(Number(process.env.BLOCK ?? 65536));
function source() { let sent = 0; return new Readable({ read() { if (sent >= total) return this.push(null); sent += block.length; this.push(block); } }); }
let maxLive = 0; let i = 0;
const sink = new Writable({ write(c, _e, cb) { if (++i % 200 === 0) { gc(); maxLive = Math.max(maxLive, process.memoryUsage().arrayBuffers); } cb(); } });
gc(); const base = process.memoryUsage().arrayBuffers;
const stages: any[] = [createEncryptStream(EncryptionKeys.fromPassphrase('pw'))];
if (process.argv[3] === 'dec') stages.push(createDecryptStream(DecryptionKeys.fromPassphrase('pw')));
await pipeline(source(), ...stages, sink);
console.log(process.argv[3] ?? 'enc', 'live arrayBuffers growth MiB', ((maxLive - base) / 1048576).toFixed(1));
