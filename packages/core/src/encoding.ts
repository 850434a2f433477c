/*
 * The encode/decode pipeline of artifacts: zstd compression, then AES-256 OpenPGP encryption,
 * each optional. An artifact records the encodings applied in order (`["zstd", "pgp"]`) and its
 * name carries them (`full_backup_….sqlite3.zst.pgp`), so `zstd -d` and `gpg --decrypt` alone
 * recover it. Page-hash lists are compressed but never encrypted: a host holding only a public
 * key must still read them to take the next incremental (they are hashes, not data).
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DecryptionKeys, EncryptionKeys, PassphraseVerifier } from '@stowage/crypto';
import { DigestStream } from '@stowage/storage';
import type { ResolvedConfig } from './config.js';
import { CoreError, CoreErrorCode } from './errors.js';
import type { Artifact, Manifest } from './manifest.js';

export type EncodingName = 'zstd' | 'pgp';

// Loaded on first use: a backup without encryption never loads openpgp, one stored as is never loads zstd.
const crypto = () => import('@stowage/crypto');
const compression = () => import('@stowage/compression');
const EXTENSIONS: Record<EncodingName, string> = { zstd: '.zst', pgp: '.pgp' };

/** `.zst.pgp` for `["zstd", "pgp"]`. */
export const encodedSuffix = (encoding: readonly string[]) => encoding.map((name) => EXTENSIONS[name as EncodingName] ?? `.${name}`).join('');

/**
 * A file being encoded, fed chunk by chunk (`Codec.openEncoder`): each `write` resolves once the
 * chunk's bytes are taken, after which its buffer may be read into again; chunks are written one at
 * a time (the next after the previous write resolved), then `end`, or `destroy` to give up.
 */
export interface Encoder {
  write(chunk: Buffer): Promise<void>;
  /** Ends the input; resolves once the encoded file is written, with its size and SHA-256. */
  end(): Promise<{ size: number; sha256: string }>;
  destroy(error: Error): void;
}

/** Bytes of each read of `Codec.encodeFile`. */
const ENCODE_READ_BYTES = 1 << 20;

/** Keys are loaded once per engine and only when needed (a restore of plain backups needs none). */
export class Codec {
  #encryption: Promise<EncryptionKeys> | undefined;
  #decryption: Promise<DecryptionKeys> | undefined;
  readonly #verifierMatches = new Map<string, Promise<boolean>>();
  #matchedVerifier: PassphraseVerifier | undefined;
  /** Passphrase mode, SEIPDv1: the S2K salt of every artifact this engine encrypts (see `#salt`). */
  #s2kSalt: Buffer | undefined;

  /** `onKeyUse` is told (for the audit log) when keys are loaded: mode and fingerprints, never a secret. */
  constructor(
    readonly config: ResolvedConfig,
    private readonly onKeyUse: (use: 'encrypt' | 'decrypt', keys: { mode: string; fingerprints: readonly string[] }) => Promise<void> = async () => undefined,
  ) {}

  /**
   * The encodings a new artifact of `role` gets under this config. Page-hash lists get none: they
   * hold hashes, which zstd cannot shrink (it grew a GiB's list by 106 bytes, for a compression
   * context of a few MiB), and no data, so they are not encrypted either.
   */
  encodingFor(role: Artifact['role']): EncodingName[] {
    if (role === 'page-hashes') return [];
    const names: EncodingName[] = [];
    if (this.config.compression.algorithm === 'zstd') names.push('zstd');
    if (this.config.encryption) names.push('pgp');
    return names;
  }

  /**
   * What the manifest says about encoding: algorithms and which key — recipients' fingerprints, or
   * a passphrase verifier — never a secret. The newest verifier among `recent` manifests is reused
   * when it matches, so every backup made with one passphrase carries the same verifier and a
   * catalog is checked with one scrypt per passphrase. The S2K salt of that passphrase's newest
   * backup is reused too, so a restore of a chain derives the passphrase's key once, not once per
   * artifact; each artifact still has its own random session key.
   */
  async describe(recent: readonly Manifest[] = []): Promise<Manifest['encoding']> {
    const { compression, encryption } = this.config;
    const keys = encryption ? await this.encryptionKeys() : undefined;
    let verifier: PassphraseVerifier | undefined;
    let s2kSalt: Buffer | undefined;
    if (keys?.mode === 'passphrase') {
      const previous = recent.findLast((m) => m.encoding.encryption?.passphraseVerifier)?.encoding.encryption?.passphraseVerifier;
      if (previous && !this.#matchedVerifier) await this.passphraseMatches(previous).catch(() => false);
      verifier = this.#matchedVerifier ?? (await (await crypto()).createPassphraseVerifier(keys));
      if (!keys.aead) s2kSalt = await this.#salt(recent);
    }
    return {
      compression: compression.algorithm === 'zstd' ? { algorithm: 'zstd', level: compression.level } : null,
      encryption: keys
        ? {
            cipher: 'AES-256',
            format: keys.aead ? 'openpgp-seipdv2-gcm' : 'openpgp-seipdv1-mdc',
            mode: keys.mode,
            fingerprints: [...keys.fingerprints],
            ...(verifier ? { passphraseVerifier: verifier } : {}),
            ...(s2kSalt ? { s2kSalt: s2kSalt.toString('hex') } : {}),
          }
        : null,
    };
  }

  /**
   * The S2K salt of every artifact this engine encrypts, chosen on first use: that of the newest of
   * `recent` made with this passphrase (whose verifier matched), else a fresh one.
   */
  async #salt(recent: readonly Manifest[] = []): Promise<Buffer> {
    if (this.#s2kSalt) return this.#s2kSalt;
    const matched = this.#matchedVerifier && JSON.stringify(this.#matchedVerifier);
    const sameKey = (m: Manifest) => m.encoding.encryption?.s2kSalt && JSON.stringify(m.encoding.encryption.passphraseVerifier) === matched;
    const salt = matched ? recent.findLast(sameKey)?.encoding.encryption?.s2kSalt : undefined;
    this.#s2kSalt ??= salt ? Buffer.from(salt, 'hex') : randomBytes((await crypto()).S2K_SALT_BYTES);
    return this.#s2kSalt;
  }

  /**
   * Whether the configured passphrase is the one `verifier` was made from; each verifier is checked
   * once per engine. Rejects (TypeError) a verifier with parameters outside the accepted bounds.
   */
  passphraseMatches(verifier: PassphraseVerifier): Promise<boolean> {
    const id = JSON.stringify(verifier);
    let match = this.#verifierMatches.get(id);
    if (!match) {
      match = this.encryptionKeys().then(async (keys) => {
        const matches = await (await crypto()).matchesPassphraseVerifier(keys, verifier);
        if (matches) this.#matchedVerifier ??= verifier;
        return matches;
      });
      this.#verifierMatches.set(id, match);
    }
    return match;
  }

  /** Encodes the file at `input` into `output`; returns size and SHA-256 of the encoded bytes. */
  async encodeFile(input: string, output: string, encoding: readonly EncodingName[]): Promise<{ size: number; sha256: string }> {
    const file = await open(input, 'r');
    try {
      const encoder = await this.openEncoder(output, encoding, (await file.stat()).size);
      // One buffer, read into again once the encoder took its bytes: no garbage per chunk.
      const buffer = Buffer.allocUnsafe(ENCODE_READ_BYTES);
      try {
        for (let read: number; (read = (await file.read(buffer, 0, buffer.length, null)).bytesRead) > 0; ) await encoder.write(buffer.subarray(0, read));
      } catch (error) {
        encoder.destroy(error as Error);
        throw error;
      }
      return await encoder.end();
    } finally {
      await file.close();
    }
  }

  /**
   * An `Encoder` of `inputSize` bytes, written chunk by chunk, into the new file `output` (which the
   * caller removes when it fails or is given up). `encoding` must not be empty.
   */
  async openEncoder(output: string, encoding: readonly EncodingName[], inputSize: number): Promise<Encoder> {
    const stages = await this.#encoders(encoding, inputSize);
    // Every stage is done with a chunk once its write completes: zstd copies it into its own
    // buffers, the OpenPGP writers copy what they hold back.
    const first = stages[0]!;
    const digest = new DigestStream();
    const done = pipeline([...stages, digest, createWriteStream(output, { flags: 'wx', mode: 0o600 })]);
    // A write fails with the pipeline's error: a stage destroyed while it holds a write may never call it back.
    let waiting: ((error: Error) => void) | undefined;
    done.catch((error: Error) => waiting?.(error));
    return {
      write: (chunk) =>
        new Promise((resolve, reject) => {
          waiting = reject;
          first.write(chunk, (error) => (error ? done.then(() => reject(error), reject) : resolve()));
        }),
      end: async () => {
        first.end();
        await done;
        return { size: digest.size, sha256: digest.digest() };
      },
      destroy: (error) => first.destroy(error),
    };
  }

  /** The stages that apply `encoding` to `inputSize` bytes, in order. */
  async #encoders(encoding: readonly EncodingName[], inputSize: number): Promise<Duplex[]> {
    const stages: Duplex[] = [];
    for (const name of encoding) {
      if (name === 'zstd') {
        stages.push((await compression()).createCompressStream({ level: this.config.compression.level, inputSize }));
        continue;
      }
      stages.push((await crypto()).createEncryptStream(await this.encryptionKeys(), { s2kSalt: await this.#salt() }));
    }
    return stages;
  }

  /** Starts zstd's decoding thread when `artifacts` need it, so that it comes up while the caller prepares. */
  async prepareDecoding(artifacts: readonly Artifact[]): Promise<void> {
    if (artifacts.some((artifact) => artifact.encoding.includes('zstd'))) (await compression()).startDecodeThread();
  }

  /** Ends zstd's decoding thread once its streams have ended: what follows runs without its memory. */
  async finishDecoding(): Promise<void> {
    await (await compression()).stopDecodeThread();
  }

  /** Transforms that undo `encoding`, last applied first. */
  async decoders(artifact: Artifact, backupId: string): Promise<Duplex[]> {
    const encrypted = artifact.encoding.includes('pgp');
    if (encrypted && !this.config.encryption) {
      throw new CoreError(
        CoreErrorCode.EncryptionMismatch,
        `backup ${backupId} is encrypted but this config has no encryption section; add the encryption settings (and the key) it was made with`,
        { context: { backupId } },
      );
    }
    if (!encrypted && this.config.encryption && artifact.role !== 'page-hashes') {
      throw new CoreError(
        CoreErrorCode.EncryptionMismatch,
        `backup ${backupId} is not encrypted, but this config expects encrypted backups; if you trust it, restore it with a config without the encryption section`,
        { context: { backupId } },
      );
    }
    const stages: Duplex[] = [];
    for (const name of [...artifact.encoding].reverse()) {
      if (name === 'zstd') stages.push((await compression()).createDecompressStream());
      else if (name === 'pgp') stages.push((await crypto()).createDecryptStream(await this.decryptionKeys()));
      else throw new CoreError(CoreErrorCode.NotABackup, `${artifact.key} uses an unknown encoding '${name}'`, { context: { key: artifact.key } });
    }
    return stages;
  }

  encryptionKeys(): Promise<EncryptionKeys> {
    this.#encryption ??= crypto()
      .then((m) => m.loadEncryptionKeys(this.config.encryption, { baseDir: this.config.baseDir }))
      .then(async (keys) => (await this.onKeyUse('encrypt', keys), keys));
    return this.#encryption;
  }

  decryptionKeys(): Promise<DecryptionKeys> {
    this.#decryption ??= crypto()
      .then((m) => m.loadDecryptionKeys(this.config.encryption, { baseDir: this.config.baseDir }))
      .then(async (keys) => (await this.onKeyUse('decrypt', keys), keys));
    return this.#decryption;
  }
}
