/*
 * A reflected CRC-64 (initial value and final XOR all ones) over any polynomial, for the test
 * servers: CRC-64/NVME for the AWS-like s3rver's `x-amz-checksum-crc64nvme`, CRC-64/ECMA-182 for
 * the OSS test server's `x-oss-hash-crc64ecma`. The servers check what the adapters send, so this is
 * their own code, independent of the adapters' (hash-wasm): one WebAssembly function assembled
 * below byte by byte, slicing-by-8 over a 64-bit register — eight input bytes per step through
 * eight 256-entry tables of 64-bit entries (computed here with BigInt) — then the rest byte by byte.
 * Plain JS, so that the s3rver launcher, which runs under plain `node`, can import it. The servers
 * of a benchmark share the CPU with the client: this hashes several times faster than the plain-JS
 * table loops the servers had before.
 */

/** Bytes of the eight tables at the start of memory; the bytes to hash are copied in after them. */
const TABLES = 8 * 256 * 8;
/** Bytes hashed per call: the size of the copy area. */
const CHUNK = 1 << 20;
const PAGE = 65536;
const ALL_ONES = 0xffffffffffffffffn;

/** Unsigned LEB128. */
function uleb(n) {
  const out = [];
  for (;;) {
    const byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n === 0) return [...out, byte];
    out.push(byte | 0x80);
  }
}

/** Signed LEB128 of a non-negative constant. */
function sleb(n) {
  const out = [];
  for (;;) {
    const byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n === 0 && (byte & 0x40) === 0) return [...out, byte];
    out.push(byte | 0x80);
  }
}

const section = (id, bytes) => [id, ...uleb(bytes.length), ...bytes];
const vector = (items) => [...uleb(items.length), ...items.flat()];
const text = (value) => vector([...Buffer.from(value)].map((byte) => [byte]));

// The opcodes used.
const BLOCK = 0x02,
  LOOP = 0x03,
  END = 0x0b,
  BR = 0x0c,
  BR_IF = 0x0d,
  EMPTY = 0x40;
const GET = 0x20,
  SET = 0x21,
  I32_CONST = 0x41,
  I64_CONST = 0x42;
const I32_LT_U = 0x49,
  I32_GE_U = 0x4f,
  I32_ADD = 0x6a,
  I32_SUB = 0x6b,
  I32_AND = 0x71,
  I32_SHL = 0x74;
const I64_XOR = 0x85,
  I64_SHR_U = 0x88,
  I32_WRAP_I64 = 0xa7,
  I64_LOAD = 0x29,
  I64_LOAD8_U = 0x31;
const I32 = 0x7f,
  I64 = 0x7e,
  FUNC = 0x60;

// Locals: the register (i64 parameter), the byte count (i32 parameter), the read position, the end.
const CRC = 0,
  LENGTH = 1,
  AT = 2,
  STOP = 3;

/** Pushes entry `(crc >> shift) & 0xff` of table `table` (8-byte entries, table k at k · 2048). */
const lookup = (table, shift) => [
  GET,
  CRC,
  I64_CONST,
  ...sleb(shift),
  I64_SHR_U,
  I32_WRAP_I64,
  I32_CONST,
  ...sleb(255),
  I32_AND,
  I32_CONST,
  ...sleb(3),
  I32_SHL,
  I64_LOAD,
  3,
  ...uleb(table * 2048),
];

/**
 * `update(crc: i64, length: i32) -> i64`: the register after the `length` bytes of the copy area.
 * While eight bytes remain: crc ^= those bytes (little-endian), then crc = T7[byte 0] ^ … ^ T0[byte 7]
 * (byte j of the eight is followed by 7 − j more). Then each byte: crc = T0[(crc ^ byte) & 0xff] ^ (crc >> 8).
 */
const UPDATE = [
  ...vector([[2, I32]]),
  ...[I32_CONST, ...sleb(TABLES), SET, AT],
  ...[GET, LENGTH, I32_CONST, ...sleb(TABLES), I32_ADD, SET, STOP],
  ...[BLOCK, EMPTY, LOOP, EMPTY],
  ...[GET, STOP, GET, AT, I32_SUB, I32_CONST, ...sleb(8), I32_LT_U, BR_IF, 1],
  ...[GET, CRC, GET, AT, I64_LOAD, 0, 0, I64_XOR, SET, CRC],
  ...lookup(7, 0),
  ...[6, 5, 4, 3, 2, 1, 0].flatMap((table) => [...lookup(table, 8 * (7 - table)), I64_XOR]),
  ...[SET, CRC],
  ...[GET, AT, I32_CONST, ...sleb(8), I32_ADD, SET, AT, BR, 0],
  ...[END, END],
  ...[BLOCK, EMPTY, LOOP, EMPTY],
  ...[GET, AT, GET, STOP, I32_GE_U, BR_IF, 1],
  ...[GET, CRC, GET, AT, I64_LOAD8_U, 0, 0, I64_XOR, SET, CRC],
  ...lookup(0, 0),
  ...[GET, CRC, I64_CONST, ...sleb(8), I64_SHR_U, I64_XOR, SET, CRC],
  ...[GET, AT, I32_CONST, ...sleb(1), I32_ADD, SET, AT, BR, 0],
  ...[END, END],
  ...[GET, CRC, END],
];

const MODULE = new WebAssembly.Module(
  Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([[FUNC, ...vector([[I64], [I32]]), ...vector([[I64]])]])), // type 0: (i64, i32) -> i64
    ...section(3, vector([[0]])), // function 0 has type 0
    ...section(5, vector([[0x00, ...uleb(Math.ceil((TABLES + CHUNK) / PAGE))]])), // one memory
    ...section(
      7,
      vector([
        [...text('update'), 0x00, 0],
        [...text('memory'), 0x02, 0],
      ]),
    ),
    ...section(10, vector([[...uleb(UPDATE.length), ...UPDATE]])),
  ]),
);

/** One polynomial's CRC-64: its own instance, with its tables in memory. */
export class Crc64Model {
  /** @param {bigint} reflected the polynomial in reflected (LSB-first) form, e.g. 0xC96C5795D7870F42n for ECMA-182 */
  constructor(reflected) {
    const instance = new WebAssembly.Instance(MODULE, {});
    this.reflected = reflected;
    this.#update = instance.exports.update;
    this.#memory = new Uint8Array(instance.exports.memory.buffer);
    const tables = new DataView(instance.exports.memory.buffer, 0, TABLES);
    const entry = (table, byte) => tables.getBigUint64(table * 2048 + byte * 8, true);
    for (let byte = 0; byte < 256; byte++) {
      let crc = BigInt(byte);
      for (let bit = 0; bit < 8; bit++) crc = crc & 1n ? (crc >> 1n) ^ reflected : crc >> 1n;
      tables.setBigUint64(byte * 8, crc, true);
    }
    for (let table = 1; table < 8; table++) {
      for (let byte = 0; byte < 256; byte++) {
        // One more zero byte after the previous table's register.
        const previous = entry(table - 1, byte);
        tables.setBigUint64(table * 2048 + byte * 8, (previous >> 8n) ^ entry(0, Number(previous & 0xffn)), true);
      }
    }
  }

  #update;
  #memory;

  /**
   * The CRC of `bytes`; with `previous`, the CRC of some bytes before them, that of both (so a
   * stream can be hashed piece by piece).
   * @param {Uint8Array} bytes
   * @param {bigint} [previous]
   * @returns {bigint}
   */
  of(bytes, previous = 0n) {
    // The register is the CRC with its final XOR undone; BigInt.asIntN: WebAssembly takes and gives a signed i64.
    let register = BigInt.asIntN(64, previous ^ ALL_ONES);
    for (let at = 0; at < bytes.length; at += CHUNK) {
      const piece = bytes.subarray(at, at + CHUNK);
      this.#memory.set(piece, TABLES);
      register = this.#update(register, piece.length);
    }
    return BigInt.asUintN(64, register) ^ ALL_ONES;
  }
}

/** CRC-64/NVME (check value 0xAE8B14860A799888 for "123456789"), as S3 computes it. */
export const CRC64_NVME = new Crc64Model(0x9a6c9329ac4bc9b5n);
/** CRC-64/ECMA-182 (CRC-64/XZ, check value 0x995DC9BBDF1939FA for "123456789"), as Aliyun OSS computes it. */
export const CRC64_ECMA = new Crc64Model(0xc96c5795d7870f42n);
