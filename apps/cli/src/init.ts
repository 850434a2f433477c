import { existsSync } from 'node:fs';
import { access, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, type ConfigFile } from '@stowage/core';
import { ExitCode, UsageError } from './exit-codes.js';
import type { Output } from './output.js';

/** The JSON schema shipped beside the CLI, for editors (`$schema` in the config). */
export const CONFIG_SCHEMA_PATH = fileURLToPath(new URL('../stowage.config.schema.json', import.meta.url));

/**
 * Where `init` writes: --config, else $STOWAGE_CONFIG, else ./stowage.config.yaml (commented YAML)
 * — or ./stowage.config.json when that exists, so that init refuses to write a second config.
 */
export function initConfigPath(explicit: string | undefined): string {
  return resolve(explicit || process.env.STOWAGE_CONFIG || (existsSync('stowage.config.json') ? 'stowage.config.json' : 'stowage.config.yaml'));
}

/**
 * Writes a starting config that follows the seed document's layout (`backups/` beside the database):
 * commented YAML when the path ends in `.yaml`/`.yml`, else JSON. A `media/` folder beside the
 * database becomes the `media` file set. Refuses a database that does not exist, unless --force.
 */
export async function runInit(out: Output, path: string, options: { database: string; destination: string; force?: boolean }): Promise<ExitCode> {
  const exists = await access(path).then(
    () => true,
    () => false,
  );
  if (exists && !options.force) throw new UsageError(`${path} already exists; pass --force to overwrite it`);
  const configDir = dirname(path);
  const database = resolve(configDir, options.database);
  if (!options.force && !(await isFile(database))) {
    throw new UsageError(
      `no database at ${database} (--database is relative to the config's folder, ${configDir}); give the path of the live SQLite file, or pass --force to write the config anyway`,
    );
  }
  const media = join(dirname(database), 'media');
  const hasMedia = await stat(media).then(
    (s) => s.isDirectory(),
    () => false,
  );
  const config: ConfigFile = {
    $schema: relative(configDir, CONFIG_SCHEMA_PATH),
    source: { database: options.database, ...(hasMedia ? { files: { media: { path: relative(configDir, media) } } } : {}) },
    destinations: [{ name: 'local', url: options.destination }],
    retention: { full: '30d', incremental: '7d', hot: '3d' },
    stateDir: '.stowage',
  };
  const resolved = resolveConfig(config, path);
  const text = /\.ya?ml$/i.test(path) ? commentedYaml(config) : `${JSON.stringify(config, null, 2)}\n`;
  await writeFile(path, text, { mode: 0o600 });
  out.result({ config: resolve(path), database: resolved.source.database, ...(hasMedia ? { media } : {}) });
  out.say(`wrote ${path}`);
  out.say(`  database:    ${resolved.source.database}`);
  if (hasMedia) out.say(`  media:       ${media}`);
  out.say(`  destination: ${options.destination}`);
  out.say('next: stowage backup --type full');
  return ExitCode.Ok;
}

const isFile = (path: string) =>
  stat(path).then(
    (s) => s.isFile(),
    () => false,
  );

/** The starting config as YAML, each section explained (relative paths are from the config's folder). */
function commentedYaml(config: ConfigFile): string {
  const q = (value: string) => JSON.stringify(value);
  const media = config.source.files?.media;
  return [
    `# yaml-language-server: $schema=${config.$schema}`,
    "# Stowage config. Relative paths are relative to this file's folder. Secrets never go here:",
    '# adapters and keys take them from environment variables named in their options (…Env).',
    'source:',
    '  # The live SQLite database.',
    `  database: ${q(config.source.database)}`,
    ...(media && 'path' in media
      ? ['  # File sets backed up with the database (found beside it).', '  files:', '    media:', `      path: ${q(media.path)}`]
      : []),
    '# Where backups go; every backup goes to every destination (folders, s3://bucket/prefix, oss://bucket/prefix).',
    'destinations:',
    ...config.destinations.flatMap((d) => [`  - name: ${q(d.name)}`, `    url: ${q(d.url)}`]),
    '# How long each type is kept: a duration, or { maxAge, keepLast }.',
    'retention:',
    ...Object.entries(config.retention ?? {}).map(([type, rule]) => `  ${type}: ${q(String(rule))}`),
    '# Locks and run state.',
    `stateDir: ${q(config.stateDir ?? '.stowage')}`,
    '# schedules:           # for `stowage daemon` and `stowage schedule print`',
    '#   full: "0 2 * * *"',
    '#   incremental: "0 * * * *"',
    '#   timeZone: Asia/Shanghai',
    '',
  ].join('\n');
}
