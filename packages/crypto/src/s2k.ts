/*
 * OpenPGP string-to-key (RFC 4880 §3.7.1) on node:crypto, and the passphrase's session key packet
 * (SKESK v4, §5.3) that wraps a session key with it. openpgp.js derives an iterated+salted key by
 * filling one buffer of the whole count (65 MB at the maximum count byte, 255) and hashing it:
 * 62 MiB of garbage per message that V8 keeps until a full GC, on top of the stream's own buffers.
 * This hashes one 64 KiB block of repetitions over and over instead.
 *
 * A derivation costs ~40 ms at that count, once per message. Messages written with one salt (see
 * `passphraseKeyPacket`) share the derived key, so the last few derivations are kept: a restore of a
 * full backup and its incrementals derives the passphrase's key once, not once per artifact.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { OPENPGP_CONFIG } from './keys.js';

/** RFC 4880 §9.4 id of SHA-256, the S2K hash written (openpgp.js's default too). */
const SHA256_ID = 8;
/** RFC 4880 §9.2 id of AES-256. */
const AES256_ID = 9;
const ITERATED_SALTED = 3;
const SKESK_TAG = 3;

/** The bytes an iterated S2K hashes for count byte `c` (RFC 4880 §3.7.1.3). */
export function s2kCount(c: number): number {
  return (16 + (c & 15)) << ((c >> 4) + 6);
}

/** Derivations kept by `s2kKey`: a few salts (one per chain of backups) are in use at a time. */
const KEPT_DERIVATIONS = 8;
/** Derived keys by a SHA-256 of every input, passphrase included, so that no other input finds them. */
const derived = new Map<string, Buffer>();

/**
 * RFC 4880 §3.7.1: hash(zeros(i) ‖ salted passphrase, repeated to `count` bytes) for i = 0, 1… until
 * `length` bytes. The last `KEPT_DERIVATIONS` results are kept in memory and returned as copies.
 */
export function s2kKey(type: string, hash: string, passphrase: Buffer, salt: Uint8Array, count: number, length: number): Buffer {
  const id = createHash('sha256')
    .update(JSON.stringify([type, hash, count, length, Buffer.from(salt).toString('hex')]))
    .update(passphrase)
    .digest('hex');
  let key = derived.get(id);
  if (key === undefined) {
    key = deriveS2kKey(type, hash, passphrase, salt, count, length);
    derived.set(id, key);
    if (derived.size > KEPT_DERIVATIONS) derived.delete(derived.keys().next().value!);
  }
  return Buffer.from(key);
}

function deriveS2kKey(type: string, hash: string, passphrase: Buffer, salt: Uint8Array, count: number, length: number): Buffer {
  const data = Buffer.concat([salt, passphrase]);
  const total = type === 'iterated' ? Math.max(count, data.length) : data.length;
  // One buffer of whole repetitions, hashed as many times as it fits, then the rest.
  const block = Buffer.alloc(data.length * Math.max(1, Math.floor((64 << 10) / Math.max(1, data.length))));
  for (let at = 0; at < block.length; at += data.length) data.copy(block, at);
  const parts: Buffer[] = [];
  for (let prefix = 0, produced = 0; produced < length; prefix++) {
    const h = createHash(hash).update(Buffer.alloc(prefix));
    let left = total;
    for (; left >= block.length; left -= block.length) h.update(block);
    h.update(block.subarray(0, left));
    const digest = h.digest();
    parts.push(digest);
    produced += digest.length;
  }
  return Buffer.concat(parts).subarray(0, length);
}

/** Bytes of an S2K salt (RFC 4880 §3.7.1.2). */
export const S2K_SALT_BYTES = 8;

/**
 * The SKESK v4 packet that wraps the AES-256 `sessionKey` under `passphrase`: the packet
 * openpgp.js's `encryptSessionKey` writes under `OPENPGP_CONFIG` (AES-256, iterated+salted
 * SHA-256 S2K at the configured count byte, the session key's algorithm byte and the key encrypted
 * in CFB with a zero IV), which gpg and openpgp.js read. The salt is `salt`, else a fresh one.
 */
export function passphraseKeyPacket(sessionKey: Buffer, passphrase: string, salt: Uint8Array = randomBytes(S2K_SALT_BYTES)): Buffer {
  if (salt.length !== S2K_SALT_BYTES) throw new TypeError(`an S2K salt is ${S2K_SALT_BYTES} bytes, not ${salt.length}`);
  const countByte = OPENPGP_CONFIG.s2kIterationCountByte ?? 255;
  const derived = s2kKey('iterated', 'sha256', Buffer.from(passphrase, 'utf8'), salt, s2kCount(countByte), 32);
  const cipher = createCipheriv('aes-256-cfb', derived, Buffer.alloc(16));
  const wrapped = Buffer.concat([cipher.update(Buffer.concat([Buffer.of(AES256_ID), sessionKey])), cipher.final()]);
  const body = Buffer.concat([Buffer.of(4, AES256_ID, ITERATED_SALTED, SHA256_ID), Buffer.from(salt), Buffer.of(countByte), wrapped]);
  // A new-format header with a one-octet length: the body is 46 bytes.
  return Buffer.concat([Buffer.of(0xc0 | SKESK_TAG, body.length), body]);
}
