/*
 * Row counts from the bytes of a database file, for a pass that reads every page anyway: the same
 * numbers as `SELECT count(*)` per table, without SQLite reading the tables a second time.
 *
 * While the pages go by, each page's b-tree type byte and cell count are noted (3 bytes a page).
 * A table's rows are then found by walking its b-tree from its root page (sqlite_schema.rootpage),
 * reading only the interior pages again for their child pointers: the cells of the leaves of a
 * table b-tree (rowid tables), or of every page of an index b-tree (WITHOUT ROWID tables, whose
 * interior cells are rows too). File format: https://www.sqlite.org/fileformat2.html#b_tree_pages
 * Anything that does not look like a well-formed b-tree gives no count, and the caller asks SQLite.
 */

const INTERIOR_INDEX = 0x02;
const INTERIOR_TABLE = 0x05;
const LEAF_INDEX = 0x0a;
const LEAF_TABLE = 0x0d;

export class RowCensus {
  readonly #types: Uint8Array;
  readonly #cells: Uint16Array;
  readonly #seen: Uint8Array;

  constructor(
    readonly pageSize: number,
    readonly pageCount: number,
  ) {
    this.#types = new Uint8Array(pageCount);
    this.#cells = new Uint16Array(pageCount);
    this.#seen = new Uint8Array(pageCount);
  }

  /** Notes page `index` (0-based) of the file, whose bytes start at `offset` of `bytes`. */
  observe(index: number, bytes: Uint8Array, offset: number): void {
    const at = offset + (index === 0 ? 100 : 0);
    this.#types[index] = bytes[at]!;
    this.#cells[index] = (bytes[at + 3]! << 8) | bytes[at + 4]!;
  }

  /**
   * Rows of the b-tree whose root is page `root` (1-based, as in sqlite_schema), reading interior
   * pages (0-based index) through `readPage`; undefined when what it finds is not a well-formed
   * b-tree (damage, or a page not noted). Each page may belong to one tree only.
   */
  rows(root: number, readPage: (index: number) => Uint8Array): number | undefined {
    if (!this.#inRange(root)) return undefined;
    const rootType = this.#types[root - 1];
    const index = rootType === INTERIOR_INDEX || rootType === LEAF_INDEX;
    if (!index && rootType !== INTERIOR_TABLE && rootType !== LEAF_TABLE) return undefined;
    const [interior, leaf] = index ? [INTERIOR_INDEX, LEAF_INDEX] : [INTERIOR_TABLE, LEAF_TABLE];
    let rows = 0;
    for (const stack = [root]; stack.length > 0; ) {
      const page = stack.pop()! - 1;
      if (this.#seen[page]) return undefined;
      this.#seen[page] = 1;
      const type = this.#types[page];
      const cells = this.#cells[page]!;
      const header = page === 0 ? 100 : 0;
      if (type === leaf) {
        if (header + 8 + 2 * cells > this.pageSize) return undefined;
        rows += cells;
        continue;
      }
      if (type !== interior || header + 12 + 2 * cells > this.pageSize) return undefined;
      if (index) rows += cells;
      const bytes = readPage(page);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const right = view.getUint32(header + 8);
      if (!this.#inRange(right)) return undefined;
      stack.push(right);
      for (let i = 0; i < cells; i++) {
        const cell = view.getUint16(header + 12 + 2 * i);
        if (cell < header + 12 + 2 * cells || cell + 4 > this.pageSize) return undefined;
        const child = view.getUint32(cell);
        if (!this.#inRange(child) || stack.length >= this.pageCount) return undefined;
        stack.push(child);
      }
    }
    return rows;
  }

  #inRange(page: number): boolean {
    return page >= 1 && page <= this.pageCount;
  }
}
