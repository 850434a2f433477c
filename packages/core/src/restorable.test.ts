import { describe, expect, it } from 'vitest';
import type { CatalogEntry } from './catalog.js';
import { restorableFrom, restorableFromEach } from './chain.js';

/** A catalog entry with only what restorability looks at. */
const entry = (id: string, parent: string | null, destinations: string[]) => ({ manifest: { id, parent }, destinations }) as unknown as CatalogEntry;

describe('restorableFromEach', () => {
  it('agrees with restorableFrom on every link: holders of the whole chain, in each entry’s own order', () => {
    const catalog = [
      entry('full_1', null, ['a', 'b', 'c']),
      entry('inc_1', 'full_1', ['c', 'b']),
      entry('inc_2', 'inc_1', ['a', 'b', 'c']),
      entry('hot_1', null, ['b']),
      entry('inc_3', 'inc_2', ['b', 'c']),
    ];
    const each = restorableFromEach(catalog);
    expect(Object.fromEntries(each)).toEqual({ full_1: ['a', 'b', 'c'], inc_1: ['c', 'b'], inc_2: ['b', 'c'], hot_1: ['b'], inc_3: ['b', 'c'] });
    for (const e of catalog) expect(restorableFrom(e, catalog)).toEqual(each.get(e.manifest.id));
  });

  it('a chain with a link missing from the catalog, or that loops, is restorable nowhere', () => {
    const each = restorableFromEach([entry('inc_9', 'gone', ['a']), entry('inc_10', 'inc_9', ['a']), entry('x', 'y', ['a']), entry('y', 'x', ['a'])]);
    expect(Object.fromEntries(each)).toEqual({ inc_9: [], inc_10: [], x: [], y: [] });
  });

  it('judges a chain of 20,000 backups link by link', () => {
    const catalog = Array.from({ length: 20_000 }, (_, i) => entry(`b${i}`, i ? `b${i - 1}` : null, ['a', 'b']));
    expect(restorableFromEach(catalog).get('b19999')).toEqual(['a', 'b']);
  });
});
