import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CRC64_ECMA, CRC64_NVME, Crc64Model } from './index.mjs';

/** Bit by bit with BigInt: slow, obviously right, independent of the tables and the WebAssembly. */
function bitwise(reflected: bigint, bytes: Uint8Array): bigint {
  let crc = 0xffffffffffffffffn;
  for (const byte of bytes) {
    crc ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ reflected : crc >> 1n;
  }
  return crc ^ 0xffffffffffffffffn;
}

describe('the test servers’ CRC-64', () => {
  it('has the catalogue check values for "123456789" and 0 for no bytes', () => {
    expect(CRC64_NVME.of(Buffer.from('123456789'))).toBe(0xae8b14860a799888n);
    expect(CRC64_ECMA.of(Buffer.from('123456789'))).toBe(0x995dc9bbdf1939fan);
    expect(CRC64_NVME.of(new Uint8Array(0))).toBe(0n);
  });

  it('agrees with a bit-by-bit implementation at every length around the 8-byte steps, at any alignment', () => {
    for (const model of [CRC64_NVME, CRC64_ECMA, new Crc64Model(0x42f0e1eba9ea3693n)]) {
      for (const size of [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 1000, 4099]) {
        const bytes = randomBytes(size + 3);
        for (const offset of [0, 1, 3]) {
          const piece = bytes.subarray(offset, offset + size);
          expect(model.of(piece), `poly ${model.reflected.toString(16)}, size ${size} at offset ${offset}`).toBe(bitwise(model.reflected, piece));
        }
      }
    }
  });

  it('hashes bytes beyond its 1 MiB copy area, whole or in pieces, as one run', () => {
    const bytes = randomBytes(2.5 * 2 ** 20 + 5);
    const whole = CRC64_ECMA.of(bytes);
    expect(whole).toBe(bitwise(CRC64_ECMA.reflected, bytes));
    for (const cut of [0, 1, 2 ** 20, 2 ** 20 + 7, bytes.length]) {
      expect(CRC64_ECMA.of(bytes.subarray(cut), CRC64_ECMA.of(bytes.subarray(0, cut))), `cut at ${cut}`).toBe(whole);
    }
  });

  it('keeps each polynomial’s tables apart', () => {
    const bytes = randomBytes(4096);
    expect(CRC64_NVME.of(bytes)).not.toBe(CRC64_ECMA.of(bytes));
    expect(CRC64_NVME.of(bytes)).toBe(bitwise(0x9a6c9329ac4bc9b5n, bytes));
  });
});
