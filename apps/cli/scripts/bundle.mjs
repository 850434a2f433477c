// Bundles the three bins into dist/ with esbuild: one file per bin plus shared chunks, so that
// `stowage --version` reads a few files instead of ~500 (zod alone is 230). Native modules and the
// big SDKs loaded only when a destination or encryption needs them stay external; they are listed
// in this package's dependencies (checked below). The chunks sit directly in dist/, beside the
// library build, so `../stowage.config.schema.json` resolves as from src/. `node scripts/bundle.mjs DIR`
// writes them to DIR instead (apps/cli/src/startup.test.ts); DIR must sit in apps/cli to find the external modules.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const cliDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const cli = readJson(join(cliDir, 'package.json'));
const core = readJson(join(cliDir, '../../packages/core/package.json'));

/** Left out of the bundle; each must be a dependency of @stowage/cli. */
const EXTERNAL = ['better-sqlite3', 'zstd-napi', '@aws-sdk/client-s3', '@aws-sdk/crc64-nvme', 'ali-oss', 'openpgp', 'nodemailer'];
const workspace = readdirSync(join(cliDir, '../../packages')).map((dir) => readJson(join(cliDir, '../../packages', dir, 'package.json')));
for (const name of EXTERNAL) {
  const wanted = workspace.map((pkg) => pkg.dependencies?.[name]).find(Boolean);
  if (cli.dependencies?.[name] !== wanted) throw new Error(`apps/cli/package.json: add "${name}": "${wanted}" to dependencies (it stays outside the bundle)`);
}

const outdir = process.argv[2] ? resolve(process.argv[2]) : join(cliDir, 'dist');
const { metafile } = await build({
  entryPoints: ['stowage', 'db_backup', 'db_restore'].map((bin) => join(cliDir, 'src/bin', `${bin}.ts`)),
  outdir,
  metafile: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // Keeps class names: StowageError's instanceof across package copies compares them.
  keepNames: true,
  define: { __STOWAGE_CORE_VERSION__: JSON.stringify(core.version), __STOWAGE_CLI_VERSION__: JSON.stringify(cli.version) },
  // CommonJS dependencies (commander, prom-client) call require() for Node built-ins.
  banner: { js: "import { createRequire as __stowageRequire } from 'node:module'; const require = __stowageRequire(import.meta.url);" },
  logLevel: 'warning',
});

// Chunks of earlier bundles (esbuild names them NAME-HASH.js) would be packed too: only this one's stay.
const written = new Set(Object.keys(metafile.outputs).map((path) => basename(path)));
for (const name of readdirSync(outdir)) if (/-[A-Z0-9]{8}\.js$/.test(name) && !written.has(name)) rmSync(join(outdir, name));
