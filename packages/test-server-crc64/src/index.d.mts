/** One reflected CRC-64 polynomial, in its own WebAssembly instance (see index.mjs). */
export declare class Crc64Model {
  /** `reflected`: the polynomial in reflected (LSB-first) form, e.g. 0xC96C5795D7870F42n for ECMA-182. */
  constructor(reflected: bigint);
  readonly reflected: bigint;
  /** The CRC of `bytes`; with `previous`, the CRC of some bytes before them, that of both. */
  of(bytes: Uint8Array, previous?: bigint): bigint;
}
/** CRC-64/NVME (check value 0xAE8B14860A799888 for "123456789"), as S3 computes it. */
export declare const CRC64_NVME: Crc64Model;
/** CRC-64/ECMA-182 (CRC-64/XZ, check value 0x995DC9BBDF1939FA for "123456789"), as Aliyun OSS computes it. */
export declare const CRC64_ECMA: Crc64Model;
