import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createPageDigestStream, digestDatabaseFile, PAGE_HASH_ALGORITHM, PAGE_HASH_BYTES } from './page-hashes.js';

/** A 4096-byte page with byte i = i·7 mod 251, and its XXH3-128 from an independent (native) implementation. */
const PAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 251));
const PAGE_XXH3 = 'dec463517b2529a15d9027c84d5f33f7';
/** XXH3-128 of the page's first 100 bytes (a short last page). */
const TAIL_XXH3 = 'fc8da0d97205f51d6c45cd2f745cc3a7';

describe('page hashes', () => {
  it('are the XXH3-128 of each page, canonical bytes, whatever the chunking; the file keeps its SHA-256', async () => {
    expect(PAGE_HASH_ALGORITHM).toBe('xxh3-128');
    const file = Buffer.concat([PAGE, Buffer.alloc(4096), PAGE, PAGE.subarray(0, 100)]);
    const expected = [PAGE_XXH3, undefined, PAGE_XXH3, TAIL_XXH3];
    // Chunks that split pages anywhere, including one byte at a time at a boundary.
    for (const cuts of [[file.length], [1, 4095, 4097, 5000], [4096 * 3 + 1], [7, 8191, 1]]) {
      const chunks: Buffer[] = [];
      let at = 0;
      for (const cut of cuts) chunks.push(file.subarray(at, (at = Math.min(file.length, at + cut))));
      if (at < file.length) chunks.push(file.subarray(at));
      const digest = await createPageDigestStream(4096);
      await pipeline(Readable.from(chunks), digest, async (out: AsyncIterable<Buffer>) => {
        for await (const _ of out);
      });
      const { size, sha256, pageHashes } = digest.result();
      expect(size).toBe(file.length);
      expect(sha256).toBe(createHash('sha256').update(file).digest('hex'));
      expect(pageHashes.length).toBe(4 * PAGE_HASH_BYTES);
      const hex = Array.from({ length: 4 }, (_, i) => pageHashes.subarray(i * 16, (i + 1) * 16).toString('hex'));
      expect([hex[0], hex[2], hex[3]]).toEqual([expected[0], expected[2], expected[3]]);
      expect(hex[1]).not.toBe(hex[0]);
    }
  });

  it('of a file on disk equal those of the stream', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-pagehash-'));
    try {
      const path = join(dir, 'db');
      await writeFile(path, Buffer.concat([PAGE, PAGE]));
      const digest = await digestDatabaseFile(path, 4096);
      expect(digest.pageHashes.toString('hex')).toBe(PAGE_XXH3 + PAGE_XXH3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('of a file larger than one read (the read buffer is reused) cover every page, a short last one included', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-pagehash-'));
    try {
      const path = join(dir, 'db');
      // 9 MiB of distinct pages (more than two 4 MiB reads) and 100 bytes more.
      const pages = Array.from({ length: 2304 }, (_, i) => Buffer.alloc(4096, i % 251));
      const file = Buffer.concat([...pages, PAGE.subarray(0, 100)]);
      await writeFile(path, file);
      const digest = await digestDatabaseFile(path, 4096);
      const streamed = await createPageDigestStream(4096);
      await pipeline(Readable.from([file]), streamed, async (out: AsyncIterable<Buffer>) => {
        for await (const _ of out);
      });
      const expected = streamed.result();
      expect(digest.size).toBe(file.length);
      expect(digest.sha256).toBe(createHash('sha256').update(file).digest('hex'));
      expect(digest.pageHashes.equals(expected.pageHashes)).toBe(true);
      expect(digest.pageHashes.subarray(-PAGE_HASH_BYTES).toString('hex')).toBe(TAIL_XXH3);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
