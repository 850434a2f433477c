/*
 * A passphrase verifier for manifests: tells "this backup was encrypted with the passphrase this
 * machine holds" without downloading the backup, and reveals nothing useful about the passphrase.
 * It is a random salt and the first 4 bytes of scrypt(passphrase, salt) at N = 2^15, r = 8
 * (32 MiB, ~0.1–0.3 s). Four bytes cannot confirm a guess: a dictionary of 2^40 candidates leaves
 * 2^8 matches, each of which must still be tried against the backup itself — whose OpenPGP
 * packets already are a complete (and cheaper, iterated SHA-256) check of the passphrase. So the
 * verifier gives an attacker holding the manifest less than the encrypted artifact beside it does.
 * A chance match of a wrong passphrase is 1 in 2^32.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { decryptionMaterial, encryptionMaterial, EncryptionKeys, type DecryptionKeys } from './keys.js';

/** What a manifest records of the passphrase a backup was encrypted with. */
export interface PassphraseVerifier {
  kdf: 'scrypt';
  /** log2 of scrypt's cost N. */
  logN: number;
  r: number;
  p: number;
  /** Random salt, base64. */
  salt: string;
  /** The first bytes of the scrypt output, hex. */
  check: string;
}

const LOG_N = 15;
const R = 8;
const P = 1;
const CHECK_BYTES = 4;
/** Bounds for verifiers read from manifests, which may be hostile: no parameter may cost more than ~1 s. */
export const VERIFIER_LIMITS = { logN: [10, 17], r: [1, 16], p: [1, 4], saltBytes: [16, 64], checkBytes: [2, 8] } as const;

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  length: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/** A fresh verifier of the passphrase of `keys` (passphrase mode only). */
export async function createPassphraseVerifier(keys: EncryptionKeys | DecryptionKeys): Promise<PassphraseVerifier> {
  const salt = randomBytes(16);
  const check = await derive(passphraseOf(keys), salt, LOG_N, R, P, CHECK_BYTES);
  return { kdf: 'scrypt', logN: LOG_N, r: R, p: P, salt: salt.toString('base64'), check: check.toString('hex') };
}

/**
 * True when the passphrase of `keys` is the one `verifier` was made from (false for keys in
 * public-key mode). A verifier outside `VERIFIER_LIMITS` is refused with a TypeError.
 */
export async function matchesPassphraseVerifier(keys: EncryptionKeys | DecryptionKeys, verifier: PassphraseVerifier): Promise<boolean> {
  if (keys.mode !== 'passphrase') return false;
  const salt = Buffer.from(verifier.salt, 'base64');
  const expected = Buffer.from(verifier.check, 'hex');
  const within = (value: number, [low, high]: readonly [number, number]) => Number.isInteger(value) && value >= low && value <= high;
  const { logN, r, p, saltBytes, checkBytes } = VERIFIER_LIMITS;
  if (
    verifier.kdf !== 'scrypt' ||
    !within(verifier.logN, logN) ||
    !within(verifier.r, r) ||
    !within(verifier.p, p) ||
    !within(salt.length, saltBytes) ||
    !within(expected.length, checkBytes)
  ) {
    throw new TypeError('the passphrase verifier is outside the accepted parameters');
  }
  const actual = await derive(passphraseOf(keys), salt, verifier.logN, verifier.r, verifier.p, expected.length);
  return timingSafeEqual(actual, expected);
}

function passphraseOf(keys: EncryptionKeys | DecryptionKeys): string {
  const material = keys instanceof EncryptionKeys ? encryptionMaterial(keys) : decryptionMaterial(keys);
  if (!('passphrase' in material)) throw new TypeError('a passphrase verifier needs keys in passphrase mode');
  return material.passphrase;
}

function derive(passphrase: string, salt: Buffer, logN: number, r: number, p: number, length: number): Promise<Buffer> {
  const N = 2 ** logN;
  return scryptAsync(passphrase, salt, length, { N, r, p, maxmem: 256 * N * r });
}
