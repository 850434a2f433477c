import { CRC64_ECMA, Crc64 } from '@stowage/storage-http-kit';

/** CRC-64/ECMA-182 as Aliyun OSS writes it in `x-oss-hash-crc64ecma`: an unsigned decimal string (see storage-http-kit's crc64.ts). */

/** An incremental CRC-64/ECMA-182: `update` with each piece in order, then `digest`. */
export class Crc64Ecma {
  readonly #crc = new Crc64(CRC64_ECMA);

  /** Bytes hashed so far. */
  get length(): number {
    return this.#crc.length;
  }

  update(bytes: Uint8Array): this {
    this.#crc.update(bytes);
    return this;
  }

  /** The CRC of everything hashed so far, as OSS writes it: an unsigned decimal string. */
  digest(): string {
    return this.#crc.value().toString();
  }
}

/** CRC-64/ECMA-182 of `bytes`, as OSS reports it in `x-oss-hash-crc64ecma` (unsigned decimal). */
export function crc64ecma(bytes: Uint8Array): string {
  return CRC64_ECMA.of(bytes).toString();
}

/** The CRC of `A` followed by `B`, from the decimal `crc(A)`, `crc(B)` and the length of `B` in bytes. */
export function crc64ecmaCombine(first: string, second: string, secondLength: number): string {
  return CRC64_ECMA.combine(fromDecimal(first), fromDecimal(second), secondLength).toString();
}

function fromDecimal(text: string): bigint {
  if (!/^\d{1,20}$/.test(text) || BigInt(text) > 0xffffffffffffffffn) throw new RangeError(`'${text}' is not a CRC-64 value`);
  return BigInt(text);
}
