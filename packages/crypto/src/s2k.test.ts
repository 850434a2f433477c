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

describe('kept derivations', () => {
  const MAX_COUNT = s2kCount(255);
  const timed = (derive: () => Buffer) => {
    const start = performance.now();
    const key = derive();
    return { key, ms: performance.now() - start };
  };

  it('a second derivation of the same inputs is taken from memory, as a copy', () => {
    const salt = randomBytes(8);
    const first = timed(() => s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), salt, MAX_COUNT, 32));
    const again = timed(() => s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), salt, MAX_COUNT, 32));
    expect(again.key.equals(first.key)).toBe(true);
    expect(again.ms).toBeLessThan(first.ms / 10);
    again.key.fill(0);
    expect(s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), salt, MAX_COUNT, 32).equals(first.key)).toBe(true);
  });

  it('no other input gets a kept key: another passphrase, salt, count, hash or length derives its own, as openpgp.js does', async () => {
    const salt = randomBytes(8);
    const kept = s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), salt, MAX_COUNT, 32);
    const others: Array<[string, string, Uint8Array, number, number]> = [
      ['iterated', 'sha256', salt, s2kCount(254), 32],
      ['iterated', 'sha512', salt, MAX_COUNT, 32],
      ['iterated', 'sha256', randomBytes(8), MAX_COUNT, 32],
      ['salted', 'sha256', salt, MAX_COUNT, 32],
      ['iterated', 'sha256', salt, MAX_COUNT, 48],
    ];
    for (const [type, hash, otherSalt, count, length] of others) {
      const key = s2kKey(type, hash, Buffer.from(PASSPHRASE), otherSalt, count, length);
      expect(key).toHaveLength(length);
      expect(key.equals(kept)).toBe(false);
    }
    // A shorter key is the leftmost bytes of the same hash (RFC 4880 §3.7.1), not the kept 32 bytes.
    expect(s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), salt, MAX_COUNT, 16).equals(kept.subarray(0, 16))).toBe(true);
    expect(s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), salt, MAX_COUNT, 48).subarray(0, 32).equals(kept)).toBe(true);
    // Another passphrase, same salt: openpgp.js unwraps what it wrapped, and the first passphrase does not.
    const sessionKey = randomBytes(32);
    const message = await openpgp.readMessage({ binaryMessage: passphraseKeyPacket(sessionKey, 'another passphrase', salt), config: OPENPGP_CONFIG });
    const [unwrapped] = await openpgp.decryptSessionKeys({ message, passwords: ['another passphrase'], config: OPENPGP_CONFIG });
    expect(Buffer.from(unwrapped!.data).equals(sessionKey)).toBe(true);
    await expect(openpgp.decryptSessionKeys({ message, passwords: [PASSPHRASE], config: OPENPGP_CONFIG })).rejects.toThrow();
  });

  it('keeps a few: after eight other salts, the first is derived again', () => {
    const salt = randomBytes(8);
    const derive = (s: Uint8Array) => s2kKey('iterated', 'sha256', Buffer.from(PASSPHRASE), s, s2kCount(192), 32);
    derive(salt);
    const kept = timed(() => derive(salt));
    for (let i = 0; i < 8; i++) derive(randomBytes(8));
    const evicted = timed(() => derive(salt));
    expect(evicted.key.equals(kept.key)).toBe(true);
    expect(evicted.ms).toBeGreaterThan(kept.ms * 10);
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

  it('writes a given salt, and refuses one of another length', async () => {
    const salt = randomBytes(8);
    const packet = passphraseKeyPacket(randomBytes(32), PASSPHRASE, salt);
    expect(Buffer.from((await parse(packet)).s2k.salt).equals(salt)).toBe(true);
    for (const bad of [randomBytes(7), randomBytes(9), new Uint8Array(0)]) {
      expect(() => passphraseKeyPacket(randomBytes(32), PASSPHRASE, bad)).toThrow(`an S2K salt is 8 bytes, not ${bad.length}`);
    }
  });

  it('takes a fresh salt each time', async () => {
    const sessionKey = randomBytes(32);
    const [a, b] = await Promise.all([parse(passphraseKeyPacket(sessionKey, PASSPHRASE)), parse(passphraseKeyPacket(sessionKey, PASSPHRASE))]);
    expect(Buffer.from(a.s2k.salt).equals(Buffer.from(b.s2k.salt))).toBe(false);
  });
});
