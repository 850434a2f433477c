import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
