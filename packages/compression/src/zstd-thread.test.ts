import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { CompressionError, CompressionErrorCode } from './errors.js';
import { createCompressStream } from './zstd.js';
import { createDecompressStream, stopDecodeThread } from './zstd-thread.js';

/*
 * What a single stream's decoding cannot show (zstd.test.ts runs the decoding matrix): streams
 * that share the thread at once, stopping it, and the process's lifetime.
 */

/** `bytes` bytes that look random, the same on every run (SHA-256 in counter mode): a flipped byte of their compressed form then breaks the same frame each time. */
function seeded(seed: number, bytes: number): Buffer {
  const blocks = Array.from({ length: Math.ceil(bytes / 32) }, (_, n) => createHash('sha256').update(`${seed}:${n}`).digest());
  return Buffer.concat(blocks).subarray(0, bytes);
}

async function compress(data: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([data]), createCompressStream({ workers: 0 }), new Writable({ write: (chunk, _e, cb) => (out.push(chunk), cb()) }));
  return Buffer.concat(out);
}

/** Decodes `input` (in 1000-byte writes, a slow reader when asked) on the thread: its output, or its error. */
async function decode(input: Buffer, slow = false): Promise<{ output: Buffer; error?: unknown }> {
  const out: Buffer[] = [];
  const pieces = Array.from({ length: Math.ceil(input.length / 1000) }, (_, i) => input.subarray(i * 1000, (i + 1) * 1000));
  try {
    await pipeline(
      Readable.from(pieces),
      createDecompressStream(),
      new Writable({ write: (chunk: Buffer, _e, cb) => (out.push(Buffer.from(chunk)), slow ? setTimeout(cb, 1) : cb()) }),
    );
    return { output: Buffer.concat(out) };
  } catch (error) {
    return { output: Buffer.concat(out), error };
  }
}

describe('streams sharing the decoding thread', () => {
  it('40 at once, some corrupt, truncated or abandoned: each good one decodes exactly its own input, each bad one fails alone', async () => {
    const inputs = Array.from({ length: 40 }, (_, i) => ({ data: seeded(i, 20_000 + i * 3_000).toString('hex'), i }));
    const cases = await Promise.all(
      inputs.map(async ({ data, i }) => {
        const plain = Buffer.from(data);
        const compressed = await compress(plain);
        if (i % 10 === 3) return { i, plain, input: compressed.subarray(0, compressed.length >> 1), bad: true };
        if (i % 10 === 7) {
          const flipped = Buffer.from(compressed);
          flipped[flipped.length >> 1]! ^= 0x40;
          return { i, plain, input: flipped, bad: true };
        }
        return { i, plain, input: compressed, bad: false };
      }),
    );
    const abandoned = Array.from({ length: 5 }, () => {
      const stream = createDecompressStream();
      stream.write(cases[0]!.input.subarray(0, 500));
      return stream;
    });
    const results = await Promise.all(cases.map(({ input, i }) => decode(input, i % 2 === 0)));
    for (const stream of abandoned) stream.destroy();
    for (const [n, { plain, bad }] of cases.entries()) {
      const { output, error } = results[n]!;
      if (bad) expect(error instanceof CompressionError && error.code, `stream ${n}`).toBe(CompressionErrorCode.Corrupt);
      else {
        expect(error, `stream ${n}`).toBeUndefined();
        expect(output.equals(plain), `stream ${n}`).toBe(true);
      }
    }
  });
});

describe('stopDecodeThread', () => {
  it('lets an open stream finish; a stream made before and written to after, and the next ones, decode on a new thread', async () => {
    const plain = Buffer.from(randomBytes(50_000).toString('hex'));
    const compressed = await compress(plain);
    const open = createDecompressStream();
    const out: Buffer[] = [];
    open.on('data', (chunk: Buffer) => out.push(Buffer.from(chunk)));
    open.write(compressed.subarray(0, 1000)); // opened on the running thread
    const early = createDecompressStream(); // made, not yet written to
    const stopped = stopDecodeThread();
    const ended = once(open, 'end');
    open.end(compressed.subarray(1000));
    await ended;
    expect(Buffer.concat(out).equals(plain)).toBe(true);
    await stopped;
    const late: Buffer[] = [];
    await pipeline(Readable.from([compressed]), early, new Writable({ write: (chunk: Buffer, _e, cb) => (late.push(Buffer.from(chunk)), cb()) }));
    expect(Buffer.concat(late).equals(plain)).toBe(true);
    expect((await decode(compressed, true)).output.equals(plain)).toBe(true);
    await stopDecodeThread(); // none open: ends at once
    expect((await decode(compressed)).output.equals(plain)).toBe(true);
  });
});

describe('the process', () => {
  const module = fileURLToPath(new URL('./zstd-thread.ts', import.meta.url));
  const run = async (body: string) => {
    const script = `import { createDecompressStream, startDecodeThread } from ${JSON.stringify(module)};
      import { createCompressStream } from ${JSON.stringify(module.replace('zstd-thread.ts', 'zstd.ts'))};
      ${body}`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 30_000 });
    return stdout.trim().split('\n');
  };

  it('ends by itself with the thread started and no stream', async () => {
    expect(await run(`startDecodeThread(); console.log('started');`)).toEqual(['started']);
  });

  it('ends by itself once its streams have ended, with the thread started and streams never written to', async () => {
    const lines = await run(`
      startDecodeThread();
      createDecompressStream(); // never written to
      const compressor = createCompressStream({ workers: 0 });
      const decoder = createDecompressStream();
      compressor.pipe(decoder);
      let text = '';
      decoder.on('data', (chunk) => (text += chunk));
      decoder.on('end', () => console.log(text));
      compressor.end('stowage');`);
    expect(lines).toEqual(['stowage']);
  });

  it('is kept alive by a stream still decoding (an unref-ed timer fires), and ends once it is destroyed', async () => {
    const lines = await run(`
      const decoder = createDecompressStream();
      decoder.write(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])); // a frame begun
      setTimeout(() => { console.log('alive'); decoder.destroy(); }, 2000).unref(); // long after a process with nothing to do has ended`);
    expect(lines).toEqual(['alive']);
  });
});
