import { access, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, type ConfigFile } from '@stowage/core';
import { ExitCode, UsageError } from './exit-codes.js';
import type { Output } from './output.js';

/** The JSON schema shipped beside the CLI, for editors (`$schema` in the config). */
export const CONFIG_SCHEMA_PATH = fileURLToPath(new URL('../stowage.config.schema.json', import.meta.url));

/** Writes a starting config that follows the seed document's layout (`backups/` beside the database). */
export async function runInit(out: Output, path: string, options: { database: string; destination: string; force?: boolean }): Promise<ExitCode> {
  const exists = await access(path).then(() => true, () => false);
  if (exists && !options.force) throw new UsageError(`${path} already exists; pass --force to overwrite it`);
  const config: ConfigFile = {
    $schema: relative(dirname(path), CONFIG_SCHEMA_PATH),
    source: { database: options.database },
    destinations: [{ name: 'local', url: options.destination }],
    retention: { full: '30d', incremental: '7d', hot: '3d' },
    stateDir: '.stowage',
  };
  const resolved = resolveConfig(config, path);
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  out.result({ ok: true, config: resolve(path), database: resolved.source.database });
  out.say(`wrote ${path}`);
  out.say(`  database:    ${resolved.source.database}`);
  out.say(`  destination: ${options.destination}`);
  out.say('next: stowage backup --type full');
  return ExitCode.Ok;
}
