import { createHash } from 'node:crypto';
import { CRC64_NVME, Crc64 } from '@stowage/storage-http-kit';

/**
 * Which checksum the adapter sends with every upload and expects the endpoint to verify and report:
 * `crc64nvme` (full-object CRC-64/NVME, also for multipart objects, so `stat` reports it for every
 * object), `sha256` (`x-amz-checksum-sha256`; multipart objects get a composite checksum of the parts,
 * checked at upload but not the object's SHA-256, so `stat` reports none for them) or `none` (the
 * endpoint does not support S3 flexible checksums; the engine then verifies by reading the object back).
 */
export type ChecksumMode = 'sha256' | 'crc64nvme' | 'none';

/** Hex (as the contract reports SHA-256) from the base64 S3 uses in its checksum headers. */
export function base64ToHex(base64: string): string {
  return Buffer.from(base64, 'base64').toString('hex');
}

/**
 * The checksums of one request body (a whole small object or one part), base64 as S3 wants them:
 * the mode's flexible checksum, which the endpoint checks on receipt, or in mode `none` the
 * `Content-MD5`, which every S3-compatible endpoint that checks anything checks. One is enough to
 * have the endpoint refuse bytes damaged on the way (BadDigest); hashing MD5 as well would only cost.
 */
export interface BodyChecksums {
  md5?: string;
  sha256?: string;
  crc64nvme?: string;
  /** The CRC-64/NVME as a number, for `crc64nvmeCombine` (mode `crc64nvme`). */
  crc?: bigint;
}

/** Checksums of one buffer for the given mode. */
export function checksumsOf(data: Buffer, mode: ChecksumMode): BodyChecksums {
  if (mode === 'sha256') return { sha256: createHash('sha256').update(data).digest('base64') };
  if (mode === 'crc64nvme') {
    const crc = new Crc64(CRC64_NVME).update(data).value();
    return { crc64nvme: crc64nvmeBase64(crc), crc };
  }
  return { md5: createHash('md5').update(data).digest('base64') };
}

/**
 * S3's composite checksum of a multipart upload with SHA-256, from its parts' base64 SHA-256s in
 * part order: the base64 SHA-256 of their binary values joined, then `-<parts>`.
 */
export function sha256Composite(partSha256s: readonly string[]): string {
  const joined = Buffer.concat(partSha256s.map((value) => Buffer.from(value, 'base64')));
  return `${createHash('sha256').update(joined).digest('base64')}-${partSha256s.length}`;
}

/** A CRC-64/NVME as S3 writes it in `x-amz-checksum-crc64nvme`: the 8 bytes big-endian, base64. */
export function crc64nvmeBase64(crc: bigint): string {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(crc);
  return bytes.toString('base64');
}
