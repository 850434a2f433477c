import { randomBytes, scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { probeDecryption } from './inspect.js';
import { DecryptionKeys, EncryptionKeys, generateKeyPair } from './keys.js';
import { encrypt } from './test/helpers.js';
import { createPassphraseVerifier, matchesPassphraseVerifier } from './verifier.js';

const PASSPHRASE = 'verifier-test-passphrase-Lm4';

describe('passphrase verifier', () => {
  it('matches the passphrase it was made from, not another, and holds no fast hash of it', async () => {
    const keys = EncryptionKeys.fromPassphrase(PASSPHRASE);
    const verifier = await createPassphraseVerifier(keys);
    expect(verifier).toMatchObject({ kdf: 'scrypt', logN: 15, r: 8, p: 1 });
    expect(Buffer.from(verifier.salt, 'base64')).toHaveLength(16);
    expect(verifier.check).toMatch(/^[0-9a-f]{8}$/);
    // It is the truncated scrypt output under a random salt: nothing else about the passphrase.
    expect(verifier.check).toBe(scryptSync(PASSPHRASE, Buffer.from(verifier.salt, 'base64'), 4, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 << 20 }).toString('hex'));
    expect(JSON.stringify(verifier)).not.toContain(PASSPHRASE);
    const again = await createPassphraseVerifier(keys);
    expect(again.salt).not.toBe(verifier.salt);

    await expect(matchesPassphraseVerifier(DecryptionKeys.fromPassphrase(PASSPHRASE), verifier)).resolves.toBe(true);
    await expect(matchesPassphraseVerifier(EncryptionKeys.fromPassphrase(`${PASSPHRASE}!`), verifier)).resolves.toBe(false);
  });

  it('refuses hostile parameters from a manifest instead of spending minutes or gigabytes', async () => {
    const keys = DecryptionKeys.fromPassphrase(PASSPHRASE);
    const good = await createPassphraseVerifier(keys);
    for (const bad of [{ logN: 24 }, { r: 1024 }, { p: 64 }, { salt: '' }, { check: '' }, { logN: 15.5 }]) {
      await expect(matchesPassphraseVerifier(keys, { ...good, ...bad })).rejects.toThrow(/outside the accepted parameters/);
    }
  });
});

describe('probeDecryption', () => {
  it('tells from the first bytes of a message whether these keys unlock it', async () => {
    const plain = randomBytes(300_000);
    const message = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE));
    const head = message.subarray(0, 64 * 1024);
    await expect(probeDecryption(DecryptionKeys.fromPassphrase(PASSPHRASE), head)).resolves.toMatchObject({ ok: true });
    await expect(probeDecryption(DecryptionKeys.fromPassphrase('another passphrase'), head)).resolves.toMatchObject({
      ok: false,
      code: 'stowage.crypto.wrong_key',
    });

    const [ops, other] = await Promise.all([generateKeyPair({ userId: 'ops' }), generateKeyPair({ userId: 'other' })]);
    const toOps = await encrypt(plain, await EncryptionKeys.fromPublicKeys([ops.publicKey], { aead: true }));
    await expect(probeDecryption(await DecryptionKeys.fromPrivateKeys([ops.privateKey]), toOps.subarray(0, 64 * 1024))).resolves.toMatchObject({ ok: true });
    await expect(probeDecryption(await DecryptionKeys.fromPrivateKeys([other.privateKey]), toOps.subarray(0, 64 * 1024))).resolves.toMatchObject({
      ok: false,
      code: 'stowage.crypto.wrong_key',
    });
    await expect(probeDecryption(DecryptionKeys.fromPassphrase(PASSPHRASE), toOps.subarray(0, 64 * 1024))).resolves.toMatchObject({
      ok: false,
      code: 'stowage.crypto.wrong_key',
    });
  });
});
