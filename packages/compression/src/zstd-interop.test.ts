import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createCompressStream } from './zstd.js';
import { createDecompressStream } from './zstd-thread.js';

// Debian's zstd CLI on the other side of our streams.

function zstd(args: string[], input: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('zstd', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(stdout), stderr }));
    child.stdin.end(input);
  });
}

async function run(input: Buffer, stage: Transform): Promise<Buffer> {
  let output = Buffer.alloc(0);
  await pipeline(Readable.from([input]), stage, async (chunks: AsyncIterable<Buffer | string>) => {
    output = await buffer(chunks);
  });
  return output;
}

const data = Buffer.concat(
  Array.from({ length: 2000 }, (_, i) => Buffer.from(`row ${i} | 上海 浦东新区 | ${randomBytes(8).toString('hex')} | qty ${i % 97}\n`)),
);

describe('zstd CLI interoperability', () => {
  it.each([0, 1, 2])('zstd -d reads our output (workers %d) and finds its checksum', async (workers) => {
    const compressed = await run(data, createCompressStream({ workers }));
    const result = await zstd(['-d', '-c'], compressed);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.equals(data)).toBe(true);
    expect((await zstd(['-t'], compressed)).code).toBe(0);
  });

  it('we read zstd -3 output', async () => {
    const result = await zstd(['-3', '-c'], data);
    expect(result.code, result.stderr).toBe(0);
    expect((await run(result.stdout, createDecompressStream())).equals(data)).toBe(true);
  });

  it('we read zstd --long -19 output and several frames', async () => {
    const long = await zstd(['--long=24', '-19', '-c'], data);
    const plain = await zstd(['-1', '-c', '--no-check'], data);
    expect((await run(Buffer.concat([long.stdout, plain.stdout]), createDecompressStream())).equals(Buffer.concat([data, data]))).toBe(true);
  });
});
