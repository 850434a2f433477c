import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { isStowageError } from '@stowage/errors';
import type { Key } from 'openpgp';
import { parseEncryptionConfig } from './config.js';
import { CryptoError, CryptoErrorCode, isCryptoError } from './errors.js';
import {
  fingerprintOf,
  loadDecryptionKeys,
  loadEncryptionKeys,
  parseKeys,
  type EncryptionKeys,
  type DecryptionKeys,
  type EncryptionMode,
  type LoadKeysOptions,
} from './keys.js';
import { readPublicKeyFile, resolvePath, type SecretSource } from './secrets.js';
import { createDecryptStream, createEncryptStream } from './streams.js';

/** One recipient public key, as `stowage key show` prints it. */
export interface RecipientDescription {
  /** The public key file, as configured. */
  file: string;
  /** Uppercase hex fingerprint of the primary key. */
  fingerprint: string;
  /** Uppercase hex 64-bit key id of the primary key. */
  keyId: string;
  userIds: string[];
  /** openpgp.js algorithm name, with the curve or bit size (e.g. `eddsaLegacy/ed25519Legacy`). */
  algorithm: string;
  /** ISO 8601 creation time. */
  created: string;
}

/** What the encryption config sets up, without any secret (for `stowage key show`). */
export interface KeyDescription {
  mode: EncryptionMode;
  cipher: 'AES-256';
  /** `SEIPDv1+MDC` (gpg-compatible) or `SEIPDv2 AEAD-GCM` (not readable by gpg 2.2/2.4). */
  packetFormat: 'SEIPDv1+MDC' | 'SEIPDv2 AEAD-GCM';
  /** True when `gpg --decrypt` (2.2+) reads the backups. */
  gpgCompatible: boolean;
  /** Passphrase mode: where the passphrase comes from. */
  passphrase?: SecretSource | undefined;
  /** Public-key mode: the recipients every backup is encrypted to. */
  recipients?: RecipientDescription[];
  /**
   * Public-key mode: where the private key comes from; `null` when this host holds only public
   * keys (it encrypts but cannot decrypt, by design).
   */
  privateKey?: (SecretSource & { passphrase?: SecretSource }) | null;
}

/**
 * Describes an encryption config for `stowage key show`: mode, packet format, secret sources
 * (file paths and variable names, never values) and the recipients' public keys, which it reads.
 */
export async function describeKeys(config: unknown, options: LoadKeysOptions = {}): Promise<KeyDescription> {
  const parsed = parseEncryptionConfig(config);
  const base = {
    mode: parsed.mode,
    cipher: 'AES-256' as const,
    packetFormat: parsed.aead ? ('SEIPDv2 AEAD-GCM' as const) : ('SEIPDv1+MDC' as const),
    gpgCompatible: !parsed.aead,
  };
  if (parsed.mode === 'passphrase') {
    return { ...base, passphrase: source(parsed.passphraseFile, parsed.passphraseEnv) };
  }
  const recipients: RecipientDescription[] = [];
  for (const file of parsed.recipients) {
    for (const key of await parseKeys(await readPublicKeyFile(resolvePath(file, options)), `public key file ${file}`)) {
      recipients.push(describeKey(file, key));
    }
  }
  const privateKey = source(parsed.privateKeyFile, parsed.privateKeyEnv);
  const passphrase = source(parsed.privateKeyPassphraseFile, parsed.privateKeyPassphraseEnv);
  return {
    ...base,
    recipients,
    privateKey: privateKey === undefined ? null : { ...privateKey, ...(passphrase === undefined ? {} : { passphrase }) },
  };
}

/** The outcome of one side of `checkKeys`. */
export type KeyCheckOutcome = { ok: true; detail: string } | { ok: false; code: string; message: string };

/** Whether this machine can encrypt and decrypt with its config (for `stowage key check`). */
export interface KeyCheckReport {
  mode: EncryptionMode | undefined;
  canEncrypt: boolean;
  canDecrypt: boolean;
  encrypt: KeyCheckOutcome;
  decrypt: KeyCheckOutcome;
  /** Recipients' fingerprints (public-key mode, when they loaded). */
  fingerprints: string[];
}

/**
 * Checks what this machine can do with its encryption config: load the encryption keys, load
 * the decryption keys, and, when both load, decrypt a probe encrypted with the first using the
 * second (which proves the private key is one of the recipients). Problems are reported, not
 * thrown; a public-key-only host reports `canDecrypt: false` with `cannot_decrypt`, by design.
 */
export async function checkKeys(config: unknown, options: LoadKeysOptions = {}): Promise<KeyCheckReport> {
  let mode: EncryptionMode | undefined;
  try {
    mode = parseEncryptionConfig(config).mode;
  } catch (error) {
    const outcome = failure(error);
    return { mode, canEncrypt: false, canDecrypt: false, encrypt: outcome, decrypt: outcome, fingerprints: [] };
  }
  const [encryption, decryption] = await Promise.allSettled([loadEncryptionKeys(config, options), loadDecryptionKeys(config, options)]);
  const encrypt: KeyCheckOutcome =
    encryption.status === 'fulfilled'
      ? { ok: true, detail: mode === 'passphrase' ? 'passphrase loaded' : `encrypts to ${encryption.value.fingerprints.join(', ')}` }
      : failure(encryption.reason);
  let decrypt: KeyCheckOutcome;
  if (decryption.status === 'rejected') {
    decrypt = failure(decryption.reason);
  } else if (encryption.status === 'fulfilled') {
    decrypt = await roundTrip(encryption.value, decryption.value);
  } else {
    decrypt = { ok: true, detail: 'decryption keys loaded; not checked against the recipients, which failed to load' };
  }
  return {
    mode,
    canEncrypt: encrypt.ok,
    canDecrypt: decrypt.ok,
    encrypt,
    decrypt,
    fingerprints: encryption.status === 'fulfilled' ? [...encryption.value.fingerprints] : [],
  };
}

async function roundTrip(encryptionKeys: EncryptionKeys, decryptionKeys: DecryptionKeys): Promise<KeyCheckOutcome> {
  const probe = Buffer.from('stowage key check probe');
  try {
    let result: Buffer | undefined;
    await pipeline(Readable.from([probe]), createEncryptStream(encryptionKeys), createDecryptStream(decryptionKeys), async (plain: AsyncIterable<Buffer>) => {
      result = await buffer(plain);
    });
    if (result === undefined || !result.equals(probe)) {
      return failure(new CryptoError(CryptoErrorCode.Integrity, 'a probe encrypted with this config did not decrypt to itself'));
    }
    const detail =
      decryptionKeys.mode === 'passphrase'
        ? 'the passphrase decrypts a probe encrypted with it'
        : `private key ${decryptionKeys.fingerprints.join(', ')} decrypts a probe encrypted to the recipients`;
    return { ok: true, detail };
  } catch (error) {
    return failure(error);
  }
}

/**
 * Whether `keys` unlock the OpenPGP message that `head` begins — its first bytes suffice (64 KiB
 * is plenty): the session key is decrypted, and a passphrase confirmed by the quick check, before
 * any data. A message cut short after that is fine here; `wrong_key` (or `not_encrypted`) is not.
 */
export async function probeDecryption(keys: DecryptionKeys, head: Uint8Array): Promise<KeyCheckOutcome> {
  const detail = keys.mode === 'passphrase' ? 'the passphrase decrypts it' : `private key ${keys.fingerprints.join(', ')} decrypts it`;
  try {
    await pipeline(Readable.from([head]), createDecryptStream(keys), async (plain: AsyncIterable<Buffer>) => {
      for await (const chunk of plain) if (chunk.length > 0) return;
    });
    return { ok: true, detail };
  } catch (error) {
    if (isCryptoError(error, CryptoErrorCode.Integrity)) return { ok: true, detail };
    return failure(error);
  }
}

function failure(error: unknown): KeyCheckOutcome {
  if (isStowageError(error)) return { ok: false, code: error.code, message: error.message };
  throw error;
}

function describeKey(file: string, key: Key): RecipientDescription {
  const info = key.getAlgorithmInfo();
  const detail = info.curve ?? (info.bits === undefined ? undefined : String(info.bits));
  return {
    file,
    fingerprint: fingerprintOf(key),
    keyId: key.getKeyID().toHex().toUpperCase(),
    userIds: key.getUserIDs(),
    algorithm: detail === undefined ? info.algorithm : `${info.algorithm}/${detail}`,
    created: key.getCreationTime().toISOString(),
  };
}

function source(file: string | undefined, env: string | undefined): SecretSource | undefined {
  if (file !== undefined) return { file };
  if (env !== undefined) return { env };
  return undefined;
}
