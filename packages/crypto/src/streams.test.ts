import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CryptoErrorCode, isCryptoError } from './errors.js';
import { DecryptionKeys, EncryptionKeys, generateKeyPair, type GeneratedKeyPair } from './keys.js';
import { createDecryptStream, createEncryptStream } from './streams.js';
import { cleanup, decrypt, encrypt, through, throughReusedBuffer } from './test/helpers.js';

const PASSPHRASE = 'streams-test-passphrase';

let ops: GeneratedKeyPair;
let escrow: GeneratedKeyPair;
let stranger: GeneratedKeyPair;
let toBoth: EncryptionKeys;
let opsKeys: DecryptionKeys;
let escrowKeys: DecryptionKeys;
let strangerKeys: DecryptionKeys;

beforeAll(async () => {
  [ops, escrow, stranger] = await Promise.all([
    generateKeyPair({ userId: 'ops <ops@example.com>' }),
    generateKeyPair({ userId: 'escrow <escrow@example.com>', passphrase: 'escrow-pass' }),
    generateKeyPair({ userId: 'stranger <stranger@example.com>' }),
  ]);
  toBoth = await EncryptionKeys.fromPublicKeys([ops.publicKey, escrow.publicKey]);
  opsKeys = await DecryptionKeys.fromPrivateKeys([ops.privateKey]);
  escrowKeys = await DecryptionKeys.fromPrivateKeys([escrow.privateKey], { passphrase: 'escrow-pass' });
  strangerKeys = await DecryptionKeys.fromPrivateKeys([stranger.privateKey]);
});
afterAll(cleanup);

function codeOf(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  if (isCryptoError(error)) return error.code;
  throw error;
}

describe('round trips', () => {
  const plain = randomBytes(3 * 1024 * 1024 + 17);

  it('passphrase mode (SEIPDv1 + MDC)', async () => {
    const encrypted = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE));
    expect(encrypted[0]! & 0x80).toBe(0x80);
    const { output, error } = await decrypt(encrypted, DecryptionKeys.fromPassphrase(PASSPHRASE));
    expect(error).toBeUndefined();
    expect(output.equals(plain)).toBe(true);
  });

  it('public-key mode with two recipients: either private key decrypts', async () => {
    const encrypted = await encrypt(plain, toBoth);
    for (const keys of [opsKeys, escrowKeys]) {
      const { output, error } = await decrypt(encrypted, keys);
      expect(error).toBeUndefined();
      expect(output.equals(plain)).toBe(true);
    }
  });

  it('AEAD (SEIPDv2) in both modes', async () => {
    const bySecret = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE, { aead: true }));
    expect((await decrypt(bySecret, DecryptionKeys.fromPassphrase(PASSPHRASE))).output.equals(plain)).toBe(true);
    const byKey = await encrypt(plain, await EncryptionKeys.fromPublicKeys([ops.publicKey], { aead: true }));
    expect((await decrypt(byKey, opsKeys)).output.equals(plain)).toBe(true);
  });

  it('empty input, tiny chunks and one-byte writes', async () => {
    const empty = await encrypt(Buffer.alloc(0), toBoth);
    expect(await decrypt(empty, opsKeys)).toEqual({ output: Buffer.alloc(0), error: undefined });
    const small = randomBytes(5000);
    const { output } = await through(small, [createEncryptStream(toBoth), createDecryptStream(opsKeys)], 1);
    expect(output.equals(small)).toBe(true);
    const encrypted = await encrypt(small, toBoth);
    expect((await decrypt(encrypted, opsKeys, 1)).output.equals(small)).toBe(true);
  });

  it('AEAD encryption and decryption do not depend on a written buffer once its write has completed', async () => {
    const small = plain.subarray(0, 300_000);
    const encrypted = await throughReusedBuffer(small, createEncryptStream(EncryptionKeys.fromPassphrase(PASSPHRASE, { aead: true })));
    expect(encrypted.error).toBeUndefined();
    const { output, error } = await throughReusedBuffer(encrypted.output, createDecryptStream(DecryptionKeys.fromPassphrase(PASSPHRASE)));
    expect(error).toBeUndefined();
    expect(output.equals(small)).toBe(true);
  });

  it('uses a fresh session key each time', async () => {
    const a = await encrypt(Buffer.from('same'), toBoth);
    const b = await encrypt(Buffer.from('same'), toBoth);
    expect(a.equals(b)).toBe(false);
  });
});

describe('bad input never passes for success', () => {
  let encrypted: Buffer;
  const plain = randomBytes(200_000);

  beforeAll(async () => {
    encrypted = await encrypt(plain, toBoth);
  });

  it('wrong passphrase', async () => {
    const data = await encrypt(Buffer.from('secret'), EncryptionKeys.fromPassphrase(PASSPHRASE));
    const { output, error } = await decrypt(data, DecryptionKeys.fromPassphrase('wrong'));
    expect(codeOf(error)).toBe(CryptoErrorCode.WrongKey);
    expect(output.length).toBe(0);
  });

  it('wrong private key names the recipients', async () => {
    const { output, error } = await decrypt(encrypted, strangerKeys);
    expect(codeOf(error)).toBe(CryptoErrorCode.WrongKey);
    expect((error as Error).message).toContain(stranger.fingerprint);
    expect((error as Error).message).toContain('none of the private keys');
    expect(output.length).toBe(0);
  });

  it('a passphrase for data encrypted to keys, and the reverse', async () => {
    expect(codeOf((await decrypt(encrypted, DecryptionKeys.fromPassphrase(PASSPHRASE))).error)).toBe(CryptoErrorCode.WrongKey);
    const bySecret = await encrypt(Buffer.from('x'), EncryptionKeys.fromPassphrase(PASSPHRASE));
    const { error } = await decrypt(bySecret, opsKeys);
    expect(codeOf(error)).toBe(CryptoErrorCode.WrongKey);
    expect((error as Error).message).toContain('encrypted with a passphrase');
  });

  it('truncated anywhere', async () => {
    const cuts = [1, 2, 10, 50, 100, 150, 200, 400, 1000, 65_536, 100_000, encrypted.length - 23, encrypted.length - 22, encrypted.length - 1];
    for (const cut of cuts) {
      const { error } = await decrypt(encrypted.subarray(0, cut), opsKeys);
      expect([CryptoErrorCode.Integrity, CryptoErrorCode.NotEncrypted], `cut at ${cut}`).toContain(codeOf(error));
    }
    // Past the header, truncation is always an integrity failure, after plaintext was emitted.
    const late = await decrypt(encrypted.subarray(0, 150_000), opsKeys);
    expect(codeOf(late.error)).toBe(CryptoErrorCode.Integrity);
    expect(late.output.length).toBeGreaterThan(0);
  });

  it('bit flips anywhere', async () => {
    for (let position = 0; position < encrypted.length; position += 4999) {
      const flipped = Buffer.from(encrypted);
      flipped[position]! ^= 0x04;
      const { error } = await decrypt(flipped, opsKeys);
      expect(error, `flip at ${position}`).toBeDefined();
      expect(codeOf(error)).toMatch(/^stowage\.crypto\./);
    }
    const last = Buffer.from(encrypted);
    last[last.length - 1]! ^= 0x01;
    expect(codeOf((await decrypt(last, opsKeys)).error)).toBe(CryptoErrorCode.Integrity);
  });

  it('a flip in the data errors at the end, after releasing unauthenticated plaintext', async () => {
    const flipped = Buffer.from(encrypted);
    flipped[100_000]! ^= 0x01;
    const { output, error } = await decrypt(flipped, opsKeys);
    expect(codeOf(error)).toBe(CryptoErrorCode.Integrity);
    expect((error as Error).message).toContain('discard everything decrypted');
    expect(output.length).toBeGreaterThan(100_000); // what callers must throw away
  });

  it('trailing garbage after the message', async () => {
    const { error } = await decrypt(Buffer.concat([encrypted, Buffer.from('trailing')]), opsKeys);
    expect(codeOf(error)).toBe(CryptoErrorCode.Integrity);
  });

  it('AEAD: a flip fails before any plaintext of the damaged chunk is released', async () => {
    const aead = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE, { aead: true }));
    const flipped = Buffer.from(aead);
    flipped[150_000]! ^= 0x01;
    const { output, error } = await decrypt(flipped, DecryptionKeys.fromPassphrase(PASSPHRASE));
    expect(codeOf(error)).toBe(CryptoErrorCode.Integrity);
    expect(output.length).toBe(0);
    expect(codeOf((await decrypt(aead.subarray(0, aead.length - 10), DecryptionKeys.fromPassphrase(PASSPHRASE))).error)).toBe(CryptoErrorCode.Integrity);
  });

  it.each([
    ['an SQLite file', Buffer.concat([Buffer.from('SQLite format 3\0'), randomBytes(100)])],
    ['zstd data', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x29, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f])],
    ['text', Buffer.from('just some text\n')],
    ['ASCII armor', Buffer.from('-----BEGIN PGP MESSAGE-----\n\nhQEMA\n-----END PGP MESSAGE-----\n')],
    ['an empty input', Buffer.alloc(0)],
  ])('%s given to decrypt is not_encrypted', async (_name, input) => {
    const { output, error } = await decrypt(input, opsKeys);
    expect(codeOf(error)).toBe(CryptoErrorCode.NotEncrypted);
    expect(output.length).toBe(0);
  });

  it('an OpenPGP key given to decrypt is not_encrypted', async () => {
    const binaryKey = Buffer.from((await openpgp.readKey({ armoredKey: ops.publicKey })).write());
    expect(codeOf((await decrypt(binaryKey, opsKeys)).error)).toBe(CryptoErrorCode.NotEncrypted);
  });
});

describe('stream behaviour', () => {
  it('an upstream failure fails the pipeline with the upstream error', async () => {
    const source = new Readable({
      read() {
        this.destroy(new Error('disk on fire'));
      },
    });
    await expect(pipeline(source, createEncryptStream(toBoth), new PassThrough())).rejects.toThrow('disk on fire');
  });

  it('keeps the backpressure: a slow reader holds only a bounded amount of ciphertext', async () => {
    const encryptor = createEncryptStream(toBoth);
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < 256; i++) yield Buffer.alloc(64 * 1024, i);
      })(),
    );
    source.pipe(encryptor);
    let produced = 0;
    encryptor.once('data', (chunk: Buffer) => {
      produced += chunk.length;
      encryptor.pause();
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // 16 MiB went in upstream; only a little may sit in the buffers while nobody reads.
    expect(encryptor.readableLength + produced).toBeLessThan(4 * 1024 * 1024);
    encryptor.destroy();
    source.destroy();
  });

  it('destroy() without an error closes quietly, mid-stream', async () => {
    for (const stream of [createEncryptStream(toBoth), createDecryptStream(opsKeys)]) {
      const errors: unknown[] = [];
      stream.on('error', (error) => errors.push(error));
      stream.write(Buffer.alloc(1000, 0x99));
      stream.resume();
      await new Promise((resolve) => setTimeout(resolve, 20));
      const closed = new Promise((resolve) => stream.once('close', resolve));
      stream.destroy();
      await closed;
      expect(errors).toEqual([]);
    }
  });
});
