import { createDecipheriv, randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { describe, expect, it } from 'vitest';
import { OPENPGP_CONFIG } from './keys.js';
import { passphraseKeyPacket, s2kCount, s2kKey } from './s2k.js';

// The native S2K and SKESK writer against openpgp.js, which reads what they write; gpg reads it in gpg-interop.test.ts.

interface ParsedSkesk {
  version: number;
  sessionKeyEncryptionAlgorithm: number;
  encrypted: Uint8Array;
  s2k: { type: string; algorithm: number; c: number; salt: Uint8Array; getCount(): number };
  write(): Uint8Array;
}

async function parse(packets: Uint8Array): Promise<ParsedSkesk> {
  const message = await openpgp.readMessage({ binaryMessage: packets, config: OPENPGP_CONFIG });
  return message.packets[0] as unknown as ParsedSkesk;
}

const PASSPHRASE = 'correct horse battery staple';

describe('S2K', () => {
  it('count bytes decode as RFC 4880 §3.7.1.3 says', () => {
    expect([0, 96, 255].map(s2kCount)).toEqual([1024, 65536, 65011712]);
  });

  it.each([0, 96, 238])('derives the key openpgp.js derives (iterated SHA-256, count byte %i)', async (countByte) => {
    const sessionKey = randomBytes(32);
    const packets = await openpgp.encryptSessionKey({
      data: sessionKey,
      algorithm: 'aes256',
      format: 'binary',
      passwords: [PASSPHRASE],
      config: { ...OPENPGP_CONFIG, s2kIterationCountByte: countByte },
    });
    const { s2k, encrypted } = await parse(packets);
    expect(s2k.getCount()).toBe(s2kCount(countByte));
    const derived = s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), s2k.salt, s2kCount(countByte), 32);
    const decipher = createDecipheriv('aes-256-cfb', derived, Buffer.alloc(16));
    const unwrapped = Buffer.concat([decipher.update(encrypted), decipher.final()]);
    expect(unwrapped.equals(Buffer.concat([Buffer.of(9), sessionKey]))).toBe(true);
  });
});

describe('passphrase session key packet', () => {
  it('is the SKESK v4 openpgp.js writes: AES-256, iterated+salted SHA-256 at count byte 255, re-serialized byte for byte', async () => {
    const packet = passphraseKeyPacket(randomBytes(32), PASSPHRASE);
    const skesk = await parse(packet);
    expect(skesk).toMatchObject({ version: 4, sessionKeyEncryptionAlgorithm: openpgp.enums.symmetric.aes256 });
    expect(skesk.s2k).toMatchObject({ type: 'iterated', algorithm: openpgp.enums.hash.sha256, c: 255 });
    expect(packet[0]).toBe(0xc3);
    expect(packet[1]).toBe(packet.length - 2);
    expect(Buffer.from(skesk.write()).equals(packet.subarray(2))).toBe(true);
  });

  it('openpgp.js unwraps the session key with the passphrase, and not with another', async () => {
    const sessionKey = randomBytes(32);
    const message = await openpgp.readMessage({ binaryMessage: passphraseKeyPacket(sessionKey, PASSPHRASE), config: OPENPGP_CONFIG });
    const [unwrapped] = await openpgp.decryptSessionKeys({ message, passwords: [PASSPHRASE], config: OPENPGP_CONFIG });
    expect(unwrapped).toMatchObject({ algorithm: 'aes256' });
    expect(Buffer.from(unwrapped!.data).equals(sessionKey)).toBe(true);
    await expect(openpgp.decryptSessionKeys({ message, passwords: ['wrong'], config: OPENPGP_CONFIG })).rejects.toThrow();
  });

  it('takes a fresh salt each time', async () => {
    const sessionKey = randomBytes(32);
    const [a, b] = await Promise.all([parse(passphraseKeyPacket(sessionKey, PASSPHRASE)), parse(passphraseKeyPacket(sessionKey, PASSPHRASE))]);
    expect(Buffer.from(a.s2k.salt).equals(Buffer.from(b.s2k.salt))).toBe(false);
  });
});
