import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CRC64_ECMA, CRC64_NVME, Crc64 } from './crc64.js';

/** A byte-at-a-time reflected CRC-64, the textbook definition, to check the sliced tables against. */
function bitwise(reflected: bigint, bytes: Uint8Array): bigint {
  let crc = 0xffffffffffffffffn;
  for (const byte of bytes) {
    crc ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ reflected : crc >> 1n;
  }
  return crc ^ 0xffffffffffffffffn;
}

describe('Crc64', () => {
  it('has the catalogue check values for "123456789" (CRC-64/XZ, CRC-64/NVME) and 0 for no bytes', () => {
    expect(CRC64_ECMA.of(Buffer.from('123456789'))).toBe(0x995dc9bbdf1939fan);
    expect(CRC64_NVME.of(Buffer.from('123456789'))).toBe(0xae8b14860a799888n);
    expect(CRC64_NVME.of(new Uint8Array(0))).toBe(0n);
  });

  it('agrees with the bitwise definition at every length and alignment, for both polynomials', () => {
    const bytes = randomBytes(200 + 8);
    for (const [model, poly] of [
      [CRC64_ECMA, 0xc96c5795d7870f42n],
      [CRC64_NVME, 0x9a6c9329ac4bc9b5n],
    ] as const) {
      for (const length of [1, 3, 7, 8, 9, 16, 17, 63, 200]) {
        for (let offset = 0; offset < 8; offset++) {
          const slice = bytes.subarray(offset, offset + length);
          expect(model.of(slice), `length ${length} offset ${offset}`).toBe(bitwise(poly, slice));
        }
      }
    }
  });

  it('is the same fed in pieces of any size', () => {
    const bytes = randomBytes(100_003);
    const expected = CRC64_NVME.of(bytes);
    for (const piece of [1, 5, 8, 4096, 65_536]) {
      const crc = new Crc64(CRC64_NVME);
      for (let at = 0; at < bytes.length; at += piece) crc.update(bytes.subarray(at, at + piece));
      expect(crc.value(), `pieces of ${piece}`).toBe(expected);
      expect(crc.length).toBe(bytes.length);
    }
  });

  it('combines the CRCs of adjacent pieces into the CRC of the whole', () => {
    const bytes = randomBytes(70_000);
    for (const model of [CRC64_ECMA, CRC64_NVME]) {
      for (const cut of [0, 1, 8, 4096, 69_999, 70_000]) {
        const [a, b] = [bytes.subarray(0, cut), bytes.subarray(cut)];
        expect(model.combine(model.of(a), model.of(b), b.length), `cut at ${cut}`).toBe(model.of(bytes));
      }
    }
    expect(() => CRC64_NVME.combine(1n << 64n, 0n, 1)).toThrow(RangeError);
    expect(() => CRC64_NVME.combine(0n, 0n, -1)).toThrow(RangeError);
  });
});
