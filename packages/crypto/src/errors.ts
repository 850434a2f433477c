import { StowageError } from '@stowage/errors';

/** Stable codes of crypto errors. Callers branch on these, never on messages. */
export const CryptoErrorCode = {
  /** Wrong passphrase, or no configured private key is a recipient of the data. */
  WrongKey: 'stowage.crypto.wrong_key',
  /** The encrypted data was modified, corrupted or truncated (MDC / AEAD tag failure). */
  Integrity: 'stowage.crypto.integrity',
  /** The input given to decrypt is not an OpenPGP encrypted message. */
  NotEncrypted: 'stowage.crypto.not_encrypted',
  /** A secret key file is accessible by group or others. */
  KeyFilePermissions: 'stowage.crypto.key_file_permissions',
  /** A configured key file or environment variable is absent or empty. */
  KeyMissing: 'stowage.crypto.key_missing',
  /** This host holds only public keys and was asked to decrypt. */
  CannotDecrypt: 'stowage.crypto.cannot_decrypt',
  /** A key file does not hold a usable key of the expected kind. */
  InvalidKey: 'stowage.crypto.invalid_key',
  /** The encryption config does not match `encryptionConfigSchema`. */
  InvalidConfig: 'stowage.crypto.invalid_config',
} as const;
export type CryptoErrorCode = (typeof CryptoErrorCode)[keyof typeof CryptoErrorCode];

/**
 * An error of `@stowage/crypto`; `code` is one of `CryptoErrorCode`. Messages and context name
 * files, environment variables, key ids and fingerprints, never a passphrase or key material.
 */
export class CryptoError extends StowageError<CryptoErrorCode> {
  override readonly name: string = 'CryptoError';
}

/** True when `error` is a CryptoError, optionally with one of the given codes. */
export function isCryptoError(error: unknown, ...codes: CryptoErrorCode[]): error is CryptoError {
  return error instanceof CryptoError && (codes.length === 0 || codes.includes(error.code));
}
