import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Crc64NvmeAccumulator, base64ToHex, checksumsOf } from './checksums.js';

describe('checksums', () => {
  it('computes Content-MD5 always, and the flexible checksum of the mode', async () => {
    const data = Buffer.from('123456789');
    const md5 = createHash('md5').update(data).digest('base64');
    expect(await checksumsOf(data, 'none')).toEqual({ md5 });
    expect(await checksumsOf(data, 'sha256')).toEqual({ md5, sha256: createHash('sha256').update(data).digest('base64') });
    // The CRC-64/NVME check value (of "123456789") is 0xae8b14860a799888; S3 sends it big-endian, base64.
    const { crc64nvme } = await checksumsOf(data, 'crc64nvme');
    expect(base64ToHex(crc64nvme!)).toBe('ae8b14860a799888');
  });

  it('accumulates a full-object CRC-64/NVME over chunks', async () => {
    const crc = new Crc64NvmeAccumulator();
    for (const chunk of ['1234', '5', '6789']) crc.update(Buffer.from(chunk));
    expect(base64ToHex(await crc.digestBase64())).toBe('ae8b14860a799888');
  });

  it('converts S3 base64 checksums to the hex the contract reports', () => {
    const sha = createHash('sha256').update('x').digest();
    expect(base64ToHex(sha.toString('base64'))).toBe(sha.toString('hex'));
  });
});
