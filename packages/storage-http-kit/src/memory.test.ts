import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageErrorCode, bufferBody } from '@stowage/storage';
import { describe, expect, it } from 'vitest';
import { PartMemory, uploadParts } from './memory.js';
import { PartReader } from './parts.js';
import { PartWindow } from './window.js';

const chunked = (bytes: Buffer, chunk: number) =>
  Readable.from(Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk)));

describe('PartMemory', () => {
  it('grants holds within its limit at once, and the next one when enough is given back, in order', async () => {
    const memory = new PartMemory(100);
    const first = await memory.hold(60);
    const second = await memory.hold(40);
    const granted: string[] = [];
    const third = memory.hold(50).then((release) => (granted.push('third'), release));
    const fourth = memory.hold(10).then((release) => (granted.push('fourth'), release));
    await sleep(5);
    expect([memory.held, granted]).toEqual([100, []]); // the small fourth waits behind the third: no starving
    second();
    second(); // a second call gives back nothing more
    await sleep(5);
    expect([memory.held, granted]).toEqual([60, []]);
    first();
    await sleep(5);
    expect([memory.held, granted]).toEqual([60, ['third', 'fourth']]);
    (await third)();
    (await fourth)();
    expect(memory.held).toBe(0);
  });

  it('grants a hold larger than the limit alone, so a large part still goes', async () => {
    const memory = new PartMemory(100);
    const small = await memory.hold(10);
    const large = memory.hold(500);
    await sleep(5);
    expect(memory.held).toBe(10);
    small();
    (await large)();
    expect(memory.held).toBe(0);
  });

  it('holds the bytes while `holding` runs its work, and gives them back whether it resolves or throws', async () => {
    const memory = new PartMemory(100);
    await expect(
      memory.holding(60, async () => {
        expect(memory.held).toBe(60);
        throw new Error('upload failed');
      }),
    ).rejects.toThrow('upload failed');
    expect(memory.held).toBe(0);
    expect(await memory.holding(100, async () => memory.held)).toBe(100);
    expect(memory.held).toBe(0);
  });
});

describe('uploadParts', () => {
  /** Uploads `bytes` in parts of 100 through a window of 4 within `memory`, recording how many ran at once. */
  async function run(bytes: Buffer, memory: PartMemory, fail?: { part: number }) {
    const reader = new PartReader('k', bufferBody(bytes), chunked(bytes, 64), 100);
    const window = new PartWindow(4, new AbortController());
    const sent: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    let running = 0;
    let most = 0;
    const done = uploadParts(
      reader,
      window,
      async (data, partNumber) => {
        most = Math.max(most, ++running);
        await sleep(2);
        running--;
        if (partNumber === fail?.part) throw new Error(`part ${partNumber} failed`);
        sent[partNumber - 1] = Buffer.from(data); // the buffer is read into again once this settles
        buffers.add(data.buffer);
      },
      memory,
    );
    return { done: done.then(() => reader.finish()), sent, buffers, most: () => most, window };
  }

  it('sends every part in order and holds at most the memory given, however large the window', async () => {
    const bytes = randomBytes(1050);
    const memory = new PartMemory(200);
    const upload = await run(bytes, memory);
    await upload.done;
    expect(Buffer.concat(upload.sent).equals(bytes)).toBe(true);
    expect(upload.sent.map((part) => part.length)).toEqual([...Array(10).fill(100), 50]);
    expect(upload.most()).toBe(2); // the window would allow 4
    expect(upload.buffers.size).toBe(3); // parts of 100 read into 2 buffers again and again, and the last (50)
    expect(memory.held).toBe(0);
  });

  it('gives all its memory back when a part fails, and throws that failure', async () => {
    const memory = new PartMemory(300);
    const upload = await run(randomBytes(1050), memory, { part: 3 });
    const failure = await upload.done.catch((error: unknown) => error);
    await upload.window.stop(failure);
    expect(failure).toMatchObject({ message: 'part 3 failed' });
    expect(memory.held).toBe(0);
  });

  it('gives its memory back when the body fails its check', async () => {
    const memory = new PartMemory(300);
    const bytes = randomBytes(1050);
    const reader = new PartReader('k', { ...bufferBody(bytes), size: 500 }, chunked(bytes, 64), 100);
    const window = new PartWindow(4, new AbortController());
    await expect(uploadParts(reader, window, async () => sleep(2), memory)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
    await window.stop(undefined);
    expect(memory.held).toBe(0);
  });
});
