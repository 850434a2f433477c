import { randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import { CryptoErrorCode, isCryptoError } from './errors.js';
import { DecryptionKeys, EncryptionKeys, OPENPGP_CONFIG, generateKeyPair, type GeneratedKeyPair } from './keys.js';
import { quickCheck, scanForSeipd } from './quick-check.js';
import { createEncryptStream } from './streams.js';
import { decrypt, encrypt, throughReusedBuffer } from './test/helpers.js';

// The native SEIPDv1 writer (seipd.ts), read back by openpgp.js; gpg reads it in gpg-interop.test.ts.

const PASSPHRASE = 'native seipd';
const CHUNK = 1 << 18;

let ops: GeneratedKeyPair;
beforeAll(async () => {
  ops = await generateKeyPair({ userId: 'ops <ops@example.com>' });
});

/** The packets of a binary message as openpgp.js parses them. */
async function packetsOf(encrypted: Buffer): Promise<openpgp.PacketList<openpgp.AnyPacket>> {
  return (await openpgp.readMessage({ binaryMessage: encrypted, config: OPENPGP_CONFIG })).packets;
}

describe('native SEIPDv1 messages', () => {
  it('passphrase mode: SKESK v4 (AES-256, iterated+salted S2K at the maximum count), then SEIPD v1 whose prefix passes the quick check', async () => {
    const encrypted = await encrypt(randomBytes(1000), EncryptionKeys.fromPassphrase(PASSPHRASE));
    const packets = await packetsOf(encrypted);
    expect(packets.map((packet) => packet.constructor.name)).toEqual(['SymEncryptedSessionKeyPacket', 'SymEncryptedIntegrityProtectedDataPacket']);
    expect(packets[0]).toMatchObject({ version: 4, sessionKeyEncryptionAlgorithm: openpgp.enums.symmetric.aes256, s2k: { type: 'iterated', c: 255 } });
    const scan = scanForSeipd(encrypted);
    if (scan.state !== 'found') throw new Error(`no SEIPD packet found: ${scan.state}`);
    expect(scan.version).toBe(1);
    const message = await openpgp.readMessage({ binaryMessage: encrypted, config: OPENPGP_CONFIG });
    const [sessionKey] = await openpgp.decryptSessionKeys({ message, passwords: [PASSPHRASE], config: OPENPGP_CONFIG });
    expect(quickCheck(sessionKey!, scan.prefix)).toBe(true);
    expect(quickCheck({ data: randomBytes(32), algorithm: 'aes256' }, scan.prefix)).toBe(false);
  });

  it('public-key mode: a PKESK v3 per recipient, then SEIPD v1', async () => {
    const keys = await EncryptionKeys.fromPublicKeys([ops.publicKey]);
    const plain = randomBytes(5000);
    const encrypted = await encrypt(plain, keys);
    const packets = await packetsOf(encrypted);
    expect(packets.map((packet) => packet.constructor.name)).toEqual(['PublicKeyEncryptedSessionKeyPacket', 'SymEncryptedIntegrityProtectedDataPacket']);
    expect(packets[0]).toMatchObject({ version: 3 });
    const { output, error } = await decrypt(encrypted, await DecryptionKeys.fromPrivateKeys([ops.privateKey]));
    expect(error).toBeUndefined();
    expect(output.equals(plain)).toBe(true);
  });

  // Sizes around the partial-length chunks of both packets (the literal packet has 6 header
  // bytes; the SEIPD body adds the version byte, the 18-byte prefix and the 22-byte MDC packet).
  it.each([0, 1, 191, 192, 8383, 8384, CHUNK - 47, CHUNK - 46, CHUNK - 6, CHUNK - 5, CHUNK, 3 * CHUNK + 7])(
    'openpgp.js reads %i bytes written in odd chunks',
    async (size) => {
      const plain = randomBytes(size);
      const encrypted = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE));
      const { output, error } = await decrypt(encrypted, DecryptionKeys.fromPassphrase(PASSPHRASE), 4099);
      expect(error).toBeUndefined();
      expect(output.equals(plain)).toBe(true);
    },
  );

  it('does not depend on a written buffer once its write has completed (writers may reuse it)', async () => {
    const plain = randomBytes(CHUNK + 70_000);
    const encrypted = await throughReusedBuffer(plain, createEncryptStream(EncryptionKeys.fromPassphrase(PASSPHRASE)));
    expect(encrypted.error).toBeUndefined();
    const { output, error } = await decrypt(encrypted.output, DecryptionKeys.fromPassphrase(PASSPHRASE));
    expect(error).toBeUndefined();
    expect(output.equals(plain)).toBe(true);
  });

  it('two messages of the same plaintext differ (fresh session key and prefix)', async () => {
    const plain = Buffer.alloc(4096, 7);
    const keys = await EncryptionKeys.fromPublicKeys([ops.publicKey]);
    const [first, second] = await Promise.all([encrypt(plain, keys), encrypt(plain, keys)]);
    expect(first.equals(second)).toBe(false);
  });
});

describe('tampered native messages are rejected', () => {
  const plain = randomBytes(2 * CHUNK + 12345);
  let encrypted: Buffer;
  beforeAll(async () => {
    encrypted = await encrypt(plain, EncryptionKeys.fromPassphrase(PASSPHRASE));
  });

  it.each([
    ['a flipped byte in the data', (data: Buffer) => flip(data, CHUNK + 100)],
    ['a flipped byte in the MDC', (data: Buffer) => flip(data, data.length - 3)],
    ['the last byte cut off', (data: Buffer) => data.subarray(0, data.length - 1)],
    ['the MDC packet cut off', (data: Buffer) => data.subarray(0, data.length - 22)],
    ['cut inside a partial chunk', (data: Buffer) => data.subarray(0, CHUNK + 1000)],
  ])('%s: integrity error', async (_name, damage) => {
    const { error } = await decrypt(damage(encrypted), DecryptionKeys.fromPassphrase(PASSPHRASE));
    expect(isCryptoError(error) && error.code).toBe(CryptoErrorCode.Integrity);
  });
});

function flip(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at]! ^= 0x01;
  return copy;
}
