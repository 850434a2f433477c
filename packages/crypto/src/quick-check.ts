/*
 * The CFB "quick check" of SEIPDv1 (RFC 4880 §5.13, RFC 9580 §5.13.1): the encrypted data starts
 * with a block of random bytes whose last two bytes are repeated. A passphrase-derived session key
 * carries no check of its own (gpg's symmetric messages have no encrypted session key at all), so
 * without this a wrong passphrase would decrypt to garbage and be reported as corruption. GnuPG
 * performs the same check. It is only an early hint: the MDC still authenticates everything.
 * RFC 4880 §14 notes the check can be an oracle (Mister–Zuccherato) for a service that decrypts
 * attacker-supplied data and reports this failure distinctly; Stowage decrypts its operators' own
 * backups, where telling "wrong passphrase" from "corrupt backup" matters more.
 */
import { createDecipheriv } from 'node:crypto';
import { CFB_CIPHERS } from './seipd-decrypt.js';

/** The start of a message's encrypted-data packet, found by scanning its first bytes. */
export type SeipdScan = { state: 'need-more' } | { state: 'none' } | { state: 'found'; version: number | undefined; prefix: Uint8Array; start: number };

const SEIPD_TAG = 18;
/**
 * Bytes of ciphertext scanned: one AES block plus the two repeated bytes (the quick check), and
 * the first byte of the packet inside (what the native decryptor needs to know it can go on).
 */
const PREFIX_LENGTH = 19;

/**
 * Walks the packet headers at the start of a binary OpenPGP message (session key packets, then
 * the SEIPD packet) and returns the SEIPD version, its first 19 ciphertext bytes and where the
 * SEIPD packet starts.
 */
export function scanForSeipd(head: Uint8Array): SeipdScan {
  let position = 0;
  while (position < head.length) {
    const ctb = head[position]!;
    if ((ctb & 0x80) === 0) return { state: 'none' };
    const header = packetHeader(head, position);
    if (header === undefined) return { state: 'need-more' };
    if (header.tag === SEIPD_TAG) {
      const body = position + header.headerLength;
      if (head.length < body + 1 + PREFIX_LENGTH) return { state: 'need-more' };
      return { state: 'found', version: head[body], prefix: head.subarray(body + 1, body + 1 + PREFIX_LENGTH), start: position };
    }
    // Only data packets may have partial or indeterminate lengths; anything else is unexpected.
    if (header.length === undefined) return { state: 'none' };
    position += header.headerLength + header.length;
  }
  return { state: 'need-more' };
}

/**
 * True when `sessionKey` decrypts `prefix` (the first 18 or more bytes of a SEIPDv1 body) to a
 * block whose last two bytes repeat; undefined when the cipher is not AES (no check is made).
 */
export function quickCheck(sessionKey: { data: Uint8Array; algorithm: string | null }, prefix: Uint8Array): boolean | undefined {
  const plain = decryptPrefix(sessionKey, prefix);
  return plain && plain[14] === plain[16] && plain[15] === plain[17];
}

/** `prefix` decrypted with `sessionKey` (AES-CFB, zero IV); undefined when the cipher is not AES. */
export function decryptPrefix(sessionKey: { data: Uint8Array; algorithm: string | null }, prefix: Uint8Array): Buffer | undefined {
  const cipher = CFB_CIPHERS[sessionKey.algorithm ?? ''];
  if (cipher === undefined) return undefined;
  const decipher = createDecipheriv(cipher, sessionKey.data, Buffer.alloc(16));
  return Buffer.concat([decipher.update(prefix), decipher.final()]);
}

function packetHeader(head: Uint8Array, at: number): { tag: number; headerLength: number; length: number | undefined } | undefined {
  const ctb = head[at]!;
  const byte = (offset: number) => head[at + offset];
  if ((ctb & 0x40) !== 0) {
    const tag = ctb & 0x3f;
    const first = byte(1);
    if (first === undefined) return undefined;
    if (first < 192) return { tag, headerLength: 2, length: first };
    if (first < 224) {
      const second = byte(2);
      return second === undefined ? undefined : { tag, headerLength: 3, length: ((first - 192) << 8) + second + 192 };
    }
    if (first === 255) return at + 6 > head.length ? undefined : { tag, headerLength: 6, length: readUint32(head, at + 2) };
    return { tag, headerLength: 2, length: undefined }; // partial body length
  }
  const tag = (ctb >> 2) & 0x0f;
  const lengthType = ctb & 0x03;
  if (lengthType === 3) return { tag, headerLength: 1, length: undefined }; // indeterminate
  const size = [1, 2, 4][lengthType]!;
  if (at + 1 + size > head.length) return undefined;
  let length = 0;
  for (let i = 0; i < size; i++) length = length * 256 + head[at + 1 + i]!;
  return { tag, headerLength: 1 + size, length };
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) >>> 0) + (bytes[at + 1]! << 16) + (bytes[at + 2]! << 8) + bytes[at + 3]!;
}
