import { createReadStream } from 'node:fs';
import { appendFile, mkdtemp, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChainPages, DeltaWriter } from './delta.js';

const PAGE = 512;
const sha = (n: number) => String(n).repeat(64).slice(0, 64);
let dir: string;
beforeEach(async () => void (dir = await mkdtemp(join(tmpdir(), 'stowage-delta-'))));
afterEach(async () => rm(dir, { recursive: true, force: true }));

/** A page whose every byte is `tag`. */
const page = (tag: number) => Buffer.alloc(PAGE, tag);

/** Writes a delta of `pages` (index → tag) from snapshot `from` to `to`, `pageCount` pages. */
async function delta(name: string, pages: Array<[number, number]>, pageCount: number, from: number, to: number): Promise<string> {
  const path = join(dir, name);
  const writer = await DeltaWriter.create(path, PAGE);
  try {
    for (const [index, tag] of pages) await writer.add(index, page(tag));
    await writer.finish({ pageCount, basePageCount: 0, baseSha256: sha(from), targetSha256: sha(to) });
  } finally {
    await writer.close();
  }
  return path;
}

/** Streams `path` into a receiver of `pages` in small chunks (records straddle them), then commits. */
async function receive(pages: ChainPages, path: string, base: number): Promise<void> {
  const receiver = pages.receive({ link: path, base: { sha256: sha(base), name: `backup ${base}` } });
  await pipeline(createReadStream(path, { highWaterMark: 100 }), receiver);
  receiver.commit();
}

/** The image the chain yields: each page from its delta, else the base's, else zeros. */
function image(pages: ChainPages, base: Buffer): Buffer {
  const out = Buffer.alloc(pages.pageCount * PAGE);
  for (let p = 0; p < pages.pageCount; p++) {
    if (!pages.copy(p, out, p * PAGE) && p < pages.baseLimit) base.copy(out, p * PAGE, p * PAGE, (p + 1) * PAGE);
  }
  return out;
}

describe('ChainPages', () => {
  it('keeps only the newest page of each index, newest delta first, honouring shrinkage and growth; same bytes as applying the deltas in turn', async () => {
    const base = Buffer.concat(Array.from({ length: 10 }, (_, p) => page(100 + p)));
    // Snapshot 0 (10 pages) → 1 (12 pages) → 2 (6 pages) → 3 (9 pages).
    const links = [
      await delta(
        'd1',
        [
          [1, 1],
          [2, 1],
          [3, 1],
          [7, 1],
          [10, 1],
          [11, 1],
        ],
        12,
        0,
        1,
      ),
      await delta(
        'd2',
        [
          [2, 2],
          [3, 2],
          [5, 2],
        ],
        6,
        1,
        2,
      ),
      await delta(
        'd3',
        [
          [3, 3],
          [4, 3],
          [8, 3],
        ],
        9,
        2,
        3,
      ),
    ];
    const pages = ChainPages.create(join(dir, 'spill'), { pageSize: PAGE, pageCount: 10 });
    try {
      for (let i = links.length - 1; i >= 0; i--) await receive(pages, links[i]!, i);
      // Applied in turn: pages 1 (d1), 2 (d2), 3 (d3), 4 (d3), 5 (d2), 8 (d3); 6 and 7 cut off by d2, zeros; 0 from the base.
      const expected = Buffer.concat([page(100), page(1), page(2), page(3), page(3), page(2), page(0), page(0), page(3)]);
      expect(pages.pageCount).toBe(9);
      expect(pages.baseLimit).toBe(6);
      expect(pages.pages).toEqual([1, 2, 3, 4, 5, 8]);
      expect(image(pages, base).equals(expected)).toBe(true);
      // Pages rewritten later (d1's 2, 3, 7, 10, 11; d2's 3) were never written.
      expect((await stat(join(dir, 'spill'))).size).toBe(6 * PAGE);
    } finally {
      pages.close();
    }
  });

  it('copies a run of adjacent kept pages in one read, also from the middle of a page', async () => {
    const pages = ChainPages.create(join(dir, 'spill'), { pageSize: PAGE, pageCount: 8 });
    try {
      await receive(
        pages,
        await delta(
          'd1',
          [
            [2, 2],
            [3, 3],
            [4, 4],
            [6, 6],
          ],
          8,
          0,
          1,
        ),
        0,
      );
      expect([pages.run(0), pages.run(3)]).toEqual([3, 1]);
      const out = Buffer.alloc(2 * PAGE);
      pages.copy(2, out, 0, PAGE / 2, 2 * PAGE);
      expect(out.equals(Buffer.concat([page(2).subarray(PAGE / 2), page(3), page(4).subarray(0, PAGE / 2)]))).toBe(true);
    } finally {
      pages.close();
    }
  });

  it('refuses a delta taken against another base (chain_broken) and malformed ones (backup_corrupt), adding none of their pages', async () => {
    let n = 0;
    /** A good delta of 2 pages, then `edit`ed. */
    const damaged = (edit: (path: string, size: number) => Promise<void>) => async () => {
      const path = await delta(
        `damaged-${n++}`,
        [
          [1, 1],
          [2, 1],
        ],
        4,
        0,
        1,
      );
      await edit(path, (await stat(path)).size);
      return path;
    };
    const cases: Array<[string, () => Promise<string>, string, RegExp]> = [
      ['wrong base', () => delta('other', [[1, 1]], 4, 7, 1), 'stowage.backup.chain_broken', /taken against another base than backup 0/],
      ['cut inside a page', damaged((path, size) => truncate(path, size - 10)), 'stowage.backup.corrupt', /ends early/],
      ['bytes past the last page', damaged((path) => appendFile(path, 'x')), 'stowage.backup.corrupt', /bytes past its last page/],
      [
        'page past its count',
        () =>
          delta(
            'past',
            [
              [1, 1],
              [5, 1],
            ],
            4,
            0,
            1,
          ),
        'stowage.backup.corrupt',
        /page 5 is past its page count/,
      ],
      ['not a delta', damaged((path) => truncate(path, 50)), 'stowage.backup.corrupt', /not a Stowage page delta/],
    ];
    for (const [name, make, code, message] of cases) {
      const pages = ChainPages.create(join(dir, `spill-${name}`), { pageSize: PAGE, pageCount: 4 });
      try {
        await expect(receive(pages, await make(), 0), name).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
        expect(pages.pages, name).toEqual([]);
        // The chain still takes the good delta afterwards.
        await receive(pages, await delta(`good-${name.replaceAll(' ', '-')}`, [[3, 3]], 4, 0, 1), 0);
        expect(pages.pages, name).toEqual([3]);
      } finally {
        pages.close();
      }
    }
  });

  it('forgets an aborted attempt (a download that failed), so that the next attempt claims the same pages', async () => {
    const path = await delta(
      'd1',
      [
        [1, 1],
        [2, 2],
      ],
      4,
      0,
      1,
    );
    const pages = ChainPages.create(join(dir, 'spill'), { pageSize: PAGE, pageCount: 4 });
    try {
      const failed = pages.receive({ link: 'd1', base: { sha256: sha(0), name: 'backup 0' } });
      await pipeline(createReadStream(path, { highWaterMark: 100, end: 400 }), failed);
      failed.abort();
      expect(pages.pages).toEqual([]);
      await receive(pages, path, 0);
      expect(pages.pages).toEqual([1, 2]);
      const out = Buffer.alloc(PAGE);
      pages.copy(2, out, 0);
      expect(out.equals(page(2))).toBe(true);
    } finally {
      pages.close();
    }
  });
});
