import { randomBytes } from 'node:crypto';
import { Readable, Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { CompressionError, CompressionErrorCode, decodeError } from './errors.js';
import { createCompressStream, workerThreads } from './zstd.js';
import { createDecompressStream, type Recycling } from './zstd-thread.js';

/** SQLite-like data: repetitive rows with some noise, compressible about 4:1. */
function sampleData(size: number): Buffer {
  const rows: string[] = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const row = `${i}|B-${i % 97}-${i % 13}|goods ${i % 500} 上海仓库|${randomBytes(4).toString('hex')}|${i % 400}\n`;
    rows.push(row);
    length += Buffer.byteLength(row);
  }
  return Buffer.from(rows.join('')).subarray(0, size);
}

/** Runs `input` through `stages` in chunks; the sink is slow (one tick per chunk) when asked. */
async function through(input: Buffer, stages: Transform[], options: { chunkSize?: number; slow?: boolean } = {}): Promise<{ output: Buffer; error: unknown }> {
  const chunkSize = options.chunkSize ?? 64 * 1024;
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < input.length; offset += chunkSize) pieces.push(input.subarray(offset, offset + chunkSize));
  const out: Buffer[] = [];
  try {
    await pipeline(
      Readable.from(pieces),
      ...(stages as [Transform]),
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          out.push(chunk);
          if (options.slow) setImmediate(callback);
          else callback();
        },
      }),
    );
    return { output: Buffer.concat(out), error: undefined };
  } catch (error) {
    return { output: Buffer.concat(out), error };
  }
}

async function compress(input: Buffer, options?: Parameters<typeof createCompressStream>[0]): Promise<Buffer> {
  const { output, error } = await through(input, [createCompressStream(options)]);
  if (error !== undefined) throw error;
  return output;
}

function codeOf(error: unknown): string | undefined {
  return error instanceof CompressionError ? error.code : error === undefined ? undefined : String(error);
}

describe('decoding', () => {
  describe('round trips', () => {
    const data = sampleData(1024 * 1024 + 123);

    it.each([
      ['level 3 (default), 2 workers (default)', {}],
      ['level 1, on the calling thread', { level: 1, workers: 0 }],
      ['level 19, 1 worker', { level: 19, workers: 1 }],
      ['level 3, 2 workers, a small input on the calling thread', { inputSize: 1024 * 1024 + 123 }],
    ])('%s', async (_name, options) => {
      const compressed = await compress(data, options);
      expect(compressed.length).toBeLessThan(data.length / 2);
      const { output, error } = await through(compressed, [createDecompressStream()]);
      expect(error).toBeUndefined();
      expect(output.equals(data)).toBe(true);
    });

    it('with tiny input chunks and a slow reader', async () => {
      const compressed = await compress(data);
      const { output, error } = await through(compressed, [createDecompressStream()], { chunkSize: 777, slow: true });
      expect(error).toBeUndefined();
      expect(output.equals(data)).toBe(true);
    });

    it('empty input compresses to a frame that decompresses to nothing', async () => {
      const compressed = await compress(Buffer.alloc(0));
      expect(compressed.length).toBeGreaterThan(0);
      expect(await through(compressed, [createDecompressStream()])).toEqual({ output: Buffer.alloc(0), error: undefined });
    });

    it('concatenated frames decompress to the concatenated data', async () => {
      const a = sampleData(10_000);
      const b = randomBytes(5_000);
      const { output } = await through(Buffer.concat([await compress(a), await compress(b)]), [createDecompressStream()]);
      expect(output.equals(Buffer.concat([a, b]))).toBe(true);
    });

    it('compress and decompress in one pipeline', async () => {
      const { output } = await through(data, [createCompressStream(), createDecompressStream()], { slow: true });
      expect(output.equals(data)).toBe(true);
    });
  });

  describe('backpressure', () => {
    it('a few KiB that expand to 1 GiB are decoded only as fast as they are read', async () => {
      const bomb = await compress(Buffer.alloc(64 * 1024 * 1024), { level: 19 });
      const frames = Buffer.concat(Array.from({ length: 16 }, () => bomb)); // 1 GiB of zeros
      expect(frames.length).toBeLessThan(64 * 1024);
      const decompressor = createDecompressStream();
      decompressor.end(frames);
      const first: Buffer = await new Promise((resolve) => decompressor.once('data', resolve));
      decompressor.pause();
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(first.length).toBeGreaterThan(0);
      expect(decompressor.readableLength).toBeLessThan(2 * 1024 * 1024);
      decompressor.destroy();
    });
  });

  describe('a reader that recycles the chunks', () => {
    const data = sampleData(4 * 1024 * 1024 + 321);

    /**
     * Decodes `compressed` into `read`, called with each chunk and its offset in the output, through
     * a slow reader; returns the distinct buffers the chunks were in.
     */
    async function recycling(compressed: Buffer, read: (chunk: Buffer, offset: number, decoder: Recycling) => void): Promise<Set<ArrayBufferLike>> {
      const decoder = createDecompressStream();
      const buffers = new Set<ArrayBufferLike>();
      let offset = 0;
      await pipeline(
        Readable.from([compressed.subarray(0, 100_000), compressed.subarray(100_000)]),
        decoder,
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            buffers.add(chunk.buffer);
            const { length } = chunk; // a chunk handed back may be emptied (the thread takes its memory back)
            read(chunk, offset, decoder);
            offset += length;
            setImmediate(callback);
          },
        }),
      );
      expect(offset).toBe(data.length);
      return buffers;
    }

    it('keeps each chunk intact until it is handed back (8 held at a time, poisoned when handed back), and takes each one back to decode into', async () => {
      const compressed = await compress(data);
      const held: Array<{ chunk: Buffer; offset: number; length: number }> = [];
      const damaged: number[] = [];
      let handedBack = 0;
      let keptHere = 0;
      const handBack = (decoder: Recycling, { chunk, offset, length }: { chunk: Buffer; offset: number; length: number }) => {
        // Its length too: a chunk whose memory went back to the thread early is left empty.
        if (chunk.length !== length || !chunk.equals(data.subarray(offset, offset + length))) damaged.push(offset);
        chunk.fill(0xee); // what a buffer reused too early would carry into the output
        decoder.recycle(chunk);
        handedBack++;
        // Taken back, its memory goes to the thread at once: nothing is left here to read.
        if (chunk.length !== 0) keptHere++;
      };
      await recycling(compressed, (chunk, offset, decoder) => {
        held.push({ chunk, offset, length: chunk.length });
        if (held.length > 8) handBack(decoder, held.shift()!);
      });
      expect(damaged).toEqual([]);
      expect(handedBack).toBeGreaterThan(20);
      expect(keptHere).toBe(0);
    });

    it('ignores a chunk handed back twice (after its buffer was reused), a piece, a copy or another view of it: no chunk still read is overwritten', async () => {
      const compressed = await compress(data);
      const kept: Array<{ chunk: Buffer; offset: number; length: number }> = [];
      let returned: Buffer | undefined;
      let count = 0;
      await recycling(compressed, (chunk, offset, decoder) => {
        // Every other chunk goes back at once; the one before is handed back again, stale.
        if (returned) decoder.recycle(returned);
        if (count++ % 2 === 0) {
          decoder.recycle(chunk);
          returned = chunk;
          return;
        }
        decoder.recycle(chunk.subarray(0, 100));
        decoder.recycle(chunk.subarray(0));
        decoder.recycle(Buffer.from(chunk));
        kept.push({ chunk, offset, length: chunk.length });
      });
      expect(kept.length).toBeGreaterThan(10);
      // Intact, and not emptied: a hand-back taken by mistake would have sent its memory to the thread.
      for (const { chunk, offset, length } of kept)
        expect(chunk.length === length && chunk.equals(data.subarray(offset, offset + length)), `chunk at ${offset}`).toBe(true);
    });

    it('without recycling, no chunk is ever decoded into again', async () => {
      const compressed = await compress(data);
      const chunks: Buffer[] = [];
      const buffers = await recycling(compressed, (chunk) => chunks.push(chunk));
      expect(buffers.size).toBe(chunks.length);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    });
  });

  describe('bad input is stowage.compression.corrupt', () => {
    it.each([
      ['not zstd (an SQLite header)', Buffer.from('SQLite format 3\0 and more bytes')],
      ['empty', Buffer.alloc(0)],
    ])('%s', async (_name, input) => {
      const { error } = await through(input, [createDecompressStream()]);
      expect(codeOf(error)).toBe(CompressionErrorCode.Corrupt);
    });

    it('truncated anywhere', async () => {
      const compressed = await compress(sampleData(500_000));
      for (const cut of [1, 4, 10, 100, Math.floor(compressed.length / 2), compressed.length - 4, compressed.length - 1]) {
        const { error } = await through(compressed.subarray(0, cut), [createDecompressStream()]);
        expect(codeOf(error), `cut at ${cut}`).toBe(CompressionErrorCode.Corrupt);
      }
    });

    // A few bits of a zstd frame do not change what it decodes to (4 of 92,000 flips measured); such a flip
    // decodes to the original bytes. Every other flip must be an error: never different bytes without one.
    it('bit flips anywhere: an error, or exactly the original bytes (the content checksum catches the rest)', async () => {
      const data = sampleData(500_000);
      const compressed = await compress(data);
      let caught = 0;
      let flips = 0;
      for (let position = 0; position < compressed.length; position += Math.floor(compressed.length / 40), flips++) {
        const flipped = Buffer.from(compressed);
        flipped[position]! ^= 0x10;
        const { error, output } = await through(flipped, [createDecompressStream()]);
        if (error === undefined) expect(output.equals(data), `flip at ${position} decoded to other bytes without an error`).toBe(true);
        else {
          expect(codeOf(error), `flip at ${position}`).toBe(CompressionErrorCode.Corrupt);
          caught++;
        }
      }
      expect(caught).toBeGreaterThanOrEqual(flips - 2);
    });

    it('trailing garbage after the frame', async () => {
      const compressed = await compress(sampleData(10_000));
      const { error } = await through(Buffer.concat([compressed, Buffer.from('garbage!')]), [createDecompressStream()]);
      expect(codeOf(error)).toBe(CompressionErrorCode.Corrupt);
    });
  });

  describe('a context left by a finished stream decodes the next one', () => {
    it('after good, truncated, corrupt, abandoned and overlapping streams, each stream decodes exactly its own input', async () => {
      const [a, b, c] = [sampleData(300_000), sampleData(2_000_000), sampleData(1000)];
      const [za, zb, zc] = [await compress(a), await compress(b, { level: 19 }), await compress(c)];
      const expectDecodes = async (compressed: Buffer, data: Buffer) =>
        expect((await through(compressed, [createDecompressStream()])).output.equals(data)).toBe(true);
      await expectDecodes(za, a);
      await expectDecodes(zb, b);
      // A stream that fails in the middle of a frame, after one that released its context: corrupt, and the next is unaffected.
      expect(codeOf((await through(zb.subarray(0, zb.length >> 1), [createDecompressStream()])).error)).toBe(CompressionErrorCode.Corrupt);
      await expectDecodes(zc, c);
      const flipped = Buffer.from(za);
      flipped[za.length >> 1]! ^= 0x10;
      expect(codeOf((await through(flipped, [createDecompressStream()])).error)).toBe(CompressionErrorCode.Corrupt);
      await expectDecodes(za, a);
      // Abandoned half-way (destroyed), then two streams at once.
      const abandoned = createDecompressStream();
      abandoned.write(zb.subarray(0, zb.length >> 1));
      abandoned.destroy();
      const [first, second] = await Promise.all([
        through(zb, [createDecompressStream()]),
        through(Buffer.concat([zc, za]), [createDecompressStream()], { slow: true }),
      ]);
      expect(first.output.equals(b)).toBe(true);
      expect(second.output.equals(Buffer.concat([c, a]))).toBe(true);
      await expectDecodes(zc, c);
    });
  });
});

describe('decodeError', () => {
  it('wraps a zstd failure and keeps its reason', () => {
    const error = decodeError(new Error("Restored data doesn't match checksum"));
    expect(error.code).toBe(CompressionErrorCode.Corrupt);
    expect(error.message).toContain("Restored data doesn't match checksum");
    expect(error.toJSON()).toMatchObject({ code: 'stowage.compression.corrupt', context: { reason: "Restored data doesn't match checksum" } });
  });

  it('returns a CompressionError as it is', () => {
    const original = new CompressionError(CompressionErrorCode.Corrupt, 'x');
    expect(decodeError(original)).toBe(original);
  });
});

describe('options', () => {
  it('compresses an input known to be at most 16 MiB on the calling thread, a larger or unknown one in the workers', () => {
    expect(workerThreads(2, 16 * 1024 * 1024)).toBe(0);
    expect(workerThreads(2, 0)).toBe(0);
    expect(workerThreads(2, 16 * 1024 * 1024 + 1)).toBe(2);
    expect(workerThreads(1, undefined)).toBe(1);
  });

  it.each([[{ level: 0 }], [{ level: 20 }], [{ level: 2.5 }], [{ workers: -1 }], [{ workers: 1.5 }], [{ inputSize: -1 }], [{ inputSize: 0.5 }]])(
    'rejects %o',
    (options) => {
      expect(() => createCompressStream(options)).toThrow(expect.objectContaining({ code: CompressionErrorCode.InvalidOptions }));
    },
  );
});
