/*
 * CRC-64/ECMA-182 as Aliyun OSS reports it in `x-oss-hash-crc64ecma` (the parameters of Go's
 * hash/crc64 with the ECMA table: reflected polynomial 0xC96C5795D7870F42, initial value and final
 * XOR all ones; the catalogue name is CRC-64/XZ). The bytes go through the test servers' own
 * CRC-64 (@stowage/test-server-crc64: WebAssembly assembled there, slicing-by-8), independent of
 * the adapter's (hash-wasm); its tests, and this package's, check it against bit-by-bit ones. The
 * servers of a benchmark share the CPU with the client, so the CRC of every part and object must
 * not cost more than the transfer.
 */
import { CRC64_ECMA } from '@stowage/test-server-crc64';

/** The reflected polynomial (for `crc64Combine`). */
const POLY = CRC64_ECMA.reflected;

/** CRC-64/ECMA-182 of `bytes`, as OSS reports it: an unsigned decimal string. */
export function crc64(bytes: Uint8Array): string {
  return CRC64_ECMA.of(bytes).toString();
}

/**
 * The CRC of `a` followed by `b` from their CRCs and `b`'s length, without their bytes (for a
 * multipart object from its parts): crc(a‖b) = crc(a)·x^(8·|b|) mod P ⊕ crc(b), where
 * multiplying by x is one step of the reflected register on a zero bit.
 */
export function crc64Combine(crcA: string, crcB: string, lengthB: number): string {
  return (multiply(BigInt(crcA), power(lengthB)) ^ BigInt(crcB)).toString();
}

/** The product of two polynomials mod P in the reflected representation (bit 63 is x^0). */
function multiply(a: bigint, b: bigint): bigint {
  let product = 0n;
  let shifted = b;
  for (let bit = 63n; bit >= 0n; bit--) {
    if ((a >> bit) & 1n) product ^= shifted;
    shifted = shifted & 1n ? (shifted >> 1n) ^ POLY : shifted >> 1n;
  }
  return product;
}

/** x^(8·bytes) mod P, reflected, by squaring. */
function power(bytes: number): bigint {
  let result = 1n << 63n; // x^0
  let square = 1n << 55n; // x^8
  for (let n = bytes; n > 0; n = Math.floor(n / 2)) {
    if (n % 2) result = multiply(result, square);
    square = multiply(square, square);
  }
  return result;
}
