import { inspect } from 'node:util';
import * as openpgp from 'openpgp';
import type { Key, PartialConfig, PrivateKey, PublicKey, UserID } from 'openpgp';
import { parseEncryptionConfig } from './config.js';
import { CryptoError, CryptoErrorCode } from './errors.js';
import { readPassphrase, readPublicKeyFile, readSecretBytes, resolvePath, type SecretOptions } from './secrets.js';

/**
 * The one openpgp.js configuration of Stowage.
 * - AES-256 and no OpenPGP compression (zstd runs before encryption).
 * - Iterated+salted S2K at the maximum count (65,011,712 bytes hashed): gpg 2.2 cannot read
 *   Argon2 S2K. The same S2K protects generated private keys.
 * - `aeadProtect: false` and v4 keys: SEIPDv1 with MDC, what gpg 2.2+ reads. AEAD (SEIPDv2) is
 *   chosen per message through the session key, see `createEncryptStream`. Its mode is GCM
 *   (Node's native AES-GCM): openpgp.js's OCB is pure JavaScript and measured 1.3 MiB/s.
 * - `allowUnauthenticatedStream: true`: without it openpgp.js buffers the whole plaintext of a
 *   SEIPDv1 message in memory until the MDC at its end is checked, which a multi-GiB backup
 *   cannot afford. With it plaintext is released as it is decrypted and the stream errors at its
 *   end when the MDC fails; `createDecryptStream` documents what callers must do about that. It
 *   does not apply to AEAD, where each chunk is released only once authenticated.
 */
export const OPENPGP_CONFIG: PartialConfig = Object.freeze({
  preferredSymmetricAlgorithm: openpgp.enums.symmetric.aes256,
  preferredCompressionAlgorithm: openpgp.enums.compression.uncompressed,
  preferredAEADAlgorithm: openpgp.enums.aead.gcm,
  aeadProtect: false,
  v6Keys: false,
  s2kType: openpgp.enums.s2k.iterated,
  s2kIterationCountByte: 255,
  allowUnauthenticatedStream: true,
});

/** `passphrase`: symmetric; `public-key`: to recipients' public keys. */
export type EncryptionMode = 'passphrase' | 'public-key';

/** Key material, kept out of the key objects so that no serialisation or inspection reaches it. */
export type EncryptionMaterial = { passphrase: string } | { publicKeys: PublicKey[] };
export type DecryptionMaterial = { passphrase: string } | { privateKeys: PrivateKey[] };
const encryptionMaterials = new WeakMap<EncryptionKeys, EncryptionMaterial>();
const decryptionMaterials = new WeakMap<DecryptionKeys, DecryptionMaterial>();

/** The material of loaded encryption keys, for the streams of this package only. */
export function encryptionMaterial(keys: EncryptionKeys): EncryptionMaterial {
  const material = encryptionMaterials.get(keys);
  if (material === undefined) throw new TypeError('encryption keys must come from loadEncryptionKeys or EncryptionKeys.from*');
  return material;
}

/** The material of loaded decryption keys, for the streams of this package only. */
export function decryptionMaterial(keys: DecryptionKeys): DecryptionMaterial {
  const material = decryptionMaterials.get(keys);
  if (material === undefined) throw new TypeError('decryption keys must come from loadDecryptionKeys or DecryptionKeys.from*');
  return material;
}

/**
 * What `createEncryptStream` encrypts with: a passphrase or recipients' public keys. Holds no
 * secret in its properties; `toJSON()` and `util.inspect` show mode and fingerprints only.
 */
export class EncryptionKeys {
  /** Uppercase hex fingerprints of the recipients' primary keys; empty in passphrase mode. */
  readonly fingerprints: readonly string[];

  private constructor(
    readonly mode: EncryptionMode,
    /** True: RFC 9580 AEAD (SEIPDv2), not readable by gpg 2.2/2.4. False: SEIPDv1 + MDC. */
    readonly aead: boolean,
    material: EncryptionMaterial,
  ) {
    this.fingerprints = Object.freeze('publicKeys' in material ? material.publicKeys.map(fingerprintOf) : []);
    encryptionMaterials.set(this, material);
  }

  /** Keys that encrypt with `passphrase` (symmetric, iterated+salted S2K). */
  static fromPassphrase(passphrase: string, options: { aead?: boolean } = {}): EncryptionKeys {
    if (passphrase.length === 0) throw new CryptoError(CryptoErrorCode.KeyMissing, 'the passphrase is empty');
    return new EncryptionKeys('passphrase', options.aead ?? false, { passphrase });
  }

  /**
   * Keys that encrypt to every public key in `publicKeys` (armored or binary; one entry may hold
   * several keys). Refuses private keys: the backup host must hold only public keys.
   */
  static async fromPublicKeys(
    publicKeys: ReadonlyArray<string | Uint8Array>,
    options: { aead?: boolean; names?: readonly string[] } = {},
  ): Promise<EncryptionKeys> {
    const recipients: PublicKey[] = [];
    for (const [index, data] of publicKeys.entries()) {
      const name = options.names?.[index] ?? `recipient ${index + 1}`;
      for (const key of await parseKeys(data, name)) {
        if (key.isPrivate()) {
          throw new CryptoError(
            CryptoErrorCode.InvalidKey,
            `${name} holds a private key; the backup host must hold only public keys. Export the public part (gpg --export --armor KEYID) and keep the private key off this machine`,
            { context: { key: name, fingerprint: fingerprintOf(key) } },
          );
        }
        try {
          await key.getEncryptionKey(undefined, new Date(), undefined, fullConfig());
        } catch (cause) {
          throw new CryptoError(CryptoErrorCode.InvalidKey, `${name} (${fingerprintOf(key)}) cannot encrypt: ${messageOf(cause)}`, {
            context: { key: name, fingerprint: fingerprintOf(key) },
            cause,
          });
        }
        recipients.push(key);
      }
    }
    if (recipients.length === 0) throw new CryptoError(CryptoErrorCode.KeyMissing, 'no recipient public key given');
    return new EncryptionKeys('public-key', options.aead ?? false, { publicKeys: recipients });
  }

  toJSON(): { mode: EncryptionMode; aead: boolean; fingerprints: readonly string[] } {
    return { mode: this.mode, aead: this.aead, fingerprints: this.fingerprints };
  }

  [inspect.custom](): string {
    return `EncryptionKeys ${inspect(this.toJSON())}`;
  }
}

/**
 * What `createDecryptStream` decrypts with: a passphrase or unlocked private keys. Holds no
 * secret in its properties; `toJSON()` and `util.inspect` show mode and fingerprints only.
 */
export class DecryptionKeys {
  /** Uppercase hex fingerprints of the private keys' primary keys; empty in passphrase mode. */
  readonly fingerprints: readonly string[];

  private constructor(
    readonly mode: EncryptionMode,
    material: DecryptionMaterial,
  ) {
    this.fingerprints = Object.freeze('privateKeys' in material ? material.privateKeys.map(fingerprintOf) : []);
    decryptionMaterials.set(this, material);
  }

  /** Keys that decrypt data encrypted with `passphrase` (by Stowage or `gpg --symmetric`). */
  static fromPassphrase(passphrase: string): DecryptionKeys {
    if (passphrase.length === 0) throw new CryptoError(CryptoErrorCode.KeyMissing, 'the passphrase is empty');
    return new DecryptionKeys('passphrase', { passphrase });
  }

  /**
   * Keys that decrypt with `privateKeys` (armored or binary). Protected keys are unlocked with
   * `passphrase`; without one they are `key_missing`, with a wrong one `wrong_key`.
   */
  static async fromPrivateKeys(
    privateKeys: ReadonlyArray<string | Uint8Array>,
    options: { passphrase?: string; names?: readonly string[] } = {},
  ): Promise<DecryptionKeys> {
    const unlocked: PrivateKey[] = [];
    for (const [index, data] of privateKeys.entries()) {
      const name = options.names?.[index] ?? `private key ${index + 1}`;
      for (const key of await parseKeys(data, name)) {
        if (!key.isPrivate()) {
          throw new CryptoError(CryptoErrorCode.InvalidKey, `${name} holds a public key, not a private key`, {
            context: { key: name, fingerprint: fingerprintOf(key) },
          });
        }
        unlocked.push(await unlock(key, name, options.passphrase));
      }
    }
    if (unlocked.length === 0) throw new CryptoError(CryptoErrorCode.KeyMissing, 'no private key given');
    return new DecryptionKeys('public-key', { privateKeys: unlocked });
  }

  toJSON(): { mode: EncryptionMode; fingerprints: readonly string[] } {
    return { mode: this.mode, fingerprints: this.fingerprints };
  }

  [inspect.custom](): string {
    return `DecryptionKeys ${inspect(this.toJSON())}`;
  }
}

/** Options of the config loaders: where `*Env` variables and relative paths are resolved. */
export type LoadKeysOptions = SecretOptions;

/**
 * Loads what this machine encrypts with, from an encryption config (validated with
 * `encryptionConfigSchema`): the passphrase from its file or environment variable, or the
 * recipients' public key files.
 */
export async function loadEncryptionKeys(config: unknown, options: LoadKeysOptions = {}): Promise<EncryptionKeys> {
  const parsed = parseEncryptionConfig(config);
  if (parsed.mode === 'passphrase') {
    const passphrase = await readPassphrase(secretSource(parsed.passphraseFile, parsed.passphraseEnv), 'passphrase', options);
    return EncryptionKeys.fromPassphrase(passphrase, { aead: parsed.aead });
  }
  const files = await Promise.all(parsed.recipients.map((file) => readPublicKeyFile(resolvePath(file, options))));
  return EncryptionKeys.fromPublicKeys(files, { aead: parsed.aead, names: parsed.recipients.map((file) => `public key file ${file}`) });
}

/**
 * Loads what this machine decrypts with. In public-key mode without a private key this is
 * `cannot_decrypt`: a backup host that holds only public keys cannot read its own backups, by
 * design; restores run where the private key is.
 */
export async function loadDecryptionKeys(config: unknown, options: LoadKeysOptions = {}): Promise<DecryptionKeys> {
  const parsed = parseEncryptionConfig(config);
  if (parsed.mode === 'passphrase') {
    return DecryptionKeys.fromPassphrase(await readPassphrase(secretSource(parsed.passphraseFile, parsed.passphraseEnv), 'passphrase', options));
  }
  if (parsed.privateKeyFile === undefined && parsed.privateKeyEnv === undefined) {
    throw new CryptoError(
      CryptoErrorCode.CannotDecrypt,
      'this host holds only public keys, by design: it can encrypt backups but not decrypt them. Restore on a machine that has the private key (set encryption.privateKeyFile or encryption.privateKeyEnv there)',
      { context: { recipients: parsed.recipients } },
    );
  }
  const source = secretSource(parsed.privateKeyFile, parsed.privateKeyEnv);
  const keyData = await readSecretBytes(source, 'private key', options);
  const passphraseSource =
    parsed.privateKeyPassphraseFile === undefined && parsed.privateKeyPassphraseEnv === undefined
      ? undefined
      : secretSource(parsed.privateKeyPassphraseFile, parsed.privateKeyPassphraseEnv);
  const passphrase = passphraseSource && (await readPassphrase(passphraseSource, 'private key passphrase', options));
  const name = 'file' in source ? `private key file ${source.file}` : `private key in environment variable ${source.env}`;
  return DecryptionKeys.fromPrivateKeys([keyData], { names: [name], ...(passphrase === undefined ? {} : { passphrase }) });
}

/**
 * Fingerprints of the keys (uppercase hex, as gpg prints them) for the manifest; empty in
 * passphrase mode, which has no public identifier (a plain hash of the passphrase would be a
 * brute-force oracle; manifests record a salted, slow, truncated verifier instead, see verifier.ts).
 */
export function keyFingerprints(keys: EncryptionKeys | DecryptionKeys): string[] {
  return [...keys.fingerprints];
}

/** Options of `generateKeyPair`. */
export interface GenerateKeyPairOptions {
  /** `Name <email>`, `email@host` or a plain name. */
  userId: string;
  /** Protects the private key (iterated+salted S2K, AES-256); omit for an unprotected key. */
  passphrase?: string;
}

/** A generated key pair; `privateKey` is secret, write it with `writeKeyFile`. */
export interface GeneratedKeyPair {
  /** Armored public key, for the backup hosts' `recipients`. */
  publicKey: string;
  /** Armored private key, for restore machines only. */
  privateKey: string;
  /** Uppercase hex fingerprint of the primary key. */
  fingerprint: string;
  /** Armored revocation certificate, to publish if the private key is lost or leaked. */
  revocationCertificate: string;
}

/**
 * Generates a v4 Curve25519 key pair (Ed25519 primary key for certification, Cv25519 ECDH
 * subkey for encryption) that gpg 2.2+ imports and decrypts with. It never expires: an expired
 * recipient key would stop backups.
 */
export async function generateKeyPair(options: GenerateKeyPairOptions): Promise<GeneratedKeyPair> {
  const generated = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [parseUserId(options.userId)],
    ...(options.passphrase === undefined ? {} : { passphrase: options.passphrase }),
    keyExpirationTime: 0,
    format: 'armored',
    config: OPENPGP_CONFIG,
  });
  const key = await openpgp.readKey({ armoredKey: generated.publicKey });
  return {
    publicKey: generated.publicKey,
    privateKey: generated.privateKey,
    fingerprint: fingerprintOf(key),
    revocationCertificate: generated.revocationCertificate,
  };
}

/** Parses armored or binary key data into keys; `invalid_key` when it holds none. */
export async function parseKeys(data: string | Uint8Array, name: string): Promise<Key[]> {
  try {
    if (typeof data === 'string') return await openpgp.readKeys({ armoredKeys: data, config: OPENPGP_CONFIG });
    if (isArmored(data)) return await openpgp.readKeys({ armoredKeys: Buffer.from(data).toString('utf8'), config: OPENPGP_CONFIG });
    return await openpgp.readKeys({ binaryKeys: data, config: OPENPGP_CONFIG });
  } catch (cause) {
    throw new CryptoError(CryptoErrorCode.InvalidKey, `${name} does not hold an OpenPGP key: ${messageOf(cause)}`, {
      context: { key: name },
      cause,
    });
  }
}

/** Uppercase hex fingerprint of a key's primary key. */
export function fingerprintOf(key: Key): string {
  return key.getFingerprint().toUpperCase();
}

/** openpgp's full config with Stowage's settings on top, for APIs that take a full Config. */
export function fullConfig(): openpgp.Config {
  return { ...openpgp.config, ...OPENPGP_CONFIG };
}

/** The message of an unknown thrown value. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function unlock(key: PrivateKey, name: string, passphrase: string | undefined): Promise<PrivateKey> {
  if (key.isDecrypted()) return key;
  const context = { key: name, fingerprint: fingerprintOf(key) };
  if (passphrase === undefined) {
    throw new CryptoError(
      CryptoErrorCode.KeyMissing,
      `${name} (${context.fingerprint}) is passphrase-protected; set encryption.privateKeyPassphraseFile or encryption.privateKeyPassphraseEnv`,
      { context },
    );
  }
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase, config: OPENPGP_CONFIG });
  } catch (cause) {
    throw new CryptoError(CryptoErrorCode.WrongKey, `the passphrase of ${name} (${context.fingerprint}) is wrong`, { context, cause });
  }
}

function secretSource(file: string | undefined, env: string | undefined): { file: string } | { env: string } {
  if (file !== undefined) return { file };
  if (env !== undefined) return { env };
  throw new CryptoError(CryptoErrorCode.InvalidConfig, 'no source configured for a secret');
}

function isArmored(data: Uint8Array): boolean {
  return Buffer.from(data.subarray(0, 64)).toString('latin1').trimStart().startsWith('-----BEGIN PGP');
}

function parseUserId(userId: string): UserID {
  const match = /^\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$/.exec(userId);
  if (match) return match[1] ? { name: match[1], email: match[2]! } : { email: match[2]! };
  const trimmed = userId.trim();
  if (trimmed.length === 0) throw new CryptoError(CryptoErrorCode.InvalidConfig, 'a key needs a user id such as "Backups <ops@example.com>"');
  return /^[^\s@]+@[^\s@]+$/.test(trimmed) ? { email: trimmed } : { name: trimmed };
}
