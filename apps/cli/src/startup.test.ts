/*
 * What the installed bins load to start: `--version`, `--help` and usage errors must not load the
 * engine's heavy dependencies (nodemailer, better-sqlite3, the cloud SDKs, openpgp, zstd-napi), which
 * the commands import when they run (program.ts). Runs the bundle the packed CLI installs
 * (scripts/bundle.mjs, into a scratch folder) under a loader hook that records every module loaded.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const cliDir = resolve(fileURLToPath(new URL('..', import.meta.url)));
/** Packages (`@aws-sdk/`: a scope) that start-up must not load. */
const HEAVY = ['nodemailer/', 'better-sqlite3/', '@aws-sdk/', 'ali-oss/', 'openpgp/', 'zstd-napi/'];
/** The heavy package a loaded module's path or URL belongs to, if any. */
const heavyPackageOf = (loaded: string) => HEAVY.find((name) => loaded.includes(`/node_modules/${name}`));
const { version } = JSON.parse(await readFile(join(cliDir, 'package.json'), 'utf8')) as { version: string };

let dir: string;
let bins: string;
beforeAll(async () => {
  // In apps/cli (test-artifacts/ is ignored by git), so that the bundle finds the external modules as dist/ does.
  await mkdir(join(cliDir, 'test-artifacts'), { recursive: true });
  dir = await mkdtemp(join(cliDir, 'test-artifacts', 'startup-'));
  bins = join(dir, 'bin');
  await run(process.execPath, [join(cliDir, 'scripts/bundle.mjs'), bins]);
  // ES modules through a load hook (it runs on its own thread: it appends to the file synchronously,
  // before the module loads); CommonJS modules that those require, from the require cache at exit.
  await writeFile(
    join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.STARTUP_TEST_LOADS, url + '\\n');
  return next(url, context);
}
`,
  );
  await writeFile(
    join(dir, 'record.mjs'),
    `import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
register('./hooks.mjs', import.meta.url);
const cache = createRequire(import.meta.url).cache;
process.on('exit', () => appendFileSync(process.env.STARTUP_TEST_LOADS, Object.keys(cache).join('\\n') + '\\n'));
`,
  );
}, 120_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Runs a bundled bin with `args` in a scratch folder; its exit code, output and every module it loaded. */
async function start(bin: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string; loaded: string[] }> {
  const loads = join(await mkdtemp(join(dir, 'run-')), 'loads.txt');
  const env = { ...process.env, STARTUP_TEST_LOADS: loads, STOWAGE_CONFIG: join(dir, 'missing.config.json') };
  const result = await run(process.execPath, ['--import', join(dir, 'record.mjs'), join(bins, `${bin}.js`), ...args], { env, cwd: dir }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
  return { ...result, loaded: (await readFile(loads, 'utf8')).split('\n').filter(Boolean) };
}

describe('start-up of the bundled bins', () => {
  it.each([
    { bin: 'stowage', args: ['--version'], code: 0, stdout: `${version}\n` },
    { bin: 'stowage', args: ['--help'], code: 0, stdout: /Usage: stowage \[options\] \[command\][\s\S]*restore/ },
    { bin: 'stowage', args: ['restore', '--help'], code: 0, stdout: /Usage: stowage restore[\s\S]*--test-mode/ },
    { bin: 'stowage', args: ['backup', '--type', 'weekly'], code: 2, stderr: /argument 'weekly' is invalid/ },
    { bin: 'stowage', args: ['frobnicate'], code: 2, stderr: /unknown command 'frobnicate'/ },
    { bin: 'db_backup', args: ['--help'], code: 0, stdout: /Usage: db_backup/ },
    { bin: 'db_restore', args: ['--bogus'], code: 2, stderr: /unknown option '--bogus'/ },
  ])('$bin $args loads none of the heavy modules', async ({ bin, args, code, ...expected }) => {
    const result = await start(bin, ...args);
    expect(result.code, result.stderr).toBe(code);
    if ('stdout' in expected) expect(result.stdout).toMatch(expected.stdout);
    if ('stderr' in expected) expect(result.stderr).toMatch(expected.stderr);
    expect(result.loaded).toContain(pathToFileURL(join(bins, `${bin}.js`)).href);
    expect(result.loaded.filter(heavyPackageOf)).toEqual([]);
  });

  it('sees them where a command runs: the recording is not blind', async () => {
    // `status` loads the engine (and so better-sqlite3) before it finds that the config is missing.
    const result = await start('stowage', 'status');
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(/missing\.config\.json/);
    expect(new Set(result.loaded.map(heavyPackageOf))).toContain('better-sqlite3/');
  });
});

describe("V8's young generation", () => {
  /** New space's size (bytes) after allocating as a pass does, from a hook that runs at exit; and stderr. */
  async function youngAtExit(args: string[]): Promise<{ size: number; stderr: string }> {
    const out = join(await mkdtemp(join(dir, 'young-')), 'size.txt');
    const { stderr } = await run(process.execPath, ['--import', join(dir, 'young.mjs'), ...args], { env: { ...process.env, YOUNG_OUT: out }, cwd: dir });
    return { size: Number(await readFile(out, 'utf8')), stderr };
  }

  it('stays at its initial 2 MiB in each bin, where the same allocations grow it in a plain node; no flag error is printed', async () => {
    await writeFile(
      join(dir, 'young.mjs'),
      `import { getHeapSpaceStatistics } from 'node:v8';
import { writeFileSync } from 'node:fs';
process.on('exit', () => {
  const kept = [];
  for (let i = 0; i < 3e6; i++) {
    const row = { i, text: 'row ' + i, pages: [i, i + 1] };
    if (i % 10 === 0) kept.push(row);
    if (kept.length > 20000) kept.splice(0, 10000);
  }
  writeFileSync(process.env.YOUNG_OUT, String(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size));
});
`,
    );
    const plain = await youngAtExit(['-e', '']);
    expect(plain.size).toBeGreaterThan(8 << 20);
    for (const bin of ['stowage', 'db_backup', 'db_restore']) {
      const { size, stderr } = await youngAtExit([join(bins, `${bin}.js`), '--help']);
      expect(size, bin).toBeLessThanOrEqual(4 << 20);
      expect(stderr, bin).toBe('');
    }
  });
});
