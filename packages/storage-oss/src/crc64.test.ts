import { randomBytes } from 'node:crypto';
import { crc64Reference } from '@stowage/oss-test-server';
import { describe, expect, it } from 'vitest';
import { Crc64Ecma, crc64ecma, crc64ecmaCombine } from './crc64.js';

describe('crc64ecma', () => {
  it('has the CRC-64/XZ check value for "123456789" and 0 for no bytes', () => {
    expect(crc64ecma(Buffer.from('123456789'))).toBe('11051210869376104954');
    expect(BigInt(crc64ecma(Buffer.from('123456789')))).toBe(0x995dc9bbdf1939fan);
    expect(crc64ecma(new Uint8Array(0))).toBe('0');
  });

  it('agrees with the test server’s independent byte-wise implementation at every length and alignment', () => {
    const bytes = randomBytes(4096 + 64);
    for (const length of [1, 2, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096]) {
      for (let offset = 0; offset < 8; offset++) {
        const slice = bytes.subarray(offset, offset + length);
        expect(crc64ecma(slice), `length ${length} offset ${offset}`).toBe(crc64Reference(slice));
      }
    }
  });

  it('is the same fed in pieces of any size', () => {
    const bytes = randomBytes(100_003);
    const whole = crc64ecma(bytes);
    for (const piece of [1, 3, 8, 1000, 65_536]) {
      const hash = new Crc64Ecma();
      for (let at = 0; at < bytes.length; at += piece) hash.update(bytes.subarray(at, at + piece));
      expect(hash.digest(), `pieces of ${piece}`).toBe(whole);
      expect(hash.length).toBe(bytes.length);
    }
  });

  it('combines the CRCs of adjacent pieces into the CRC of the whole', () => {
    const bytes = randomBytes(300_000);
    for (const cut of [0, 1, 7, 8, 4096, 123_457, 299_999, 300_000]) {
      const [a, b] = [bytes.subarray(0, cut), bytes.subarray(cut)];
      expect(crc64ecmaCombine(crc64ecma(a), crc64ecma(b), b.length), `cut at ${cut}`).toBe(crc64ecma(bytes));
    }
    const parts = [randomBytes(102_400), randomBytes(102_400), randomBytes(5)];
    const combined = parts.reduce((crc, part) => crc64ecmaCombine(crc, crc64ecma(part), part.length), '0');
    expect(combined).toBe(crc64ecma(Buffer.concat(parts)));
  });

  it('refuses values that are not CRC-64s', () => {
    expect(() => crc64ecmaCombine('18446744073709551616', '0', 1)).toThrow(RangeError);
    expect(() => crc64ecmaCombine('-1', '0', 1)).toThrow(RangeError);
    expect(() => crc64ecmaCombine('0', '0', -1)).toThrow(RangeError);
  });
});
