import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { StorageErrorCode, bufferBody, sha256Hex } from '@stowage/storage';
import { describe, expect, it } from 'vitest';
import { NETWORK_ERROR_CODES, isNetworkError } from './network.js';
import { PartReader } from './parts.js';
import { PartWindow } from './window.js';

/** A stream of `bytes` in chunks of `chunk` bytes (so parts straddle chunk boundaries). */
const chunked = (bytes: Buffer, chunk: number) =>
  Readable.from(Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk)));

async function allParts(reader: PartReader): Promise<Buffer[]> {
  const parts: Buffer[] = [];
  for (let part = await reader.nextPart(); part; part = await reader.nextPart()) parts.push(part);
  return parts;
}

describe('PartReader', () => {
  it('cuts a body into parts of exactly partSize bytes (the last shorter) and checks it', async () => {
    const bytes = randomBytes(2500);
    const reader = new PartReader('k', bufferBody(bytes), chunked(bytes, 333), 1000);
    const parts = await allParts(reader);
    expect(parts.map((part) => part.length)).toEqual([1000, 1000, 500]);
    expect(Buffer.concat(parts).equals(bytes)).toBe(true);
    await reader.finish();
  });

  it('reads a recycled part buffer again, and never one still held', async () => {
    const bytes = randomBytes(4500);
    const reader = new PartReader('k', bufferBody(bytes), chunked(bytes, 333), 1000);
    const first = (await reader.nextPart())!;
    const second = (await reader.nextPart())!;
    expect(second.buffer).not.toBe(first.buffer);
    reader.recycle(first);
    reader.recycle(Buffer.alloc(10)); // not a part of this reader's size: ignored
    const third = (await reader.nextPart())!;
    expect(third.buffer).toBe(first.buffer);
    expect(third.equals(bytes.subarray(2000, 3000))).toBe(true);
    expect(second.equals(bytes.subarray(1000, 2000))).toBe(true);
    const fourth = (await reader.nextPart())!;
    expect(fourth.buffer).not.toBe(second.buffer); // never handed back
    expect(fourth.equals(bytes.subarray(3000, 4000))).toBe(true);
    expect((await reader.nextPart())!.equals(bytes.subarray(4000))).toBe(true);
    expect(await reader.nextPart()).toBeUndefined();
    await reader.finish();
  });

  it('gives one empty part for an empty body', async () => {
    const reader = new PartReader('k', bufferBody(Buffer.alloc(0)), chunked(Buffer.alloc(0), 1), 1000);
    expect((await allParts(reader)).map((part) => part.length)).toEqual([0]);
    await reader.finish();
  });

  it('fails with checksum_mismatch as soon as the body runs past its declared size', async () => {
    const bytes = randomBytes(3000);
    const reader = new PartReader('k', { ...bufferBody(bytes), size: 1500 }, chunked(bytes, 500), 1000);
    expect((await reader.nextPart())?.length).toBe(1000);
    await expect(reader.nextPart()).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
  });

  it('fails in finish() when the body is shorter than declared, or its SHA-256 differs', async () => {
    const bytes = randomBytes(1500);
    const short = new PartReader('k', { ...bufferBody(bytes), size: 2000 }, chunked(bytes, 500), 1000);
    await allParts(short);
    await expect(short.finish()).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
    const lying = new PartReader('k', { ...bufferBody(bytes), sha256: sha256Hex('other') }, chunked(bytes, 500), 1000);
    await allParts(lying);
    await expect(lying.finish()).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
  });
});

describe('PartWindow', () => {
  it('keeps at most `size` uploads in flight', async () => {
    const window = new PartWindow(3, new AbortController());
    let running = 0;
    let most = 0;
    for (let i = 0; i < 10; i++) {
      await window.add(async () => {
        most = Math.max(most, ++running);
        await sleep(5);
        running--;
      });
    }
    await window.drain();
    expect({ most, running }).toEqual({ most: 3, running: 0 });
  });

  it('stops at the first failure: aborts the others, refuses more, and reports that failure', async () => {
    const controller = new AbortController();
    const window = new PartWindow(2, controller);
    const first = new Error('part 1 failed');
    let secondSawAbort = false;
    await window.add(async () => {
      await sleep(5);
      throw first;
    });
    await window.add(
      () =>
        new Promise<void>((_resolve, reject) =>
          controller.signal.addEventListener('abort', () => {
            secondSawAbort = true;
            reject(new Error('aborted'));
          }),
        ),
    );
    let started = false;
    await expect(window.add(async () => void (started = true))).rejects.toBe(first);
    expect({ started, secondSawAbort, aborted: controller.signal.aborted }).toEqual({ started: false, secondSawAbort: true, aborted: true });
    await expect(window.drain()).rejects.toBe(first);
    expect(await window.stop(new Error('the body failed too'))).toBe(first);
  });

  it('stop() without a part failure reports the error it was given and aborts what is in flight', async () => {
    const controller = new AbortController();
    const window = new PartWindow(2, controller);
    await window.add(() => new Promise<void>((resolve) => controller.signal.addEventListener('abort', () => resolve())));
    const error = new Error('body unreadable');
    expect(await window.stop(error)).toBe(error);
    expect(controller.signal.reason).toBe(error);
  });
});

describe('isNetworkError', () => {
  it('classifies by code, whatever the class: every listed code, ERR_STREAM_PREMATURE_CLOSE included', () => {
    expect(NETWORK_ERROR_CODES.has('ERR_STREAM_PREMATURE_CLOSE')).toBe(true);
    for (const code of NETWORK_ERROR_CODES) {
      expect(isNetworkError(Object.assign(new Error('x'), { code })), code).toBe(true);
      expect(isNetworkError({ code }), `plain object with ${code}`).toBe(true);
    }
  });

  it('is false for other codes, non-string codes and non-errors', () => {
    for (const value of [
      Object.assign(new Error('x'), { code: 'ENOENT' }),
      { code: 'EACCES' },
      { code: 104 },
      new Error('ECONNRESET'),
      undefined,
      null,
      'ECONNRESET',
    ]) {
      expect(isNetworkError(value), String(value)).toBe(false);
    }
  });
});
