import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBodyMatches, bufferBody, destroyOnAbort, digestFile, digestStream, fileBody, sha256Hex } from './body.js';
import { StorageErrorCode } from './errors.js';

describe('bufferBody and digestStream', () => {
  it('describe the same bytes every time the body is opened', async () => {
    const body = bufferBody('hello');
    expect(body).toMatchObject({ size: 5, sha256: sha256Hex('hello') });
    await expect(digestStream(body.open())).resolves.toEqual({ size: 5, sha256: body.sha256 });
    await expect(text(body.open())).resolves.toBe('hello');
  });
});

describe('digestFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-digest-file-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('gives the size and the SHA-256 that sha256sum gives, for sizes around its read buffer (1 MiB)', async () => {
    for (const size of [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7]) {
      const path = join(dir, `${size}.bin`);
      await writeFile(path, randomBytes(size));
      const { stdout } = await promisify(execFile)('sha256sum', [path]);
      await expect(digestFile(path), `${size} bytes`).resolves.toEqual({ size, sha256: stdout.split(' ')[0] });
    }
  });

  it('describes the file a fileBody opens, every time it is opened', async () => {
    const path = join(dir, 'body.bin');
    const bytes = randomBytes(3 * (1 << 20) + 7);
    await writeFile(path, bytes);
    const body = await fileBody(path);
    expect(body).toMatchObject({ size: bytes.length, sha256: sha256Hex(bytes), path });
    for (let n = 0; n < 2; n++) await expect(digestStream(body.open())).resolves.toEqual({ size: body.size, sha256: body.sha256 });
  });

  it('reads an open file from its start and leaves it open; what beforeRead throws ends the digest', async () => {
    const path = join(dir, 'open.bin');
    const bytes = randomBytes((1 << 20) + 3);
    await writeFile(path, bytes);
    const file = await open(path, 'r');
    try {
      await file.read(Buffer.alloc(10), 0, 10, null); // moves the file position: the digest starts at 0 anyway
      await expect(digestFile(file)).resolves.toEqual({ size: bytes.length, sha256: sha256Hex(bytes) });
      let reads = 0;
      const stop = new Error('stop');
      const beforeRead = () => {
        if (++reads === 2) throw stop;
      };
      await expect(digestFile(file, { beforeRead })).rejects.toBe(stop);
      expect((await file.stat()).size).toBe(bytes.length); // still open
    } finally {
      await file.close();
    }
  });

  it('rejects a missing file with its system error', async () => {
    await expect(digestFile(join(dir, 'no-such-file'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('assertBodyMatches', () => {
  const body = bufferBody('hello');

  it('accepts the bytes the body declared', () => {
    expect(() => assertBodyMatches('k', body, { size: 5, sha256: sha256Hex('hello') })).not.toThrow();
  });

  it.each([
    ['size', { size: 4, sha256: sha256Hex('hello') }],
    ['SHA-256', { size: 5, sha256: sha256Hex('hellO') }],
  ])('rejects a different %s with checksum_mismatch', (_, seen) => {
    expect(() => assertBodyMatches('k', body, seen)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.ChecksumMismatch, context: { key: 'k', declared: { size: 5, sha256: body.sha256 }, read: seen } }),
    );
  });
});

describe('destroyOnAbort', () => {
  const aborted = { code: StorageErrorCode.Aborted, context: { key: 'k' } };

  it('destroys the stream with an aborted error when the signal aborts', async () => {
    const controller = new AbortController();
    const stream = destroyOnAbort(new PassThrough(), controller.signal, 'k');
    controller.abort();
    await expect(text(stream)).rejects.toMatchObject(aborted);
  });

  it('destroys the stream at once when the signal has already aborted', async () => {
    const stream = destroyOnAbort(Readable.from(['x']), AbortSignal.abort(), 'k');
    await expect(text(stream)).rejects.toMatchObject(aborted);
  });

  it('stops listening once the stream has closed', async () => {
    const controller = new AbortController();
    const stream = destroyOnAbort(Readable.from(['done']), controller.signal, 'k');
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
    await expect(text(stream)).resolves.toBe('done');
    await new Promise((resolve) => setImmediate(resolve));
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});
