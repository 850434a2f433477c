import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { resolveConfig, type ConfigFile, type ResolvedConfig } from '../config.js';
import { openEngine, type Engine, type EngineOptions } from '../engine.js';

export interface Workspace {
  dir: string;
  database: string;
  backups: string;
  config: ResolvedConfig;
  engine: Engine;
  warnings: string[];
  dispose(): Promise<void>;
}

/** A temporary folder with a small GreaterWMS-like database and a config backing it up to `backups/`. */
export async function makeWorkspace(
  options: { config?: Partial<ConfigFile>; engine?: EngineOptions; journalMode?: 'delete' | 'wal'; seed?: number } = {},
): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-core-'));
  const database = join(dir, 'db.sqlite3');
  createGreaterWmsDatabase(database, { seed: options.seed ?? 42, journalMode: options.journalMode ?? 'delete' });
  const config = resolveConfig(
    // Artifacts stored as is unless a test asks for compression or encryption, so tests can read them directly.
    {
      source: { database: 'db.sqlite3', busyTimeoutMs: 5000 },
      destinations: [{ name: 'local', url: 'backups' }],
      compression: { algorithm: 'none' },
      ...options.config,
    },
    join(dir, 'stowage.config.json'),
  );
  const warnings: string[] = [];
  const engine = await openEngine(config, { retry: false, onWarning: (m) => warnings.push(m), ...options.engine });
  return {
    dir,
    database,
    backups: join(dir, 'backups'),
    config,
    engine,
    warnings,
    dispose: async () => {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Lower-case hex SHA-256 of a file's bytes. */
export async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

/**
 * Creates a database of `pageSize`-byte pages with tables of every shape a b-tree walk meets:
 * rowid tables empty to multi-level, an index, overflow pages (`blobs` rows of three pages each,
 * half deleted: free pages too), a WITHOUT ROWID table and a name that needs quoting. Returns the
 * rows each table holds.
 */
export function createShapesDatabase(path: string, pageSize: number, blobs = 300): Record<string, number> {
  const db = new Database(path);
  try {
    db.pragma(`page_size = ${pageSize}`);
    db.exec(`
      CREATE TABLE empty(a);
      CREATE TABLE small(a, b);
      CREATE TABLE big(id INTEGER PRIMARY KEY, payload TEXT);
      CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB);
      CREATE TABLE keyed(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
      CREATE TABLE "odd ""name"""(x);
      CREATE INDEX big_payload ON big(payload);
      INSERT INTO small VALUES (1, 2), (3, 4);
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
        INSERT INTO big(payload) SELECT printf('%08d-%s', i, hex(randomblob(20))) FROM n;
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${blobs})
        INSERT INTO blobs(data) SELECT randomblob(3 * ${pageSize}) FROM n;
      WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
        INSERT INTO keyed SELECT printf('key-%06d-%s', i, hex(randomblob(30 + i % 200))), i FROM n;
      INSERT INTO "odd ""name""" VALUES (1);
      DELETE FROM big WHERE id % 3 = 0;
      DELETE FROM blobs WHERE id % 2 = 0;
    `);
  } finally {
    db.close();
  }
  return { empty: 0, small: 2, big: 13334, blobs: Math.ceil(blobs / 2), keyed: 5000, 'odd "name"': 1 };
}
