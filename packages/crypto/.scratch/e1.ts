import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { EncryptionKeys, DecryptionKeys, createEncryptStream, createDecryptStream, generateKeyPair } from '../src/index.js';

async function run(src: Buffer, t: NodeJS.ReadWriteStream): Promise<{ out?: Buffer; err?: any; n: number }> {
  const chunks: Buffer[] = []; let n = 0;
  try {
    await pipeline(Readable.from([src]), t as any, new Writable({ write(c, _e, cb) { chunks.push(c); n += c.length; cb(); } }));
    return { out: Buffer.concat(chunks), n };
  } catch (err) { return { err, n }; }
}
const data = randomBytes(300_000);
const ek = EncryptionKeys.fromPassphrase('right');
const enc = (await run(data, createEncryptStream(ek))).out!;
const ok = await run(enc, createDecryptStream(DecryptionKeys.fromPassphrase('right')));
console.log('roundtrip', ok.out?.equals(data));
const counts: Record<string, number> = {};
for (let cut = 1; cut < 400; cut += 3) {
  const r = await run(enc.subarray(0, cut), createDecryptStream(DecryptionKeys.fromPassphrase('right')));
  const k = r.err ? `${r.err.code} ${r.err.message.slice(0, 80)}` : 'OK?!';
  counts[k] = (counts[k] ?? 0) + 1;
}
console.log(counts);
const garbage = await run(Buffer.concat([enc, Buffer.from('trailing garbage')]), createDecryptStream(DecryptionKeys.fromPassphrase('right')));
console.log('trailing', garbage.err?.code, garbage.err?.message, garbage.n);
const wrongCounts: Record<string, number> = {};
for (let i = 0; i < 40; i++) {
  const e = (await run(Buffer.from('x'.repeat(1000)), createEncryptStream(EncryptionKeys.fromPassphrase('right' + i)))).out!;
  const r = await run(e, createDecryptStream(DecryptionKeys.fromPassphrase('wrong')));
  wrongCounts[r.err?.code ?? 'OK'] = (wrongCounts[r.err?.code ?? 'OK'] ?? 0) + 1;
}
console.log('wrong pw', wrongCounts);
const kp = await generateKeyPair({ userId: 'Ops <ops@example.com>' });
const kp2 = await generateKeyPair({ userId: 'Escrow <escrow@example.com>', passphrase: 'kp' });
const pk = await EncryptionKeys.fromPublicKeys([kp.publicKey]);
const encPk = (await run(data, createEncryptStream(pk))).out!;
const d1 = await run(encPk, createDecryptStream(await DecryptionKeys.fromPrivateKeys([kp.privateKey])));
console.log('pk roundtrip', d1.out?.equals(data));
const d2 = await run(encPk, createDecryptStream(await DecryptionKeys.fromPrivateKeys([kp2.privateKey], { passphrase: 'kp' })));
console.log('pk wrong', d2.err?.code, d2.err?.message);
const d3 = await run(encPk, createDecryptStream(DecryptionKeys.fromPassphrase('x')));
console.log('pk with pw', d3.err?.code, d3.err?.message);
const d4 = await run(enc, createDecryptStream(await DecryptionKeys.fromPrivateKeys([kp.privateKey])));
console.log('pw with pk', d4.err?.code, d4.err?.message);
const pkCounts: Record<string, number> = {};
for (let cut = 1; cut < 400; cut += 3) {
  const r = await run(encPk.subarray(0, cut), createDecryptStream(await DecryptionKeys.fromPrivateKeys([kp.privateKey])));
  const k = r.err ? `${r.err.code} ${r.err.message.slice(0, 80)}` : 'OK?!';
  pkCounts[k] = (pkCounts[k] ?? 0) + 1;
}
console.log(pkCounts);
const flipCounts: Record<string, number> = {};
for (let pos = 0; pos < enc.length; pos += 997) {
  const f = Buffer.from(enc); f[pos]! ^= 0x10;
  const r = await run(f, createDecryptStream(DecryptionKeys.fromPassphrase('right')));
  const k = r.err ? `${r.err.code}` : 'OK?!';
  flipCounts[k] = (flipCounts[k] ?? 0) + 1;
  if (pos < 100) console.log('flip', pos, r.err?.code, r.err?.message?.slice(0,100));
}
console.log(flipCounts);
const aek = EncryptionKeys.fromPassphrase('right', { aead: true });
const encA = (await run(data, createEncryptStream(aek))).out!;
console.log('aead rt', (await run(encA, createDecryptStream(DecryptionKeys.fromPassphrase('right')))).out?.equals(data));
const fa = Buffer.from(encA); fa[200000]! ^= 1;
const ra = await run(fa, createDecryptStream(DecryptionKeys.fromPassphrase('right')));
console.log('aead flip', ra.err?.code, ra.err?.message, ra.n);
const ta = await run(encA.subarray(0, 250000), createDecryptStream(DecryptionKeys.fromPassphrase('right')));
console.log('aead trunc', ta.err?.code, ta.err?.message, ta.n);
