/*
 * CRC-64/ECMA-182 as Aliyun OSS reports it in `x-oss-hash-crc64ecma` (the parameters of Go's
 * hash/crc64 with the ECMA table: reflected polynomial 0xC96C5795D7870F42, initial value and final
 * XOR all ones; the catalogue name is CRC-64/XZ). A plain byte-at-a-time table implementation on
 * two int32 halves: it is the server's own oracle, deliberately independent of the adapter's
 * sliced one.
 */

const TABLE_LO = new Int32Array(256);
const TABLE_HI = new Int32Array(256);
for (let byte = 0; byte < 256; byte++) {
  let lo = byte;
  let hi = 0;
  for (let bit = 0; bit < 8; bit++) {
    const carry = lo & 1;
    lo = (lo >>> 1) | (hi << 31);
    hi >>>= 1;
    if (carry) {
      lo ^= 0xd7870f42;
      hi ^= 0xc96c5795;
    }
  }
  TABLE_LO[byte] = lo;
  TABLE_HI[byte] = hi;
}

/** CRC-64/ECMA-182 of `bytes`, as OSS reports it: an unsigned decimal string. */
export function crc64(bytes: Uint8Array): string {
  let lo = ~0;
  let hi = ~0;
  for (let i = 0; i < bytes.length; i++) {
    const index = (lo ^ bytes[i]!) & 0xff;
    lo = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[index]!;
    hi = (hi >>> 8) ^ TABLE_HI[index]!;
  }
  return ((BigInt(~hi >>> 0) << 32n) | BigInt(~lo >>> 0)).toString();
}
