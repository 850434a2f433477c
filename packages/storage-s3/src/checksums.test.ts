import { createHash, randomBytes } from 'node:crypto';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { CRC64_NVME } from '@stowage/storage-http-kit';
import { describe, expect, it } from 'vitest';
import { base64ToHex, checksumsOf, crc64nvmeBase64 } from './checksums.js';

describe('checksums', () => {
  it('computes the flexible checksum of the mode, and Content-MD5 only in mode none', () => {
    const data = Buffer.from('123456789');
    expect(checksumsOf(data, 'none')).toEqual({ md5: createHash('md5').update(data).digest('base64') });
    expect(checksumsOf(data, 'sha256')).toEqual({ sha256: createHash('sha256').update(data).digest('base64') });
    // The CRC-64/NVME check value (of "123456789") is 0xae8b14860a799888; S3 sends it big-endian, base64.
    const { crc64nvme, crc } = checksumsOf(data, 'crc64nvme');
    expect(base64ToHex(crc64nvme!)).toBe('ae8b14860a799888');
    expect(crc).toBe(0xae8b14860a799888n);
  });

  it('agrees with the AWS SDK’s CRC-64/NVME, and part CRCs combine into the full object’s', async () => {
    const parts = [randomBytes(100_003), randomBytes(65_536), randomBytes(7)];
    const sdk = new Crc64Nvme();
    for (const part of parts) sdk.update(part);
    const whole = Buffer.from(await sdk.digest()).toString('base64');
    expect(checksumsOf(Buffer.concat(parts), 'crc64nvme').crc64nvme).toBe(whole);
    const combined = parts.reduce((crc, part) => CRC64_NVME.combine(crc, checksumsOf(part, 'crc64nvme').crc!, part.length), 0n);
    expect(crc64nvmeBase64(combined)).toBe(whole);
  });

  it('converts S3 base64 checksums to the hex the contract reports', () => {
    const sha = createHash('sha256').update('x').digest();
    expect(base64ToHex(sha.toString('base64'))).toBe(sha.toString('hex'));
  });
});
