import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { tableRowCounts } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { Codec, type Encoder, type EncodingName } from './encoding.js';
import { readFacts } from './facts.js';
import { hashPages, PAGE_HASH_BYTES } from './page-hashes.js';
import { censusRows, readPages, readPassThread, readSnapshot, takeFull, type FullEncoding } from './read-pass.js';
import { HOLD_EVENTS, withHoldsDatabase, writeNow } from './test/hold-events.js';
import { createShapesDatabase } from './test/harness.js';
import { createXXHash128 } from 'hash-wasm';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-read-pass-'));
  await writeFile(join(dir, 'backup.key'), 'correct horse battery staple\n', { mode: 0o600 });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** A database of every shape of table (`createShapesDatabase`) over more than four reads of 2 MiB: the read buffers are reused. */
const shapes = (path: string, pageSize: number) => createShapesDatabase(path, pageSize, pageSize === 4096 ? 600 : 300);

const headerOf = (bytes: Buffer) => {
  const pageSize = bytes.readUInt16BE(16) === 1 ? 65536 : bytes.readUInt16BE(16);
  return { pageSize, pageCount: bytes.length / pageSize };
};

const codecFor = (encryption: boolean, aead = false) =>
  new Codec(
    resolveConfig(
      {
        source: { database: 'db.sqlite3' },
        destinations: [{ name: 'local', url: 'backups' }],
        compression: { algorithm: 'zstd', level: 3 },
        ...(encryption ? { encryption: { mode: 'passphrase' as const, passphraseFile: 'backup.key', aead } } : {}),
      },
      join(dir, 'stowage.config.json'),
    ),
  );

/** The bytes `path` (encoded with `encoding` by `codec`) decodes to. */
async function decoded(codec: Codec, path: string, encoding: EncodingName[]): Promise<Buffer> {
  const stages = await codec.decoders({ role: 'database', key: 'full/test.sqlite3', encoding, size: 0, sha256: '', decodedSize: 0, decodedSha256: '' }, 'test');
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  await pipeline([createReadStream(path), ...stages, out]);
  return Buffer.concat(chunks);
}

/** The encodings of a database artifact: compressed, encrypted (SEIPDv1 natively, or AEAD through openpgp.js), or both. */
const ENCODINGS = ['zstd + pgp', 'pgp', 'pgp (aead)', 'zstd'] as const;
const encoderOf = (label: (typeof ENCODINGS)[number]) => {
  const encoding = label.split(/ \+ | /).filter((name) => name === 'zstd' || name === 'pgp') as EncodingName[];
  return { encoding, codec: codecFor(encoding.includes('pgp'), label.includes('aead')) };
};

describe('an encoder fed chunk by chunk', () => {
  it.each(ENCODINGS)('may be given the same buffer again once a write resolved (%s)', async (label) => {
    const { codec, encoding } = encoderOf(label);
    const output = join(dir, `reused-${label.replace(/\W+/g, '-')}.out`);
    const encoder = await codec.openEncoder(output, encoding, 3 * (1 << 20));
    const buffer = Buffer.alloc(1 << 20);
    const written: Buffer[] = [];
    for (let n = 0; n < 3; n++) {
      buffer.fill(n + 1);
      written.push(Buffer.from(buffer));
      await encoder.write(buffer);
    }
    buffer.fill(0xff); // after the last write: nothing of it may be read any more
    await encoder.end();
    expect((await decoded(codec, output, encoding)).equals(Buffer.concat(written))).toBe(true);
  });
});

describe('a staged file encoded whole (encodeFile)', () => {
  // Around the size of its one read buffer (1 MiB), which it reads into again for every chunk.
  const SIZES = [0, 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 7];
  it.each(ENCODINGS)('decodes to the file, every byte, and reports the encoded size and SHA-256 (%s)', async (label) => {
    const { codec, encoding } = encoderOf(label);
    for (const size of SIZES) {
      const input = join(dir, `whole-${size}.in`);
      const bytes = Buffer.alloc(size);
      for (let at = 0; at < size; at += 32) createHash('sha256').update(`${label}:${at}`).digest().copy(bytes, at);
      await writeFile(input, bytes);
      const output = join(dir, `whole-${size}-${label.replace(/\W+/g, '-')}.out`);
      const reported = await codec.encodeFile(input, output, encoding);
      const stored = await readFile(output);
      expect(reported, `${size} bytes`).toEqual({ size: stored.length, sha256: createHash('sha256').update(stored).digest('hex') });
      expect((await decoded(codec, output, encoding)).equals(bytes), `${size} bytes`).toBe(true);
    }
  });
});

describe("a backup's read of a database file", () => {
  it.each([4096, 65536])('sees every page once, in order, through reused buffers, and hashes each and the whole file (page size %i)', async (pageSize) => {
    const path = join(dir, `pages-${pageSize}.sqlite3`);
    const tables = shapes(path, pageSize);
    const bytes = await readFile(path);
    expect(bytes.length).toBeGreaterThan(4 * (2 << 20)); // more than the read buffers hold
    const header = headerOf(bytes);
    const sha = readPassThread();
    const file = await open(path, 'r');
    try {
      const seen: Buffer[] = [];
      const firstPages: number[] = [];
      const read = await readPages(file, path, header, sha, (chunk, firstPage) => {
        seen.push(Buffer.from(chunk));
        firstPages.push(firstPage);
      });
      expect(Buffer.concat(seen).equals(bytes)).toBe(true);
      expect(firstPages).toEqual(seen.map((_, n) => (n * (2 << 20)) / pageSize));
      expect(await sha.digest()).toBe(createHash('sha256').update(bytes).digest('hex'));
      const hashes = Buffer.alloc(header.pageCount * PAGE_HASH_BYTES);
      hashPages(await createXXHash128(), bytes, pageSize, hashes, 0);
      expect(read.size).toBe(bytes.length);
      expect(read.pageHashes.equals(hashes)).toBe(true);
      // Every table counted from the pages, as count(*) does.
      const db = new Database(path, { readonly: true });
      try {
        const counted: string[] = [];
        const rows = censusRows(read.census, file, path);
        const census = readFacts(db, (root) => {
          const n = rows(root);
          if (n !== undefined) counted.push(String(root));
          return n;
        }).tables;
        const sqlite = readFacts(db).tables;
        expect(census).toEqual(sqlite);
        expect(sqlite).toEqual(tables);
        expect(counted).toHaveLength(Object.keys(sqlite).length);
      } finally {
        db.close();
      }
    } finally {
      await file.close();
      await sha.close();
    }
  });

  it('refuses a file that is not exactly the pages its header announces, before reading it', async () => {
    const path = join(dir, 'short.sqlite3');
    shapes(path, 4096);
    const header = headerOf(await readFile(path));
    const sha = readPassThread();
    const file = await open(path, 'r');
    try {
      const visits: number[] = [];
      await expect(
        readPages(file, 'the source', { ...header, pageCount: header.pageCount + 1 }, sha, (_, first) => void visits.push(first)),
      ).rejects.toMatchObject({
        code: 'stowage.source.unreadable',
        message: expect.stringMatching(/^snapshot of the source is \d+ bytes but its header says \d+/),
      });
      expect(visits).toEqual([]);
    } finally {
      await file.close();
      await sha.close();
    }
  });
});

describe("a full's read of its snapshot", () => {
  it.each(ENCODINGS)('encodes it on the way (%s): the output decodes to the snapshot; digest and row counts as a separate read finds them', async (label) => {
    const { codec, encoding } = encoderOf(label);
    const path = join(dir, `snapshot-${label.replace(/\W+/g, '-')}.sqlite3`);
    shapes(path, 4096);
    const bytes = await readFile(path);
    const output = `${path}.out`;
    const read = await readSnapshot(path, 'db.sqlite3', headerOf(bytes), await codec.openEncoder(output, encoding, bytes.length));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    expect(read.digest).toMatchObject({ size: bytes.length, sha256 });
    const out = await readFile(output);
    expect(read.encoded).toEqual({ size: out.length, sha256: createHash('sha256').update(out).digest('hex') });
    // The encoder may be handed the read buffers themselves (zstd copies them) or copies: either way the bytes are the file's.
    expect((await decoded(codec, output, encoding)).equals(bytes)).toBe(true);
    const db = new Database(path, { readonly: true });
    expect(read.facts).toEqual(readFacts(db));
    db.close();
  });

  it('counts with count(*) a table whose b-tree the pages show damaged (SQLite counts it from an index)', async () => {
    const path = join(dir, 'damaged.sqlite3');
    const db = new Database(path);
    db.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, v TEXT);
      CREATE INDEX t_n ON t(n);
      CREATE TABLE u(a);
      INSERT INTO u VALUES (1), (2);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) INSERT INTO t(n, v) SELECT i, hex(randomblob(50)) FROM n;`);
    const root = (db.prepare(`SELECT rootpage FROM sqlite_schema WHERE name = 't'`).get() as { rootpage: number }).rootpage;
    db.close();
    const bytes = await readFile(path);
    const { pageSize } = headerOf(bytes);
    const rootPage = bytes.subarray((root - 1) * pageSize, root * pageSize);
    expect(rootPage[0]).toBe(0x05); // interior: its children are read
    const child = rootPage.readUInt32BE(8);
    bytes[(child - 1) * pageSize] = 0x0a; // a leaf of the other kind of tree
    await writeFile(path, bytes);

    const read = await readSnapshot(path, 'db.sqlite3', headerOf(bytes));
    expect(read.facts.tables).toEqual({ t: 5000, u: 2 });
    const file = await open(path, 'r');
    try {
      const sha = readPassThread();
      const pages = await readPages(file, path, headerOf(bytes), sha).finally(() => sha.close());
      expect(censusRows(pages.census, file, path)(root)).toBeUndefined(); // so count(*) gave t's rows
    } finally {
      await file.close();
    }
  });

  it('fails with the encoder’s own error when the encoded file cannot be written', async () => {
    const path = join(dir, 'unwritable.sqlite3');
    shapes(path, 4096);
    const bytes = await readFile(path);
    const codec = codecFor(true);
    const encoder = await codec.openEncoder(join(dir, 'no-such-folder', 'out'), ['zstd', 'pgp'], bytes.length);
    await expect(readSnapshot(path, 'db.sqlite3', headerOf(bytes), encoder)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('gives the encoder up when the read fails', async () => {
    const path = join(dir, 'given-up.sqlite3');
    shapes(path, 4096);
    const bytes = await readFile(path);
    const output = join(dir, 'given-up.out');
    const encoder = await codecFor(false).openEncoder(output, ['zstd'], bytes.length);
    await expect(readSnapshot(path, 'db.sqlite3', { ...headerOf(bytes), pageCount: headerOf(bytes).pageCount - 1 }, encoder)).rejects.toMatchObject({
      code: 'stowage.source.unreadable',
    });
    await expect(encoder.end()).rejects.toThrow();
    expect((await stat(output).catch(() => undefined))?.size ?? 0).toBe(0);
  });
});

/*
 * A full reads the live database itself in holds of the read lock (rollback-journal mode), and
 * copies it only after a commit between two holds, or in WAL mode: whatever happens between two
 * holds, what it stages is the database as it is after. Holds of 0 ms make every 1 MiB read a hold
 * of its own (every 4 MiB of a copy).
 */
describe("a full's snapshot (takeFull)", () => {
  const READ_CHUNK = 1 << 20;
  const COPY_CHUNK = 4 << 20;
  const chunks = async (path: string, bytes: number) => Math.ceil((await stat(path)).size / bytes);
  /** Encodes with zstd, counting the encoders opened. */
  const zstd = () => {
    const codec = codecFor(false);
    const opened: string[] = [];
    const encoding: FullEncoding = {
      suffix: '.zst',
      open: (path, size) => {
        opened.push(basename(path));
        return codec.openEncoder(path, ['zstd'], size);
      },
    };
    return { opened, encoding, codec };
  };
  const holds = (betweenHolds: () => void) => ({ busyTimeoutMs: 5000, holdsMs: [0, 0], betweenHolds });

  it.each(HOLD_EVENTS)('$event: it stages the database as it is after', async ({ at, commits }) => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const reads = await chunks(path, READ_CHUNK);
      const { opened, encoding, codec } = zstd();
      let breaths = 0;
      const full = await takeFull(
        path,
        join(dir, 'during'),
        holds(() => {
          if (++breaths === 2) at(path);
        }),
        encoding,
      );
      // No commit: one breath between each two reads of the live file. A commit at the second: the pass ends there, and the file is copied in holds.
      expect(breaths).toBe(commits ? 2 + (await chunks(path, COPY_CHUNK)) - 1 : reads - 1);
      expect(opened).toEqual(commits ? ['during.sqlite3.zst', 'during.copy.zst'] : ['during.sqlite3.zst']);
      expect(full.staged).toBe(join(dir, opened.at(-1)!));
      expect(full.copy).toBe(commits ? join(dir, 'during.sqlite3') : undefined);
      expect((await readdir(dir)).sort()).toEqual(['db.sqlite3', ...(commits ? ['during.copy.zst', 'during.sqlite3'] : ['during.sqlite3.zst'])]);
      const bytes = await readFile(path);
      expect(full.snapshot).toMatchObject({ ...headerOf(bytes), journalMode: 'delete' });
      expect(full.digest.size).toBe(bytes.length);
      expect(full.digest.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect(full.facts.tables).toEqual(tableRowCounts(path));
      const staged = await readFile(full.staged);
      expect(full.encoded).toEqual({ size: staged.length, sha256: createHash('sha256').update(staged).digest('hex') });
      // Compared as one value each: a deep comparison of 20 MB, byte by byte, takes the test runner's whole heap.
      expect((await decoded(codec, full.staged, ['zstd'])).equals(bytes)).toBe(true);
    });
  });

  it('copies a WAL-mode database (the file alone is not consistent), opening no encoder for the live file', async () => {
    await withHoldsDatabase(async ({ dir, path }) => {
      writeNow(path, 'PRAGMA journal_mode = WAL; UPDATE head SET n = 7;'); // the commit stays in the -wal
      const { opened, encoding, codec } = zstd();
      const full = await takeFull(path, join(dir, 'wal'), { busyTimeoutMs: 5000 }, encoding);
      expect(opened).toEqual(['wal.copy.zst']);
      expect(full.copy).toBe(join(dir, 'wal.sqlite3'));
      expect(full.snapshot.journalMode).toBe('wal');
      const copy = new Database(full.copy!, { readonly: true });
      expect(copy.prepare('SELECT n FROM head').get()).toEqual({ n: 7 });
      copy.close();
      expect((await decoded(codec, full.staged, ['zstd'])).equals(await readFile(full.copy!))).toBe(true);
    });
  });

  it('unencoded, stages the copy itself', async () => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const full = await takeFull(path, join(dir, 'plain'), { busyTimeoutMs: 5000 });
      expect(full).toMatchObject({ staged: join(dir, 'plain.sqlite3'), copy: join(dir, 'plain.sqlite3') });
      expect(full.encoded).toBeUndefined();
      expect((await readFile(full.staged)).equals(await readFile(path))).toBe(true);
    });
  });

  it('gives up with source.locked when a writer holds the database past busyTimeoutMs, its encoder given up and nothing staged', async () => {
    await withHoldsDatabase(async ({ dir, path }) => {
      const writer = new Database(path);
      const encoders: Encoder[] = [];
      try {
        const { encoding } = zstd();
        // The writer takes its lock once the encoder is open, before the pass takes the read lock.
        const open: FullEncoding['open'] = async (file, size) => {
          encoders.push(await encoding.open(file, size));
          writer.prepare('BEGIN EXCLUSIVE').run();
          return encoders.at(-1)!;
        };
        await expect(takeFull(path, join(dir, 'locked'), { busyTimeoutMs: 200 }, { ...encoding, open })).rejects.toMatchObject({
          code: 'stowage.source.locked',
        });
      } finally {
        if (writer.inTransaction) writer.prepare('ROLLBACK').run();
        writer.close();
      }
      expect(encoders).toHaveLength(1);
      await expect(encoders[0]!.end()).rejects.toThrow(); // destroyed: its threads are gone
      expect(await readdir(dir)).toEqual(['db.sqlite3']);
    });
  });

  it('refuses a file that is not a SQLite database, staging nothing', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'stowage-take-full-'));
    try {
      await writeFile(join(folder, 'db.sqlite3'), Buffer.alloc(8192, 7));
      await expect(takeFull(join(folder, 'db.sqlite3'), join(folder, 'bad'), { busyTimeoutMs: 200 }, zstd().encoding)).rejects.toMatchObject({
        code: 'stowage.source.not_sqlite',
      });
      expect(await readdir(folder)).toEqual(['db.sqlite3']);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });
});
