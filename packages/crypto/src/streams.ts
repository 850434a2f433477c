/*
 * Node streams over openpgp.js, which streams only Web Streams. Each factory returns a Duplex:
 * bytes written go through a PassThrough bridged with `Readable.toWeb` (byte-counted, so
 * backpressure holds), the openpgp output is read chunk by chunk as the consumer pulls, so
 * memory stays constant whatever the size. Failures are mapped by the phase they happen in:
 * reading the message header (not_encrypted), unlocking the session key (wrong_key; passphrase
 * keys are confirmed by the quick check of quick-check.ts), or streaming the data (integrity:
 * nothing decrypted so far may be trusted).
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, Readable, type Duplex } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import * as openpgp from 'openpgp';
import type { Message } from 'openpgp';
import { BridgeDuplex } from './bridge.js';
import { CryptoError, CryptoErrorCode } from './errors.js';
import { decryptPrefix, quickCheck, scanForSeipd, type SeipdScan } from './quick-check.js';
import { CFB_CIPHERS, passphraseSessionKeys, SeipdDecryptor, startsLiteral } from './seipd-decrypt.js';
import {
  OPENPGP_CONFIG,
  decryptionMaterial,
  encryptionMaterial,
  messageOf,
  type DecryptionKeys,
  type DecryptionMaterial,
  type EncryptionKeys,
  type EncryptionMaterial,
} from './keys.js';
import { createSeipdEncryptStream } from './seipd.js';

type Bytes = Uint8Array<ArrayBufferLike>;

/**
 * A Duplex that encrypts what is written to it into one binary OpenPGP message: AES-256 with a
 * fresh random session key, SEIPDv1 with MDC (`gpg --decrypt` reads it), or RFC 9580 SEIPDv2
 * AEAD-GCM when `keys.aead` is set (not readable by gpg 2.2/2.4). In passphrase mode the session
 * key is wrapped with an iterated+salted S2K of the passphrase; in public-key mode it is encrypted
 * to every recipient, and any one of their private keys decrypts. SEIPDv1 is written natively
 * (seipd.ts, several times openpgp.js's speed); AEAD goes through openpgp.js. Use it in
 * `stream.pipeline`.
 */
export function createEncryptStream(keys: EncryptionKeys, options: EncryptOptions = {}): Duplex {
  const material = encryptionMaterial(keys);
  return keys.aead ? createOpenpgpEncryptStream(material, true) : createSeipdEncryptStream(material, options.s2kSalt);
}

export interface EncryptOptions {
  /**
   * Passphrase mode, SEIPDv1: the 8-byte S2K salt, instead of a fresh one per message. Messages
   * with one salt share the key derived from the passphrase (each keeps its own random session
   * key), so a reader of several derives it once. Use one random salt per series of messages, never
   * a constant: a salt known in advance lets an attacker precompute guesses. Ignored otherwise.
   */
  s2kSalt?: Uint8Array;
}

/**
 * The same message made by openpgp.js end to end (SEIPDv2 GCM when `aead`); `createEncryptStream`
 * uses it for AEAD only, the benchmark and the tests to compare with the native SEIPDv1 path.
 */
export function createOpenpgpEncryptStream(material: EncryptionMaterial, aead: boolean): Duplex {
  const input = new PassThrough();
  async function* encrypted(): AsyncGenerator<Buffer> {
    const message = await openpgp.createMessage({ binary: toWeb(input), format: 'binary' });
    // An explicit session key pins AES-256 (openpgp would otherwise fall back to the recipients'
    // common preference) and selects SEIPDv2 exactly when an AEAD algorithm is named.
    const sessionKey: openpgp.SessionKey = { data: randomBytes(32), algorithm: 'aes256', ...(aead ? { aeadAlgorithm: 'gcm' as const } : {}) };
    const output = await openpgp.encrypt({
      message,
      format: 'binary',
      sessionKey,
      config: OPENPGP_CONFIG,
      ...('passphrase' in material ? { passwords: [material.passphrase] } : { encryptionKeys: material.publicKeys }),
    });
    yield* fromWeb(output);
  }
  return new BridgeDuplex(input, Readable.from(encrypted(), { objectMode: false }));
}

/**
 * A Duplex that decrypts one binary OpenPGP message written to it (made by Stowage or by gpg,
 * e.g. `gpg --symmetric --cipher-algo AES256`), with a passphrase or private keys.
 *
 * **Partial plaintext is not success.** To decrypt in constant memory, plaintext is released
 * before the integrity check at the end of the message (SEIPDv1's MDC) has run; when that check
 * fails, or the input is truncated, the stream errors *after* emitting data. Callers must write
 * the output to a temporary file and commit it (rename) only once the whole pipeline has
 * finished without error, and discard it otherwise. Errors are `CryptoError`s:
 * - `not_encrypted`: the input is empty, ASCII-armored, or not an OpenPGP encrypted message;
 * - `wrong_key`: wrong passphrase, no private key among the recipients, or passphrase data
 *   given to public-key keys (or the reverse). A passphrase is verified before any output with
 *   the OpenPGP quick check, as gpg does, so this holds for `gpg --symmetric` data too (whose
 *   session key is the passphrase's S2K itself); a damaged session-key packet also reads so;
 * - `integrity`: modified, corrupted or truncated data (MDC or AEAD tag failure).
 */
export function createDecryptStream(keys: DecryptionKeys): Duplex {
  const material = decryptionMaterial(keys);
  const input = new PassThrough();
  async function* decrypted(): AsyncGenerator<Buffer> {
    const chunks = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    const { head, scan } = await readHead(chunks);
    // SEIPDv1: the session key is found and confirmed by the quick check first; a literal packet
    // inside under an AES key is then decrypted natively, anything else by openpgp.js.
    let sessionKeys: openpgp.SessionKey[] | undefined;
    if (scan.state === 'found' && scan.version === 1) {
      sessionKeys = await checkedSessionKeys(head.subarray(0, scan.start), material, keys, scan.prefix);
      const [key] = sessionKeys;
      const inner = key && decryptPrefix(key, scan.prefix)?.[18];
      if (key && inner !== undefined && startsLiteral(inner)) {
        const decryptor = new SeipdDecryptor(CFB_CIPHERS[key.algorithm]!, key.data);
        yield* decryptor.update(head.subarray(scan.start));
        for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield* decryptor.update(next.value);
        decryptor.final();
        return;
      }
    }
    let message: Message<ReadableStream<Bytes>>;
    try {
      message = await openpgp.readMessage({ binaryMessage: prepend(head, chunks), config: OPENPGP_CONFIG });
    } catch (cause) {
      if (isTruncation(cause)) throw truncated(cause);
      throw notEncrypted(`the input is not an OpenPGP message (${messageOf(cause)})`, cause);
    }
    let data: ReadableStream<Bytes>;
    try {
      const secret = sessionKeys
        ? { sessionKeys }
        : 'privateKeys' in material
          ? { decryptionKeys: material.privateKeys }
          : { passwords: [material.passphrase] };
      const result = await openpgp.decrypt({ message, format: 'binary', config: OPENPGP_CONFIG, ...secret });
      data = result.data;
    } catch (cause) {
      throw cause instanceof CryptoError ? cause : sessionFailure(cause, keys, message, sessionKeys !== undefined || 'privateKeys' in material);
    }
    try {
      yield* fromWeb(data);
    } catch (cause) {
      throw new CryptoError(
        CryptoErrorCode.Integrity,
        `the encrypted data failed its integrity check: it was modified, corrupted or truncated (${messageOf(cause)}); discard everything decrypted from it`,
        { cause },
      );
    }
  }
  return new BridgeDuplex(input, Readable.from(decrypted(), { objectMode: false }));
}

function toWeb(readable: Readable): ReadableStream<Bytes> {
  return Readable.toWeb(readable) as unknown as ReadableStream<Bytes>;
}

async function* fromWeb(stream: ReadableStream<Bytes>): AsyncGenerator<Buffer> {
  yield* Readable.fromWeb(stream as unknown as NodeWebReadableStream<Bytes>, { objectMode: false });
}

/** Enough of the input to see the start of its encrypted data (at most 1 MiB), and what it holds. */
async function readHead(chunks: AsyncIterator<Buffer>): Promise<{ head: Buffer; scan: SeipdScan }> {
  let head: Buffer = Buffer.alloc(0);
  let scan: SeipdScan = { state: 'need-more' };
  while (scan.state === 'need-more' && head.length < HEAD_LIMIT) {
    const { done, value } = await chunks.next();
    if (done) break;
    if (value.length === 0) continue;
    if (head.length === 0) assertLooksEncrypted(value);
    head = head.length === 0 ? value : Buffer.concat([head, value]);
    scan = scanForSeipd(head);
  }
  if (head.length === 0) throw notEncrypted('the input is empty');
  return { head, scan };
}

const HEAD_LIMIT = 1024 * 1024;

/**
 * The session keys of a SEIPDv1 message that pass the quick check, from its session key packets
 * (`keyPackets`). A passphrase's are derived natively where possible (seipd-decrypt.ts); gpg's
 * symmetric messages derive the session key from the passphrase directly, so a wrong one is only
 * caught here. A private key's that fail it mean the data is corrupt at its start.
 */
async function checkedSessionKeys(keyPackets: Buffer, material: DecryptionMaterial, keys: DecryptionKeys, prefix: Uint8Array): Promise<openpgp.SessionKey[]> {
  let message: Message<Uint8Array>;
  try {
    message = await openpgp.readMessage({ binaryMessage: keyPackets, config: OPENPGP_CONFIG });
  } catch (cause) {
    throw notEncrypted(`the input is not an OpenPGP message (${messageOf(cause)})`, cause);
  }
  let candidates: Array<{ data: Uint8Array; algorithm: openpgp.enums.symmetricNames | null }>;
  try {
    candidates =
      'passphrase' in material
        ? ((await passphraseSessionKeys(keyPackets, material.passphrase)) ??
          (await openpgp.decryptSessionKeys({ message, passwords: [material.passphrase], config: OPENPGP_CONFIG })))
        : await openpgp.decryptSessionKeys({ message, decryptionKeys: material.privateKeys, config: OPENPGP_CONFIG });
  } catch (cause) {
    throw sessionFailure(cause, keys, message, 'privateKeys' in material);
  }
  const usable = candidates.filter((key): key is openpgp.SessionKey => key.algorithm !== null && quickCheck(key, prefix) !== false);
  if (usable.length > 0) return usable.map((key) => ({ data: key.data, algorithm: key.algorithm }));
  if ('passphrase' in material)
    throw new CryptoError(CryptoErrorCode.WrongKey, 'wrong passphrase: it does not decrypt this data', { context: { mode: 'passphrase' } });
  throw new CryptoError(CryptoErrorCode.Integrity, 'the encrypted data is corrupt at its start (its session key fails the quick check)', {
    context: { mode: keys.mode },
  });
}

/** Every binary OpenPGP packet header has its top bit set; SQLite, zstd and text never start so. */
function assertLooksEncrypted(first: Bytes): void {
  const head = Buffer.from(first.subarray(0, 32)).toString('latin1');
  if (head.trimStart().startsWith('-----BEGIN PGP')) {
    throw notEncrypted('the input is ASCII-armored; Stowage reads binary OpenPGP only (convert it with `gpg --dearmor`)');
  }
  if (((first[0] ?? 0) & 0x80) === 0) {
    throw notEncrypted('the input is not encrypted: it does not start with an OpenPGP packet');
  }
}

/** `first` followed by the rest of `chunks`, pulled one chunk at a time. */
function prepend(first: Buffer, chunks: AsyncIterator<Buffer>): ReadableStream<Bytes> {
  let pending: Buffer | undefined = first;
  return new ReadableStream<Bytes>(
    {
      async pull(controller) {
        if (pending !== undefined) {
          controller.enqueue(pending);
          pending = undefined;
          return;
        }
        const { done, value } = await chunks.next();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: async (reason) => void (await chunks.return?.(reason)),
    },
    { highWaterMark: 0 },
  );
}

function isTruncation(cause: unknown): boolean {
  return /unexpected end|end of (packet|stream|input)/i.test(messageOf(cause));
}

function truncated(cause: unknown): CryptoError {
  return new CryptoError(CryptoErrorCode.Integrity, `the encrypted data is truncated (${messageOf(cause)})`, { cause });
}

function notEncrypted(message: string, cause?: unknown): CryptoError {
  return new CryptoError(CryptoErrorCode.NotEncrypted, message, cause === undefined ? {} : { cause });
}

/**
 * Maps a failure of openpgp's `decrypt()` (message header and session key) to a CryptoError.
 * `keyVerified`: the session key was checked (key wrap, or the passphrase quick check), so a
 * failure to parse the data means corruption, not a wrong key.
 */
function sessionFailure(cause: unknown, keys: DecryptionKeys, message: Pick<Message<never>, 'getEncryptionKeyIDs'>, keyVerified: boolean): CryptoError {
  const text = messageOf(cause);
  const recipients = message.getEncryptionKeyIDs().map((id) => id.toHex().toUpperCase());
  const context = { mode: keys.mode, recipientKeyIds: recipients, fingerprints: keys.fingerprints };
  const wrongKey = (why: string) => new CryptoError(CryptoErrorCode.WrongKey, why, { context, cause });
  if (/No encrypted data found/i.test(text)) return notEncrypted('the input is OpenPGP data but not an encrypted message', cause);
  if (/No symmetrically encrypted session key packet/i.test(text)) {
    return wrongKey(`this data was encrypted to public keys (key ids ${recipients.join(', ')}), not with a passphrase; decrypt it with a private key`);
  }
  if (/No public key encrypted session key packet/i.test(text)) {
    return wrongKey('this data was encrypted with a passphrase, not to a public key; decrypt it with the passphrase');
  }
  if (/Session key decryption failed|No decryption key packets found/i.test(text)) {
    return wrongKey(
      keys.mode === 'passphrase'
        ? 'wrong passphrase: it does not decrypt this data'
        : `none of the private keys (${keys.fingerprints.join(', ')}) is a recipient of this data (recipient key ids: ${recipients.join(', ')})`,
    );
  }
  if (isTruncation(cause)) return truncated(cause);
  if (/Authentication tag mismatch|unable to authenticate|Modification detected/i.test(text)) {
    return new CryptoError(CryptoErrorCode.Integrity, `the encrypted data failed its integrity check: it was modified or corrupted (${text})`, {
      context,
      cause,
    });
  }
  // An unchecked passphrase-derived key that yields unparsable data may just be wrong.
  if (!keyVerified) return wrongKey(`wrong passphrase, or the encrypted data is corrupt at its start (${text})`);
  return new CryptoError(CryptoErrorCode.Integrity, `the encrypted data is corrupt (${text})`, { context, cause });
}
