import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { systemErrorCode } from '@stowage/errors';
import { CryptoError, CryptoErrorCode } from './errors.js';

/** What a secret is, for messages. */
export type SecretKind = 'passphrase' | 'private key' | 'private key passphrase';

/** Where a secret comes from: a file (mode 600) or an environment variable. Never the value. */
export type SecretSource = { file: string } | { env: string };

/** Options of the functions that read secrets from files or the environment. */
export interface SecretOptions {
  /** Environment to read `*Env` variables from; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Folder that relative paths are resolved against (the config file's folder); default the cwd. */
  baseDir?: string;
}

/** A fresh high-entropy passphrase: 256 random bits as 43 base64url characters. */
export function generatePassphrase(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Writes a secret key file with mode 600 whatever the umask. Refuses to replace an existing
 * file unless `overwrite` is set: losing a key file loses every backup encrypted for it.
 */
export async function writeKeyFile(path: string, text: string, options: { overwrite?: boolean } = {}): Promise<void> {
  let handle;
  try {
    handle = await open(path, options.overwrite ? 'w' : 'wx', 0o600);
  } catch (cause) {
    if (systemErrorCode(cause) === 'EEXIST') {
      throw new CryptoError(CryptoErrorCode.InvalidKey, `key file ${path} already exists; refusing to overwrite a key`, {
        context: { path },
        cause,
      });
    }
    throw cause;
  }
  try {
    // open()'s mode is masked by the umask and ignored for an existing file: set it explicitly,
    // before any secret byte is written.
    await handle.chmod(0o600);
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads a secret key file, refusing one that group or others can access (any of the 077 bits),
 * as ssh does for private keys. The mode is checked on the opened file, so the file that is
 * checked is the file that is read.
 */
export async function readKeyFile(path: string): Promise<string> {
  return (await readKeyFileBytes(path)).toString('utf8');
}

/** `readKeyFile` for binary content (a binary private key export). */
export async function readKeyFileBytes(path: string): Promise<Buffer> {
  let handle;
  try {
    // Non-blocking: a FIFO without a writer would block the open forever; it is refused below.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    throw missingFile(path, cause);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      throw new CryptoError(CryptoErrorCode.KeyMissing, `key file ${path} is not a regular file; point the config at the key file itself`, {
        context: { path },
      });
    }
    const mode = stats.mode & 0o777;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      const octal = mode.toString(8).padStart(4, '0');
      throw new CryptoError(
        CryptoErrorCode.KeyFilePermissions,
        `key file ${path} has mode ${octal} and is accessible by group or others; refusing to use it. Fix it with: chmod 600 ${path}`,
        { context: { path, mode: octal } },
      );
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

/** Reads a public key file; public keys are not secret, so its mode is not checked. */
export async function readPublicKeyFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw missingFile(path, cause);
  }
}

/**
 * Reads a secret's bytes from its source: a key file (mode-checked, see `readKeyFile`) or an
 * environment variable. Absent or empty secrets are `key_missing`.
 */
export async function readSecretBytes(source: SecretSource, kind: SecretKind, options: SecretOptions = {}): Promise<Buffer> {
  let value: Buffer;
  if ('file' in source) {
    value = await readKeyFileBytes(resolvePath(source.file, options));
  } else {
    const found = (options.env ?? process.env)[source.env];
    if (found === undefined) {
      throw new CryptoError(CryptoErrorCode.KeyMissing, `the ${kind} is configured to come from environment variable ${source.env}, which is not set`, {
        context: { env: source.env },
      });
    }
    value = Buffer.from(found, 'utf8');
  }
  if (value.length === 0) throw emptySecret(source, kind);
  return value;
}

/**
 * Reads a passphrase. From a file it is the first line, exactly as `gpg --passphrase-file`
 * reads it (nothing else is trimmed), so both tools agree on the secret; an environment
 * variable is used as it is.
 */
export async function readPassphrase(source: SecretSource, kind: SecretKind, options: SecretOptions = {}): Promise<string> {
  const text = (await readSecretBytes(source, kind, options)).toString('utf8');
  const passphrase = 'file' in source ? firstLine(text) : text;
  if (passphrase.length === 0) throw emptySecret(source, kind);
  return passphrase;
}

function emptySecret(source: SecretSource, kind: SecretKind): CryptoError {
  const where = 'file' in source ? `key file ${source.file}` : `environment variable ${source.env}`;
  return new CryptoError(CryptoErrorCode.KeyMissing, `the ${kind} in ${where} is empty`, { context: { ...source } });
}

/** Resolves a configured path against `options.baseDir`. */
export function resolvePath(path: string, options: SecretOptions): string {
  return resolve(options.baseDir ?? process.cwd(), path);
}

function firstLine(text: string): string {
  const end = text.indexOf('\n');
  return end === -1 ? text : text.slice(0, end);
}

function missingFile(path: string, cause: unknown): Error {
  const code = systemErrorCode(cause);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new CryptoError(CryptoErrorCode.KeyMissing, `key file ${path} does not exist`, { context: { path }, cause });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new CryptoError(CryptoErrorCode.KeyMissing, `key file ${path} cannot be read by this user (${code})`, {
      context: { path },
      cause,
    });
  }
  return cause instanceof Error ? cause : new Error(String(cause));
}
