import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFacts } from './facts.js';
import { RowCensus } from './row-census.js';
import { createShapesDatabase } from './test/harness.js';

let dir: string;
beforeAll(async () => void (dir = await mkdtemp(join(tmpdir(), 'stowage-census-'))));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The census of a database file's bytes, and a counter that reads interior pages from them. */
function censusOf(bytes: Buffer): (root: number) => number | undefined {
  const pageSize = bytes.readUInt16BE(16) === 1 ? 65536 : bytes.readUInt16BE(16);
  const census = new RowCensus(pageSize, bytes.length / pageSize);
  for (let index = 0; index < census.pageCount; index++) census.observe(index, bytes, index * pageSize);
  return (root) => census.rows(root, (index) => bytes.subarray(index * pageSize, (index + 1) * pageSize));
}

/** Each table's rows by `count(*)` and by the census (both through `readFacts`), from the same file. */
async function bothCounts(path: string): Promise<{ sqlite: Record<string, number>; census: Record<string, number>; counted: number[] }> {
  const countRows = censusOf(await readFile(path));
  const counted: number[] = [];
  const db = new Database(path, { readonly: true });
  try {
    const sqlite = readFacts(db).tables;
    const census = readFacts(db, (root) => {
      const rows = countRows(root);
      if (rows !== undefined) counted.push(root);
      return rows;
    }).tables;
    return { sqlite, census, counted };
  } finally {
    db.close();
  }
}

describe('row counts from the pages of a database file', () => {
  it.each([512, 4096, 65536])(
    'equal count(*) for rowid and WITHOUT ROWID tables, empty to multi-level, with overflow pages and free pages (page size %i)',
    async (pageSize) => {
      const path = join(dir, `shapes-${pageSize}.sqlite3`);
      const expected = createShapesDatabase(path, pageSize);
      const { sqlite, census, counted } = await bothCounts(path);
      expect(census).toEqual(sqlite);
      expect(sqlite).toEqual(expected);
      expect(counted).toHaveLength(Object.keys(sqlite).length); // every table from the pages, none by count(*)
    },
  );

  it('equal count(*) in an auto-vacuum database (pointer-map pages) and on the GreaterWMS fixture', async () => {
    const vacuumed = join(dir, 'auto-vacuum.sqlite3');
    const db = new Database(vacuumed);
    db.pragma('auto_vacuum = FULL');
    db.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) INSERT INTO t(v) SELECT randomblob(700) FROM n;
      DELETE FROM t WHERE id % 5 = 0;`);
    db.close();
    const greaterWms = join(dir, 'greaterwms.sqlite3');
    createGreaterWmsDatabase(greaterWms, { seed: 3 });
    for (const path of [vacuumed, greaterWms]) {
      const { sqlite, census, counted } = await bothCounts(path);
      expect(census).toEqual(sqlite);
      expect(counted).toHaveLength(Object.keys(sqlite).length);
    }
  });

  it('give no count for a tree that is not well-formed, and count(*) answers for it', async () => {
    const path = join(dir, 'damaged.sqlite3');
    const db = new Database(path);
    db.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO t(v) SELECT hex(randomblob(50)) FROM n;`);
    const root = (db.prepare(`SELECT rootpage FROM sqlite_schema WHERE name = 't'`).get() as { rootpage: number }).rootpage;
    const bytes = await readFile(path);
    const pageSize = bytes.readUInt16BE(16);
    const rootPage = bytes.subarray((root - 1) * pageSize, root * pageSize);
    expect(rootPage[0]).toBe(0x05); // interior: its children are read
    expect(censusOf(bytes)(root)).toBe(5000);
    const right = rootPage.readUInt32BE(8);
    rootPage.writeUInt32BE(bytes.length / pageSize + 7, 8); // a child past the end
    expect(censusOf(bytes)(root)).toBeUndefined();
    rootPage.writeUInt32BE(root, 8); // a cycle
    expect(censusOf(bytes)(root)).toBeUndefined();
    rootPage.writeUInt32BE(right, 8);
    bytes[(right - 1) * pageSize] = 0x0a; // a leaf of the other kind of tree
    expect(censusOf(bytes)(root)).toBeUndefined();
    expect(readFacts(db, censusOf(bytes)).tables).toEqual({ t: 5000 });
    db.close();
  });
});
