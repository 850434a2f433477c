import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CryptoErrorCode, isCryptoError } from './errors.js';
import { DecryptionKeys, EncryptionKeys, generateKeyPair, loadDecryptionKeys, loadEncryptionKeys, type GeneratedKeyPair } from './keys.js';
import { scanForSeipd } from './quick-check.js';
import { writeKeyFile } from './secrets.js';
import { cleanup, decrypt, encrypt, gnupg, nativeDecrypt, tempDir } from './test/helpers.js';

// The real GnuPG (Debian's gpg 2.2) on both sides of Stowage's encryption.

const PASSPHRASE = 'interop passphrase with spaces';
const plain = Buffer.concat([Buffer.from('GreaterWMS row: 上海 浦东新区 stock 42\n'), randomBytes(300_000)]);

let dir: string;
let ops: GeneratedKeyPair;
let escrow: GeneratedKeyPair;

beforeAll(async () => {
  dir = await tempDir();
  [ops, escrow] = await Promise.all([
    generateKeyPair({ userId: 'Stowage ops <ops@example.com>' }),
    generateKeyPair({ userId: 'Stowage escrow <escrow@example.com>', passphrase: 'escrow key passphrase' }),
  ]);
  await writeKeyFile(join(dir, 'passphrase'), `${PASSPHRASE}\n`);
  await writeKeyFile(join(dir, 'escrow.pass'), 'escrow key passphrase\n');
  await writeFile(join(dir, 'ops.asc'), ops.publicKey);
  await writeFile(join(dir, 'escrow.asc'), escrow.publicKey);
});
afterAll(cleanup);

function codeOf(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  if (isCryptoError(error)) return error.code;
  throw error;
}

describe('Stowage encrypts, gpg decrypts', () => {
  it('passphrase mode: gpg --passphrase-file reads the same passphrase file', async () => {
    const keys = await loadEncryptionKeys({ mode: 'passphrase', passphraseFile: 'passphrase' }, { baseDir: dir });
    const encrypted = await encrypt(plain, keys);
    const { gpg } = await gnupg();
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--decrypt'], encrypted);
    expect(result.stderr).toContain('AES256');
    expect(result.code).toBe(0);
    expect(result.stdout.equals(plain)).toBe(true);
  });

  it('public-key mode with two recipients: each private key, imported into gpg, decrypts', async () => {
    const keys = await loadEncryptionKeys({ mode: 'public-key', recipients: ['ops.asc', 'escrow.asc'] }, { baseDir: dir });
    const encrypted = await encrypt(plain, keys);
    for (const [pair, passphraseArgs] of [
      [ops, []],
      [escrow, ['--passphrase-file', join(dir, 'escrow.pass')]],
    ] as const) {
      const { gpg } = await gnupg();
      expect((await gpg([...passphraseArgs, '--import'], Buffer.from(pair.privateKey))).code).toBe(0);
      const result = await gpg([...passphraseArgs, '--decrypt'], encrypted);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.equals(plain)).toBe(true);
    }
  });

  it('encrypts to a key that gpg generated', async () => {
    const { gpg } = await gnupg();
    expect((await gpg(['--passphrase', '', '--quick-gen-key', 'gpg made <gpg@example.com>', 'future-default', 'default', 'never'])).code).toBe(0);
    const exported = await gpg(['--export', 'gpg@example.com']);
    const keys = await EncryptionKeys.fromPublicKeys([exported.stdout]);
    const result = await gpg(['--decrypt'], await encrypt(plain, keys));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.equals(plain)).toBe(true);
  });

  // The native SEIPDv1 writer (seipd.ts) streams partial-length chunks of 2^18 bytes.
  it.each([0, 1, (1 << 18) - 47, (1 << 18) - 6, 3 * (1 << 18) + 7])('gpg reads %i bytes written by the native SEIPDv1 writer', async (size) => {
    const data = randomBytes(size);
    const encrypted = await encrypt(data, EncryptionKeys.fromPassphrase(PASSPHRASE));
    const { gpg } = await gnupg();
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--decrypt'], encrypted);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.equals(data)).toBe(true);
  });

  it('two messages sharing an S2K salt (one chain of backups): gpg decrypts each, and the session keys differ', async () => {
    const s2kSalt = randomBytes(8);
    const keys = EncryptionKeys.fromPassphrase(PASSPHRASE);
    const [first, second] = [await encrypt(plain, keys, { s2kSalt }), await encrypt(plain, keys, { s2kSalt })];
    expect(first.subarray(6, 14).equals(s2kSalt) && second.subarray(6, 14).equals(s2kSalt)).toBe(true);
    // The wrapped session keys (after the salt and count byte) are not the same.
    expect(first.subarray(15, 48).equals(second.subarray(15, 48))).toBe(false);
    for (const encrypted of [first, second]) {
      const { gpg } = await gnupg();
      const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--decrypt'], encrypted);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.equals(plain)).toBe(true);
    }
  });

  it('gpg rejects a tampered or truncated Stowage message', async () => {
    const encrypted = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE));
    const flipped = Buffer.from(encrypted);
    flipped[150_000]! ^= 0x01;
    for (const damaged of [flipped, encrypted.subarray(0, encrypted.length - 1)]) {
      const { gpg } = await gnupg();
      const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--decrypt'], damaged);
      expect(result.code).not.toBe(0);
    }
  });

  it('AEAD output is not readable by gpg 2.2/2.4, as documented', async () => {
    const encrypted = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE, { aead: true }));
    const { gpg } = await gnupg();
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--decrypt'], encrypted);
    expect(result.code).not.toBe(0);
  });
});

describe('gpg encrypts, Stowage decrypts', () => {
  it.each([
    ['default compression', []],
    ['no compression', ['--compress-algo', 'none']],
  ])('gpg --symmetric --cipher-algo AES256 (%s)', async (_name, extra) => {
    const { gpg } = await gnupg();
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--symmetric', '--cipher-algo', 'AES256', ...extra], plain);
    expect(result.code, result.stderr).toBe(0);
    const keys = await loadDecryptionKeys({ mode: 'passphrase', passphraseFile: 'passphrase' }, { baseDir: dir });
    const { output, error } = await decrypt(result.stdout, keys);
    expect(error).toBeUndefined();
    expect(output.equals(plain)).toBe(true);
  });

  it('gpg --encrypt to a Stowage-generated key', async () => {
    const { gpg } = await gnupg();
    await gpg(['--import'], Buffer.from(ops.publicKey));
    const result = await gpg(['--trust-model', 'always', '--recipient', ops.fingerprint, '--encrypt'], plain);
    expect(result.code, result.stderr).toBe(0);
    const { output, error } = await decrypt(result.stdout, await DecryptionKeys.fromPrivateKeys([ops.privateKey]));
    expect(error).toBeUndefined();
    expect(output.equals(plain)).toBe(true);
  });

  it('a wrong passphrase for gpg --symmetric data is always wrong_key (quick check), never output', async () => {
    const { gpg } = await gnupg();
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--symmetric', '--cipher-algo', 'AES256'], plain);
    const scan = scanForSeipd(result.stdout);
    expect(scan).toMatchObject({ state: 'found', version: 1 });
    for (let attempt = 0; attempt < 12; attempt++) {
      const { output, error } = await decrypt(result.stdout, DecryptionKeys.fromPassphrase(`wrong guess ${attempt}`));
      expect(codeOf(error)).toBe(CryptoErrorCode.WrongKey);
      expect(output.length).toBe(0);
    }
  });

  it.each([
    ['AES256, no compression, from stdin', ['--cipher-algo', 'AES256', '--compress-algo', 'none']],
    ['AES128, SHA-1 S2K, no compression', ['--cipher-algo', 'AES128', '--s2k-digest-algo', 'SHA1', '--compress-algo', 'none']],
    [
      'AES256, SHA-512 S2K with a small count, a file name',
      ['--cipher-algo', 'AES256', '--s2k-digest-algo', 'SHA512', '--s2k-count', '65536', '--compress-algo', 'none', '--set-filename', 'db.sqlite3'],
    ],
  ])('gpg --symmetric (%s) is read by the native decryptor', async (_name, options) => {
    const { gpg } = await gnupg();
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--symmetric', ...options], plain);
    expect(result.code, result.stderr).toBe(0);
    const native = await nativeDecrypt(result.stdout, PASSPHRASE, 10_000);
    expect(native.error).toBeUndefined();
    expect(native.output.equals(plain)).toBe(true);
    const { output, error } = await decrypt(result.stdout, DecryptionKeys.fromPassphrase(PASSPHRASE));
    expect(error).toBeUndefined();
    expect(output.equals(plain)).toBe(true);
  });

  it('gpg --symmetric with its default compression goes to openpgp.js and decrypts', async () => {
    const { gpg } = await gnupg();
    const text = Buffer.from('row,row,row\n'.repeat(50_000));
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--symmetric', '--cipher-algo', 'AES256', '--compress-algo', 'zlib'], text);
    expect(result.stdout.length).toBeLessThan(text.length / 10);
    const { output, error } = await decrypt(result.stdout, DecryptionKeys.fromPassphrase(PASSPHRASE));
    expect(error).toBeUndefined();
    expect(output.equals(text)).toBe(true);
  });

  it('a tampered gpg message fails the integrity check', async () => {
    const { gpg } = await gnupg();
    const result = await gpg(['--passphrase-file', join(dir, 'passphrase'), '--symmetric', '--cipher-algo', 'AES256', '--compress-algo', 'none'], plain);
    const tampered = Buffer.from(result.stdout);
    tampered[200_000]! ^= 0x20;
    const { error } = await decrypt(tampered, DecryptionKeys.fromPassphrase(PASSPHRASE));
    expect(codeOf(error)).toBe(CryptoErrorCode.Integrity);
  });
});

describe('a public-key-only host', () => {
  it('encrypts for gpg but refuses to decrypt, by design', async () => {
    await expect(loadDecryptionKeys({ mode: 'public-key', recipients: ['ops.asc'] }, { baseDir: dir })).rejects.toMatchObject({
      code: CryptoErrorCode.CannotDecrypt,
      message: expect.stringContaining('this host holds only public keys, by design'),
    });
    const stored = join(dir, 'backup.pgp');
    await writeFile(stored, await encrypt(plain, await loadEncryptionKeys({ mode: 'public-key', recipients: ['ops.asc'] }, { baseDir: dir })));
    const { gpg } = await gnupg();
    await gpg(['--import'], Buffer.from(ops.privateKey));
    const result = await gpg(['--decrypt', stored]);
    expect(result.stdout.equals(plain)).toBe(true);
    expect((await readFile(stored)).includes(Buffer.from('GreaterWMS row'))).toBe(false);
  });
});
