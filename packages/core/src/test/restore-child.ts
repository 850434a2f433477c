/*
 * Runs one live restore in its own process, for tests that kill it at a step (STOWAGE_CRASH_AT).
 * argv[2]: JSON { dir, config, backup }: the workspace folder, its config file contents, the backup id.
 */
import { join } from 'node:path';
import { resolveConfig } from '../config.js';
import { openEngine } from '../engine.js';
import { restore } from '../restore.js';

const { dir, config, backup } = JSON.parse(process.argv[2]!) as { dir: string; config: unknown; backup: string };
const engine = await openEngine(resolveConfig(config, join(dir, 'stowage.config.json')), { retry: false });
try {
  await restore(engine, { backup });
} finally {
  await engine.close();
}
