import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { writeFileSync } from 'node:fs';
import { EncryptionKeys, createEncryptStream, generateKeyPair } from '../src/index.js';
async function enc(keys: EncryptionKeys, path: string) { const chunks: Buffer[] = []; await pipeline(Readable.from([Buffer.from('hello gpg\n')]), createEncryptStream(keys), new Writable({ write(c, _e, cb) { chunks.push(c); cb(); } })); writeFileSync(path, Buffer.concat(chunks)); }
await enc(EncryptionKeys.fromPassphrase('pw'), '/tmp/proto/pw.pgp');
await enc(EncryptionKeys.fromPassphrase('pw', { aead: true }), '/tmp/proto/pw-aead.pgp');
const kp = await generateKeyPair({ userId: 'Ops <ops@example.com>', passphrase: 'kp' });
writeFileSync('/tmp/proto/priv.asc', kp.privateKey); writeFileSync('/tmp/proto/pub.asc', kp.publicKey);
await enc(await EncryptionKeys.fromPublicKeys([kp.publicKey]), '/tmp/proto/pk.pgp');
await enc(await EncryptionKeys.fromPublicKeys([kp.publicKey], { aead: true }), '/tmp/proto/pk-aead.pgp');
