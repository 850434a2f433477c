import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CryptoErrorCode, isCryptoError } from './errors.js';
import { checkKeys, describeKeys } from './inspect.js';
import { DecryptionKeys, EncryptionKeys, generateKeyPair, keyFingerprints, loadDecryptionKeys, loadEncryptionKeys, type GeneratedKeyPair } from './keys.js';
import { writeKeyFile } from './secrets.js';
import { cleanup, decrypt, encrypt, tempDir } from './test/helpers.js';

const PASSPHRASE = 'keys-test-passphrase-Xq7';
const KEY_PASSPHRASE = 'private-key-passphrase-Zr9';

let dir: string;
let ops: GeneratedKeyPair;
let escrow: GeneratedKeyPair;

beforeAll(async () => {
  dir = await tempDir();
  [ops, escrow] = await Promise.all([
    generateKeyPair({ userId: 'Stowage ops <ops@example.com>' }),
    generateKeyPair({ userId: 'Offline escrow <escrow@example.com>', passphrase: KEY_PASSPHRASE }),
  ]);
  await writeFile(join(dir, 'ops.asc'), ops.publicKey);
  await writeFile(join(dir, 'escrow.asc'), escrow.publicKey);
  await writeKeyFile(join(dir, 'ops.key'), ops.privateKey);
  await writeKeyFile(join(dir, 'escrow.key'), escrow.privateKey);
  await writeKeyFile(join(dir, 'escrow.pass'), `${KEY_PASSPHRASE}\n`);
  await writeKeyFile(join(dir, 'passphrase'), `${PASSPHRASE}\n`);
});
afterAll(cleanup);

async function failure(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    if (isCryptoError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected a failure');
}

describe('generateKeyPair', () => {
  it('makes a v4 Curve25519 pair with an encryption subkey and a 40-hex fingerprint', async () => {
    expect(ops.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    expect(ops.publicKey).toContain('-----BEGIN PGP PUBLIC KEY BLOCK-----');
    expect(ops.privateKey).toContain('-----BEGIN PGP PRIVATE KEY BLOCK-----');
    expect(ops.revocationCertificate).toContain('-----BEGIN PGP PUBLIC KEY BLOCK-----');
    const key = await openpgp.readKey({ armoredKey: ops.publicKey });
    expect(key.keyPacket.version).toBe(4);
    expect(key.getAlgorithmInfo()).toMatchObject({ algorithm: 'eddsaLegacy' });
    const subkey = await key.getEncryptionKey();
    expect(subkey.getAlgorithmInfo()).toMatchObject({ algorithm: 'ecdh', curve: 'curve25519Legacy' });
    expect(await key.getExpirationTime()).toBe(Infinity);
    expect(key.getUserIDs()).toEqual(['Stowage ops <ops@example.com>']);
  });

  it('protects the private key when given a passphrase', async () => {
    const key = await openpgp.readPrivateKey({ armoredKey: escrow.privateKey });
    expect(key.isDecrypted()).toBe(false);
    expect((await openpgp.readPrivateKey({ armoredKey: ops.privateKey })).isDecrypted()).toBe(true);
  });
});

describe('loadEncryptionKeys / loadDecryptionKeys', () => {
  it('loads a passphrase from a key file or an environment variable', async () => {
    const fromFile = await loadEncryptionKeys({ mode: 'passphrase', passphraseFile: 'passphrase' }, { baseDir: dir });
    const fromEnv = await loadDecryptionKeys(
      { mode: 'passphrase', passphraseEnv: 'STOWAGE_TEST_PASSPHRASE' },
      { env: { STOWAGE_TEST_PASSPHRASE: PASSPHRASE } },
    );
    const plain = Buffer.from('round trip through the config loaders');
    expect((await decrypt(await encrypt(plain, fromFile), fromEnv)).output).toEqual(plain);
    expect(keyFingerprints(fromFile)).toEqual([]);
  });

  it('loads recipients and a passphrase-protected private key', async () => {
    const config = {
      mode: 'public-key',
      recipients: ['ops.asc', 'escrow.asc'],
      privateKeyFile: 'escrow.key',
      privateKeyPassphraseFile: 'escrow.pass',
    };
    const encryption = await loadEncryptionKeys(config, { baseDir: dir });
    expect(keyFingerprints(encryption)).toEqual([ops.fingerprint, escrow.fingerprint]);
    const decryption = await loadDecryptionKeys(config, { baseDir: dir });
    expect(keyFingerprints(decryption)).toEqual([escrow.fingerprint]);
    const plain = Buffer.from('escrow can read this');
    expect((await decrypt(await encrypt(plain, encryption), decryption)).output).toEqual(plain);
  });

  it('loads a private key from an environment variable', async () => {
    const keys = await loadDecryptionKeys({ mode: 'public-key', recipients: ['ops.asc'], privateKeyEnv: 'OPS_KEY' }, { env: { OPS_KEY: ops.privateKey } });
    expect(keys.fingerprints).toEqual([ops.fingerprint]);
  });

  it('refuses to decrypt on a host that holds only public keys, by design', async () => {
    const error = await failure(loadDecryptionKeys({ mode: 'public-key', recipients: ['ops.asc'] }, { baseDir: dir }));
    expect(error.code).toBe(CryptoErrorCode.CannotDecrypt);
    expect(error.message).toContain('this host holds only public keys, by design');
  });

  it('refuses a private key file given as a recipient', async () => {
    await writeFile(join(dir, 'leaked.asc'), ops.privateKey, { mode: 0o600 });
    const error = await failure(loadEncryptionKeys({ mode: 'public-key', recipients: ['leaked.asc'] }, { baseDir: dir }));
    expect(error.code).toBe(CryptoErrorCode.InvalidKey);
    expect(error.message).toContain('must hold only public keys');
  });

  it('refuses a public key given as the private key, and a file that holds no key', async () => {
    await writeKeyFile(join(dir, 'public-as-private'), ops.publicKey);
    await writeFile(join(dir, 'not-a-key.asc'), 'hello');
    expect(
      (await failure(loadDecryptionKeys({ mode: 'public-key', recipients: ['ops.asc'], privateKeyFile: 'public-as-private' }, { baseDir: dir }))).code,
    ).toBe(CryptoErrorCode.InvalidKey);
    expect((await failure(loadEncryptionKeys({ mode: 'public-key', recipients: ['not-a-key.asc'] }, { baseDir: dir }))).code).toBe(CryptoErrorCode.InvalidKey);
  });

  it('reports a protected private key without its passphrase, and a wrong key passphrase', async () => {
    const missing = await failure(loadDecryptionKeys({ mode: 'public-key', recipients: ['escrow.asc'], privateKeyFile: 'escrow.key' }, { baseDir: dir }));
    expect(missing.code).toBe(CryptoErrorCode.KeyMissing);
    expect(missing.message).toContain('passphrase-protected');
    const wrong = await failure(
      loadDecryptionKeys(
        { mode: 'public-key', recipients: ['escrow.asc'], privateKeyFile: 'escrow.key', privateKeyPassphraseEnv: 'KP' },
        { baseDir: dir, env: { KP: 'not-the-passphrase' } },
      ),
    );
    expect(wrong.code).toBe(CryptoErrorCode.WrongKey);
    expect(wrong.message).not.toContain('not-the-passphrase');
  });

  it('reports missing key files and refuses loose permissions', async () => {
    expect((await failure(loadEncryptionKeys({ mode: 'passphrase', passphraseFile: 'absent' }, { baseDir: dir }))).code).toBe(CryptoErrorCode.KeyMissing);
    expect((await failure(loadEncryptionKeys({ mode: 'public-key', recipients: ['absent.asc'] }, { baseDir: dir }))).code).toBe(CryptoErrorCode.KeyMissing);
    await writeKeyFile(join(dir, 'loose'), PASSPHRASE);
    await chmod(join(dir, 'loose'), 0o644);
    const loose = await failure(loadDecryptionKeys({ mode: 'passphrase', passphraseFile: 'loose' }, { baseDir: dir }));
    expect(loose.code).toBe(CryptoErrorCode.KeyFilePermissions);
    expect(loose.message).toContain(`chmod 600 ${join(dir, 'loose')}`);
  });

  it('reports an invalid config as invalid_config', async () => {
    expect((await failure(loadEncryptionKeys({ mode: 'passphrase' }))).code).toBe(CryptoErrorCode.InvalidConfig);
  });
});

describe('secrets stay secret', () => {
  it('keeps passphrases and key material out of toJSON, inspect and string conversion', async () => {
    const all = [
      EncryptionKeys.fromPassphrase(PASSPHRASE),
      DecryptionKeys.fromPassphrase(PASSPHRASE),
      await EncryptionKeys.fromPublicKeys([ops.publicKey]),
      await DecryptionKeys.fromPrivateKeys([escrow.privateKey], { passphrase: KEY_PASSPHRASE }),
    ];
    for (const keys of all) {
      const shown = [JSON.stringify(keys), inspect(keys, { depth: 10, showHidden: true }), String(keys), JSON.stringify(Object.entries(keys))].join('\n');
      expect(shown).not.toContain(PASSPHRASE);
      expect(shown).not.toContain(KEY_PASSPHRASE);
      expect(shown).not.toContain('PRIVATE KEY');
      expect(shown).not.toContain('privateParams');
    }
    expect(JSON.parse(JSON.stringify(all[2]))).toEqual({ mode: 'public-key', aead: false, fingerprints: [ops.fingerprint] });
  });

  it('keeps the passphrase out of decryption errors', async () => {
    const encrypted = await encrypt(Buffer.from('x'), EncryptionKeys.fromPassphrase(PASSPHRASE));
    const { error } = await decrypt(encrypted, DecryptionKeys.fromPassphrase('guess-Gq2'));
    expect(isCryptoError(error, CryptoErrorCode.WrongKey)).toBe(true);
    const shown = `${(error as Error).message} ${JSON.stringify(error)} ${inspect(error)}`;
    expect(shown).not.toContain('guess-Gq2');
    expect(shown).not.toContain(PASSPHRASE);
  });
});

describe('describeKeys', () => {
  it('shows sources and recipients, never secrets', async () => {
    const description = await describeKeys(
      { mode: 'public-key', recipients: ['ops.asc', 'escrow.asc'], privateKeyFile: 'escrow.key', privateKeyPassphraseEnv: 'KP' },
      { baseDir: dir },
    );
    expect(description).toMatchObject({
      mode: 'public-key',
      cipher: 'AES-256',
      packetFormat: 'SEIPDv1+MDC',
      gpgCompatible: true,
      privateKey: { file: 'escrow.key', passphrase: { env: 'KP' } },
    });
    expect(description.recipients?.map((r) => [r.file, r.fingerprint, r.userIds])).toEqual([
      ['ops.asc', ops.fingerprint, ['Stowage ops <ops@example.com>']],
      ['escrow.asc', escrow.fingerprint, ['Offline escrow <escrow@example.com>']],
    ]);
    expect(description.recipients?.[0]?.keyId).toBe(ops.fingerprint.slice(-16));
    expect(description.recipients?.[0]?.algorithm).toBe('eddsaLegacy/ed25519Legacy');
  });

  it('shows a public-key-only host and the AEAD format', async () => {
    expect(await describeKeys({ mode: 'public-key', recipients: ['ops.asc'] }, { baseDir: dir })).toMatchObject({ privateKey: null });
    expect(await describeKeys({ mode: 'passphrase', passphraseEnv: 'P', aead: true })).toEqual({
      mode: 'passphrase',
      cipher: 'AES-256',
      packetFormat: 'SEIPDv2 AEAD-GCM',
      gpgCompatible: false,
      passphrase: { env: 'P' },
    });
  });
});

describe('checkKeys', () => {
  it('passphrase mode: can encrypt and decrypt', async () => {
    const report = await checkKeys({ mode: 'passphrase', passphraseFile: 'passphrase' }, { baseDir: dir });
    expect(report).toMatchObject({ mode: 'passphrase', canEncrypt: true, canDecrypt: true });
  });

  it('public-key host: can encrypt, cannot decrypt by design', async () => {
    const report = await checkKeys({ mode: 'public-key', recipients: ['ops.asc', 'escrow.asc'] }, { baseDir: dir });
    expect(report.canEncrypt).toBe(true);
    expect(report.canDecrypt).toBe(false);
    expect(report.decrypt).toMatchObject({ ok: false, code: CryptoErrorCode.CannotDecrypt });
    expect(report.fingerprints).toEqual([ops.fingerprint, escrow.fingerprint]);
  });

  it('restore machine: proves the private key is a recipient', async () => {
    const good = await checkKeys({ mode: 'public-key', recipients: ['ops.asc'], privateKeyFile: 'ops.key' }, { baseDir: dir });
    expect(good).toMatchObject({ canEncrypt: true, canDecrypt: true });
    const mismatched = await checkKeys(
      { mode: 'public-key', recipients: ['ops.asc'], privateKeyFile: 'escrow.key', privateKeyPassphraseFile: 'escrow.pass' },
      { baseDir: dir },
    );
    expect(mismatched.canDecrypt).toBe(false);
    expect(mismatched.decrypt).toMatchObject({ ok: false, code: CryptoErrorCode.WrongKey });
  });

  it('reports missing keys and invalid configs instead of throwing', async () => {
    const missing = await checkKeys({ mode: 'passphrase', passphraseEnv: 'UNSET_FOR_TEST' }, { env: {} });
    expect(missing).toMatchObject({ canEncrypt: false, canDecrypt: false, encrypt: { ok: false, code: CryptoErrorCode.KeyMissing } });
    const invalid = await checkKeys({ mode: 'nope' });
    expect(invalid).toMatchObject({ mode: undefined, canEncrypt: false, encrypt: { code: CryptoErrorCode.InvalidConfig } });
  });
});
