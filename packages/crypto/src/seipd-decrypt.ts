/*
 * Native SEIPDv1 decryption (RFC 4880 §5.13, §5.14, §5.9, §3.7.1) on node:crypto, the inverse of
 * seipd.ts: openpgp.js decrypts through Web Streams at ~150 MiB/s and derives passphrase keys in
 * JavaScript over a 65 MB buffer per message; this uses OpenSSL's AES-CFB and SHA-1.
 *
 *   SEIPD body: 0x01 ‖ CFB( prefix(18) ‖ literal packet ‖ 0xD3 0x14 ‖ SHA-1 )
 *
 * Plaintext is released as it is decrypted (memory stays bounded), and the MDC is checked at the
 * end: `final()` throws `integrity` when it fails, so nothing released may be trusted before
 * `final()` returned — callers write to a temporary file and commit it only after that.
 * Messages it does not handle (a compressed or signed inner packet, a non-AES cipher, an S2K other
 * than simple/salted/iterated) are left to openpgp.js by the caller (streams.ts).
 */
import { createDecipheriv, createHash, timingSafeEqual, type Decipher, type Hash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { CryptoError, CryptoErrorCode } from './errors.js';
import { OPENPGP_CONFIG } from './keys.js';
import { s2kKey } from './s2k.js';

/** OpenSSL names of the CFB ciphers the native path handles, by openpgp.js's algorithm name. */
export const CFB_CIPHERS: Readonly<Record<string, string>> = { aes128: 'aes-128-cfb', aes192: 'aes-192-cfb', aes256: 'aes-256-cfb' };
const PREFIX_LENGTH = 18;
/** The MDC packet: 0xD3 0x14 then the 20-byte SHA-1. */
const MDC_LENGTH = 22;
const LITERAL_TAG = 11;

/** True when the first plaintext byte after the prefix starts a literal packet (new or old format). */
export function startsLiteral(ctb: number): boolean {
  return ctb === (0xc0 | LITERAL_TAG) || (ctb & 0xfc) === (0x80 | (LITERAL_TAG << 2));
}

/**
 * Decrypts one SEIPDv1 packet fed in pieces from its first header byte on, and returns the data
 * of the literal packet inside it.
 */
export class SeipdDecryptor {
  readonly #outer = new PacketBody();
  readonly #literal = new PacketBody();
  readonly #decipher: Decipher;
  readonly #mdc: Hash = createHash('sha1');
  #versionRead = false;
  #prefixLeft = PREFIX_LENGTH;
  /** The last plaintext bytes, held back because they may be the MDC packet. */
  #held = Buffer.alloc(0);
  /** The literal packet's header (format, file name, date) until it is complete. */
  #literalHeader: Buffer | undefined = Buffer.alloc(0);

  /** `cipher`: one of `CFB_CIPHERS`'s values. */
  constructor(cipher: string, sessionKey: Uint8Array) {
    this.#decipher = createDecipheriv(cipher, sessionKey, Buffer.alloc(16));
  }

  /** Decrypts the next bytes of the message; returns the literal data they complete. */
  update(bytes: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const after = this.#outer.feed(bytes, (body) => this.#ciphertext(body, out));
    if (after !== undefined && after.length > 0) throw integrity('data follows the encrypted packet');
    return out;
  }

  /** Checks the end of the message and its MDC; throws `integrity` when either fails. */
  final(): void {
    this.#decipher.final();
    if (!this.#outer.done) throw integrity('the encrypted data is truncated');
    const held = this.#held;
    if (held.length !== MDC_LENGTH || held[0] !== 0xd3 || held[1] !== 0x14) throw integrity('the modification detection code is missing');
    if ((!this.#literal.done && !this.#literal.indeterminate) || this.#literalHeader !== undefined) throw integrity('the literal data is truncated');
    this.#mdc.update(held.subarray(0, 2));
    if (!timingSafeEqual(this.#mdc.digest(), held.subarray(2))) throw integrity('modification detected (SHA-1 of the plaintext differs)');
  }

  #ciphertext(body: Buffer, out: Buffer[]): void {
    if (!this.#versionRead && body.length > 0) {
      if (body[0] !== 1) throw integrity(`unexpected SEIPD version ${body[0]}`);
      this.#versionRead = true;
      body = body.subarray(1);
    }
    if (body.length === 0) return;
    const plain = this.#decipher.update(body);
    if (plain.length >= MDC_LENGTH) {
      this.#plaintext(this.#held, out);
      this.#plaintext(plain.subarray(0, plain.length - MDC_LENGTH), out);
      this.#held = Buffer.from(plain.subarray(plain.length - MDC_LENGTH));
    } else {
      const all = Buffer.concat([this.#held, plain]);
      this.#plaintext(all.subarray(0, Math.max(0, all.length - MDC_LENGTH)), out);
      this.#held = all.subarray(Math.max(0, all.length - MDC_LENGTH));
    }
  }

  #plaintext(plain: Buffer, out: Buffer[]): void {
    if (plain.length === 0) return;
    this.#mdc.update(plain);
    if (this.#prefixLeft > 0) {
      const skip = Math.min(this.#prefixLeft, plain.length);
      this.#prefixLeft -= skip;
      plain = plain.subarray(skip);
      if (plain.length === 0) return;
    }
    if (this.#literal.done) throw integrity('unexpected data after the literal packet');
    const after = this.#literal.feed(plain, (data) => this.#literalData(data, out));
    if (this.#literal.tag !== undefined && this.#literal.tag !== LITERAL_TAG)
      throw integrity(`unexpected packet (tag ${this.#literal.tag}) inside the encrypted data`);
    if (after !== undefined && after.length > 0) throw integrity('unexpected data after the literal packet');
  }

  #literalData(data: Buffer, out: Buffer[]): void {
    if (this.#literalHeader !== undefined) {
      // format (1) ‖ file name length (1) ‖ file name ‖ date (4)
      const header = Buffer.concat([this.#literalHeader, data]);
      if (header.length < 2 || header.length < 6 + header[1]!) {
        this.#literalHeader = header;
        return;
      }
      this.#literalHeader = undefined;
      data = header.subarray(6 + header[1]!);
    }
    if (data.length > 0) out.push(data);
  }
}

/**
 * The body of one packet given in pieces: new-format headers with definite or partial lengths
 * (RFC 4880 §4.2.2), old-format ones with definite or indeterminate length.
 */
class PacketBody {
  tag: number | undefined;
  done = false;
  indeterminate = false;
  #header: number[] = [];
  /** Body bytes left in the current chunk. */
  #remaining = 0;
  /** The current chunk is the packet's last. */
  #last = false;

  /** Feeds `bytes`, emitting body pieces; returns what follows the packet once it has ended. */
  feed(bytes: Buffer, emit: (body: Buffer) => void): Buffer | undefined {
    let at = 0;
    for (;;) {
      if (this.done) return bytes.subarray(at);
      if (this.#remaining === 0 && !this.indeterminate) {
        if (this.#last) {
          this.done = true;
          continue;
        }
        if (at >= bytes.length) return undefined;
        this.#header.push(bytes[at++]!);
        this.#readHeader();
        continue;
      }
      if (at >= bytes.length) return undefined;
      const take = this.indeterminate ? bytes.length - at : Math.min(this.#remaining, bytes.length - at);
      emit(bytes.subarray(at, at + take));
      if (!this.indeterminate) this.#remaining -= take;
      at += take;
    }
  }

  #readHeader(): void {
    const h = this.#header;
    let lengthAt = 0;
    if (this.tag === undefined) {
      const ctb = h[0]!;
      if ((ctb & 0x80) === 0) throw integrity('not an OpenPGP packet');
      if ((ctb & 0x40) === 0) {
        const type = ctb & 0x03;
        if (type === 3) return this.#set((ctb >> 2) & 0x0f, { indeterminate: true });
        const size = [1, 2, 4][type]!;
        if (h.length < 1 + size) return;
        let length = 0;
        for (let i = 1; i <= size; i++) length = length * 256 + h[i]!;
        return this.#set((ctb >> 2) & 0x0f, { length, last: true });
      }
      lengthAt = 1;
    }
    const first = h[lengthAt];
    if (first === undefined) return;
    const tag = this.tag ?? h[0]! & 0x3f;
    if (first < 192) return this.#set(tag, { length: first, last: true });
    if (first < 224) return h.length < lengthAt + 2 ? undefined : this.#set(tag, { length: ((first - 192) << 8) + h[lengthAt + 1]! + 192, last: true });
    if (first === 255) {
      if (h.length < lengthAt + 5) return;
      return this.#set(tag, { length: ((h[lengthAt + 1]! << 24) >>> 0) + (h[lengthAt + 2]! << 16) + (h[lengthAt + 3]! << 8) + h[lengthAt + 4]!, last: true });
    }
    return this.#set(tag, { length: 1 << (first & 0x1f), last: false });
  }

  #set(tag: number, chunk: { length: number; last: boolean } | { indeterminate: true }): void {
    this.tag = tag;
    this.#header = [];
    if ('indeterminate' in chunk) this.indeterminate = true;
    else {
      this.#remaining = chunk.length;
      this.#last = chunk.last;
    }
  }
}

/** What a SKESK v4 packet holds, as parsed by openpgp.js. */
interface Skesk {
  version: number;
  /** The cipher of the S2K key: set when the packet wraps a session key… */
  sessionKeyEncryptionAlgorithm: number | null;
  /** …else the S2K key is the session key, for this cipher (gpg --symmetric). */
  sessionKeyAlgorithm: number | null;
  encrypted: Uint8Array | null;
  s2k: { type: string; algorithm: number; salt?: Uint8Array; getCount?: () => number } | null;
}

const HASHES: Readonly<Record<number, string>> = { 2: 'sha1', 8: 'sha256', 9: 'sha384', 10: 'sha512', 11: 'sha224' };
/** RFC 4880 §9.2 ids of the AES ciphers, and their key lengths. */
const AES: Readonly<Record<number, { name: openpgp.enums.symmetricNames; keyLength: number }>> = {
  7: { name: 'aes128', keyLength: 16 },
  8: { name: 'aes192', keyLength: 24 },
  9: { name: 'aes256', keyLength: 32 },
};

/**
 * The session keys `passphrase` yields from the SKESK packets in `keyPackets` (parsed by
 * openpgp.js), derived natively; undefined when a packet is outside what this handles (SKESK v5/v6,
 * Argon2), for openpgp.js to do. Candidates are not checked: the caller runs the quick check.
 */
export async function passphraseSessionKeys(keyPackets: Uint8Array, passphrase: string): Promise<openpgp.SessionKey[] | undefined> {
  const message = await openpgp.readMessage({ binaryMessage: keyPackets, config: OPENPGP_CONFIG });
  const packets = message.packets.filterByTag(openpgp.enums.packet.symEncryptedSessionKey) as unknown as Skesk[];
  if (packets.length === 0) return undefined;
  const keys: openpgp.SessionKey[] = [];
  for (const packet of packets) {
    const s2k = packet.s2k;
    const aes = AES[packet.sessionKeyEncryptionAlgorithm ?? packet.sessionKeyAlgorithm ?? -1];
    const hash = s2k && HASHES[s2k.algorithm];
    if (packet.version !== 4 || !s2k || !['simple', 'salted', 'iterated'].includes(s2k.type) || !aes || !hash) return undefined;
    const derived = s2kKey(s2k.type, hash, Buffer.from(passphrase, 'utf8'), s2k.salt ?? new Uint8Array(0), s2k.getCount?.() ?? 0, aes.keyLength);
    if (!packet.encrypted || packet.encrypted.length === 0) {
      keys.push({ data: derived, algorithm: aes.name });
      continue;
    }
    // The session key wrapped under the S2K key: CFB with a zero IV; algorithm byte, then the key.
    const decipher = createDecipheriv(CFB_CIPHERS[aes.name]!, derived, Buffer.alloc(16));
    const unwrapped = Buffer.concat([decipher.update(packet.encrypted), decipher.final()]);
    const wrapped = AES[unwrapped[0]!];
    if (wrapped === undefined || wrapped.keyLength !== unwrapped.length - 1) continue; // a wrong passphrase
    keys.push({ data: unwrapped.subarray(1), algorithm: wrapped.name });
  }
  return keys;
}

function integrity(why: string): CryptoError {
  return new CryptoError(
    CryptoErrorCode.Integrity,
    `the encrypted data failed its integrity check: it was modified, corrupted or truncated (${why}); discard everything decrypted from it`,
  );
}
