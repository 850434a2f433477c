import { createXXHash128 } from 'hash-wasm';
import { describe, expect, it } from 'vitest';
import { hashPages, PAGE_HASH_ALGORITHM, PAGE_HASH_BYTES } from './page-hashes.js';

/** A 4096-byte page with byte i = i·7 mod 251, and its XXH3-128 from an independent (native) implementation. */
const PAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 251));
const PAGE_XXH3 = 'dec463517b2529a15d9027c84d5f33f7';
/** XXH3-128 of the page's first 100 bytes. */
const TAIL_XXH3 = 'fc8da0d97205f51d6c45cd2f745cc3a7';

describe('page hashes', () => {
  it('are the XXH3-128 of each page, canonical bytes, written where asked', async () => {
    expect(PAGE_HASH_ALGORITHM).toBe('xxh3-128');
    const file = Buffer.concat([PAGE, Buffer.alloc(4096), PAGE]);
    const out = Buffer.alloc(5 * PAGE_HASH_BYTES, 0xee);
    hashPages(await createXXHash128(), file, 4096, out, PAGE_HASH_BYTES);
    const hex = Array.from({ length: 5 }, (_, i) => out.subarray(i * 16, (i + 1) * 16).toString('hex'));
    expect([hex[1], hex[3]]).toEqual([PAGE_XXH3, PAGE_XXH3]);
    expect(hex[2]).not.toBe(PAGE_XXH3);
    expect([hex[0], hex[4]]).toEqual(['ee'.repeat(16), 'ee'.repeat(16)]); // nothing written outside
    // A short page (the hasher is not tied to the page size).
    hashPages(await createXXHash128(), PAGE.subarray(0, 100), 100, out, 0);
    expect(out.subarray(0, 16).toString('hex')).toBe(TAIL_XXH3);
  });
});
