import { spawn } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface Fixture {
  path: string;
  bytes: number;
  /** How it was made, for the report. */
  generator: string;
}

const SEED = 42;
/** The shared generator: `BENCH_GEN_PY`, else beside the repo (a git worktree elsewhere sets the variable). */
const genPyPath = (root: string) => resolve(process.env.BENCH_GEN_PY ?? resolve(root, '../shared/fixtures/greaterwms/gen.py'));
/** The TS generator's output per unit of `scale` (about 2.3 MB). */
const TS_MIB_PER_SCALE = 2.3;

/**
 * The GreaterWMS fixture of about `sizeMb` MiB, built once into `<root>/.bench/` and reused.
 * Prefers the shared Python generator (`<root>/../shared/fixtures/greaterwms/gen.py`); without it,
 * falls back to `createGreaterWmsDatabase` from `@stowage/fixtures` (a different file, cached apart).
 */
export async function ensureFixture(root: string, sizeMb: number): Promise<Fixture> {
  const cache = join(root, '.bench');
  await mkdir(cache, { recursive: true });
  const genPy = genPyPath(root);
  const python = existsSync(genPy);
  const path = join(cache, python ? `greaterwms-${sizeMb}mb.sqlite3` : `greaterwms-ts-${sizeMb}mb.sqlite3`);
  const generator = python
    ? `shared/fixtures/greaterwms/gen.py build --size-mb ${sizeMb} --seed ${SEED}`
    : `@stowage/fixtures createGreaterWmsDatabase({ seed: ${SEED}, scale: ${(sizeMb / TS_MIB_PER_SCALE).toFixed(1)} })`;

  if (!existsSync(path)) {
    const partial = `${path}.partial`;
    await rm(partial, { force: true });
    console.log(`building fixture ${path} (${generator}); this can take minutes at 1 GiB…`);
    if (python) {
      await spawnInherit('python3', [genPy, 'build', '--out', partial, '--size-mb', String(sizeMb), '--seed', String(SEED)]);
    } else {
      const { createGreaterWmsDatabase } = await import('@stowage/fixtures');
      createGreaterWmsDatabase(partial, { seed: SEED, scale: sizeMb / TS_MIB_PER_SCALE });
    }
    await rename(partial, path);
  }
  return { path, bytes: (await stat(path)).size, generator };
}

/**
 * One simulated hour of warehouse work on `db` (about 1 % of its pages changed, scattered):
 * `gen.py mutate --seed N`, deterministic per seed.
 */
export async function mutate(root: string, db: string, seed: number): Promise<void> {
  const genPy = genPyPath(root);
  if (!existsSync(genPy)) throw new Error(`${genPy} is missing: the incremental benchmarks mutate the fixture with it`);
  await spawnInherit('python3', [genPy, 'mutate', '--db', db, '--seed', String(seed), '--no-report'], 'ignore');
}

/** Reads the whole file once so every timed run starts from the same warm page cache. */
export async function warmUp(path: string): Promise<void> {
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), new Writable({ write: (_chunk, _encoding, done) => done() }));
}

function spawnInherit(file: string, args: string[], stdout: 'inherit' | 'ignore' = 'inherit'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', stdout, 'inherit'] });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')} exited ${code}`))));
  });
}
