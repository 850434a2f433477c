import { createHash } from 'node:crypto';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';

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

/** The checksums of one request body (a whole small object or one part), base64 as S3 wants them. */
export interface BodyChecksums {
  /** For `Content-MD5`, which every S3-compatible endpoint that checks anything checks. */
  md5: string;
  sha256?: string;
  crc64nvme?: string;
}

/** Checksums of one buffer for the given mode. */
export async function checksumsOf(data: Buffer, mode: ChecksumMode): Promise<BodyChecksums> {
  const sums: BodyChecksums = { md5: createHash('md5').update(data).digest('base64') };
  if (mode === 'sha256') sums.sha256 = createHash('sha256').update(data).digest('base64');
  if (mode === 'crc64nvme') {
    const crc = new Crc64Nvme();
    crc.update(data);
    sums.crc64nvme = Buffer.from(await crc.digest()).toString('base64');
  }
  return sums;
}

/** A running full-object CRC-64/NVME, base64 like S3's `x-amz-checksum-crc64nvme`. */
export class Crc64NvmeAccumulator {
  readonly #crc = new Crc64Nvme();

  update(data: Uint8Array): void {
    this.#crc.update(data);
  }

  async digestBase64(): Promise<string> {
    return Buffer.from(await this.#crc.digest()).toString('base64');
  }
}
