import { randomBytes } from 'node:crypto';
import { EncryptionKeys, DecryptionKeys } from '../src/index.js';
import { encrypt, decrypt } from '../src/test/helpers.js';
const plain = randomBytes(200_000);
const aead = await encrypt(plain, EncryptionKeys.fromPassphrase('pw', { aead: true }));
for (const pos of [100, 1000, 50_000, 150_000, 199_000, aead.length - 5]) {
  const f = Buffer.from(aead); f[pos]! ^= 1;
  const r = await decrypt(f, DecryptionKeys.fromPassphrase('pw'));
  console.log(pos, aead.length, (r.error as any)?.code, (r.error as any)?.message, r.output.length);
}
