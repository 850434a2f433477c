/*
 * Native SEIPDv1 encryption (RFC 4880 §5.7, §5.9, §5.13, §5.14, §13.9) on node:crypto.
 * openpgp.js pushes every byte through Web Streams and measured ~150 MiB/s; this writes the same
 * packets with OpenSSL's AES-256-CFB and SHA-1. A passphrase's session key packet (SKESK v4 with
 * iterated+salted S2K) is written natively too (s2k.ts: openpgp.js would fill a 65 MB buffer to
 * derive its key); openpgp.js writes the PKESK v3 packets, one per recipient.
 *
 * Layout of the message:
 *   session key packets | SEIPD (tag 18): 0x01 ‖ CFB( prefix ‖ literal packet ‖ 0xD3 0x14 ‖ SHA-1 )
 * where CFB is plain AES-CFB with a zero IV (SEIPD's variant of OpenPGP CFB has no resync), the
 * prefix is 16 random bytes with the last two repeated (the quick check), the literal packet
 * (tag 11, binary) holds the plaintext, and the SHA-1 (the MDC) covers everything from the prefix
 * up to and including the MDC packet's two header bytes. Both data packets are streamed with
 * partial body lengths of PARTIAL_CHUNK bytes, so memory stays bounded whatever the size.
 */
import { createCipheriv, createHash, randomBytes, type Cipher, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import * as openpgp from 'openpgp';
import { OPENPGP_CONFIG, type EncryptionMaterial } from './keys.js';
import { passphraseKeyPacket } from './s2k.js';

const LITERAL_TAG = 11;
const SEIPD_TAG = 18;
/** Partial body chunk: 2^18 bytes (a partial length must be a power of two, the first ≥ 512). */
const PARTIAL_POWER = 18;
const PARTIAL_CHUNK = 1 << PARTIAL_POWER;
const MDC_HEADER = Buffer.from([0xd3, 0x14]);

/**
 * A Transform that encrypts what is written to it into one binary OpenPGP message, SEIPDv1 with
 * MDC under a fresh AES-256 session key, for a passphrase (its S2K salted with `s2kSalt` when
 * given) or for public keys.
 */
export function createSeipdEncryptStream(material: EncryptionMaterial, s2kSalt?: Uint8Array): Transform {
  const sessionKey = randomBytes(32);
  const keyPackets =
    'passphrase' in material
      ? Promise.resolve().then(() => passphraseKeyPacket(sessionKey, material.passphrase, s2kSalt))
      : openpgp.encryptSessionKey({ data: sessionKey, algorithm: 'aes256', format: 'binary', config: OPENPGP_CONFIG, encryptionKeys: material.publicKeys });
  return new SeipdEncryptStream(sessionKey, keyPackets);
}

class SeipdEncryptStream extends Transform {
  readonly #keyPackets: Promise<Uint8Array>;
  readonly #cipher: Cipher;
  readonly #mdc: Hash = createHash('sha1');
  /** The SEIPD packet: its body is the version byte then the ciphertext. */
  readonly #seipd = new PartialPacketWriter(SEIPD_TAG, (bytes) => this.push(bytes));
  /** The literal packet, whose bytes are hashed and encrypted into the SEIPD packet. */
  readonly #literal = new PartialPacketWriter(LITERAL_TAG, (bytes) => this.#encrypt(bytes));
  #started = false;

  constructor(sessionKey: Buffer, keyPackets: Promise<Uint8Array>) {
    super();
    this.#cipher = createCipheriv('aes-256-cfb', sessionKey, Buffer.alloc(16));
    this.#keyPackets = keyPackets;
    // Awaited by the first write or the flush; this only keeps an unused stream's failure handled.
    keyPackets.catch(() => undefined);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#started) {
      this.#literal.write(chunk);
      callback();
      return;
    }
    this.#start().then(() => {
      this.#literal.write(chunk);
      callback();
    }, callback);
  }

  override _flush(callback: TransformCallback): void {
    const finish = () => {
      this.#literal.end();
      this.#encrypt(MDC_HEADER);
      this.#seipd.write(this.#cipher.update(this.#mdc.digest()));
      this.#seipd.write(this.#cipher.final());
      this.#seipd.end();
      callback();
    };
    if (this.#started) finish();
    else this.#start().then(finish, callback);
  }

  async #start(): Promise<void> {
    this.push(Buffer.from(await this.#keyPackets));
    this.#started = true;
    this.#seipd.write(Buffer.of(1));
    const prefix = randomBytes(18);
    prefix.copy(prefix, 16, 14, 16);
    this.#encrypt(prefix);
    // Literal packet header: binary format, empty file name, the date in seconds.
    const header = Buffer.alloc(6);
    header[0] = 0x62;
    header.writeUInt32BE(Math.floor(Date.now() / 1000), 2);
    this.#literal.write(header);
  }

  #encrypt(plaintext: Buffer): void {
    this.#mdc.update(plaintext);
    this.#seipd.write(this.#cipher.update(plaintext));
  }
}

/**
 * Writes one new-format packet of unknown length (RFC 4880 §4.2.2.4): the body is gathered until
 * a full partial chunk is there, which is then emitted behind its partial length header; `end()`
 * emits the rest behind a definite length header. Only the bytes held back are copied.
 */
class PartialPacketWriter {
  readonly #emit: (bytes: Buffer) => void;
  /** The packet tag byte, emitted with the first bytes written. */
  #tagByte: Buffer | undefined;
  #pieces: Buffer[] = [];
  #length = 0;

  constructor(tag: number, emit: (bytes: Buffer) => void) {
    this.#tagByte = Buffer.of(0xc0 | tag);
    this.#emit = emit;
  }

  write(bytes: Buffer): void {
    this.#open();
    while (this.#length + bytes.length >= PARTIAL_CHUNK) {
      const take = PARTIAL_CHUNK - this.#length;
      this.#emit(Buffer.of(0xe0 | PARTIAL_POWER));
      for (const piece of this.#pieces) this.#emit(piece);
      this.#emit(bytes.subarray(0, take));
      this.#pieces = [];
      this.#length = 0;
      bytes = bytes.subarray(take);
    }
    if (bytes.length > 0) {
      // A copy: a writer may reuse its buffer once its write has completed.
      this.#pieces.push(Buffer.from(bytes));
      this.#length += bytes.length;
    }
  }

  end(): void {
    this.#open();
    this.#emit(definiteLength(this.#length));
    for (const piece of this.#pieces) this.#emit(piece);
    this.#pieces = [];
  }

  #open(): void {
    if (this.#tagByte === undefined) return;
    this.#emit(this.#tagByte);
    this.#tagByte = undefined;
  }
}

/** A new-format definite body length (RFC 4880 §4.2.2.1–3). */
function definiteLength(length: number): Buffer {
  if (length < 192) return Buffer.of(length);
  if (length < 8384) return Buffer.of(((length - 192) >> 8) + 192, (length - 192) & 0xff);
  const header = Buffer.alloc(5);
  header[0] = 0xff;
  header.writeUInt32BE(length, 1);
  return header;
}
