import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crc64, crc64Combine } from './crc64.js';

/** Bit-by-bit CRC-64/XZ with BigInt: slow, obviously right, independent of the table. */
function bitwise(bytes: Uint8Array): string {
  const poly = 0xc96c5795d7870f42n;
  let crc = 0xffffffffffffffffn;
  for (const byte of bytes) {
    crc ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ poly : crc >> 1n;
  }
  return (crc ^ 0xffffffffffffffffn).toString();
}

describe('crc64 (CRC-64/ECMA-182 as OSS reports it)', () => {
  it('has the CRC-64/XZ check value for "123456789"', () => {
    expect(crc64(Buffer.from('123456789'))).toBe('11051210869376104954');
    expect(BigInt(crc64(Buffer.from('123456789')))).toBe(0x995dc9bbdf1939fan);
  });

  it('is 0 for no bytes', () => {
    expect(crc64(new Uint8Array(0))).toBe('0');
  });

  it('agrees with a bit-by-bit implementation', () => {
    for (const size of [1, 7, 8, 9, 15, 16, 17, 255, 1000, 4099]) {
      const bytes = randomBytes(size);
      expect(crc64(bytes), `size ${size}`).toBe(bitwise(bytes));
      // At every alignment: the eight-byte steps read bytes, not words.
      const unaligned = randomBytes(size + 3).subarray(3);
      expect(crc64(unaligned), `size ${size} at offset 3`).toBe(bitwise(unaligned));
    }
  });

  it('combines the CRCs of two pieces into the CRC of both, as of one piece', () => {
    const whole = randomBytes(5000);
    for (const cut of [0, 1, 8, 999, 4096, 5000]) {
      const [a, b] = [whole.subarray(0, cut), whole.subarray(cut)];
      expect(crc64Combine(crc64(a), crc64(b), b.length), `cut at ${cut}`).toBe(bitwise(whole));
    }
  });
});
