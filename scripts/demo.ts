/*
 * `pnpm demo`: the main job on an embedded default. Generates a small GreaterWMS-like database in a
 * fresh folder and runs the seed's routine through the real commands: full backup, warehouse
 * activity, hot backup, incremental, list, verify, validate, test-mode restore, restore verify.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dbBackupProgram, dbRestoreProgram, runProgram, stowageProgram } from '../apps/cli/src/index.js';
import { createGreaterWmsDatabase, simulateWarehouseActivity } from '@stowage/fixtures';

const dir = await mkdtemp(join(tmpdir(), 'stowage-demo-'));
process.chdir(dir);
const programs = { stowage: stowageProgram, db_backup: dbBackupProgram, db_restore: dbRestoreProgram };
const steps: Array<{ command: string; code: number; ms: number }> = [];

async function step(title: string, program: keyof typeof programs, ...args: string[]): Promise<void> {
  const command = `${program} ${args.join(' ')}`;
  console.log(`\n── ${title}\n$ ${command}`);
  const started = performance.now();
  const code = await runProgram(programs[program], args);
  steps.push({ command, code, ms: performance.now() - started });
  if (code !== 0) {
    console.error(`demo: '${command}' exited ${code}; the demo folder ${dir} is kept for inspection`);
    process.exit(1);
  }
}

console.log(`Stowage demo in ${dir}`);
const created = createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 42 });
const rows = Object.values(created.tables).reduce((a, b) => a + b, 0);
console.log(`generated db.sqlite3: ${(created.bytes / 1024 / 1024).toFixed(1)} MiB, ${Object.keys(created.tables).length} GreaterWMS tables, ${rows} rows`);

await step('write a config (database db.sqlite3, backups in ./backups)', 'stowage', 'init');
await step('nightly full backup', 'db_backup', '--type=full');
for (const seed of [1, 2]) {
  const activity = simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed, operations: 100 });
  console.log(`\n── warehouse activity: ${activity.inserted} rows inserted, ${activity.updated} updated, ${activity.deleted} deleted`);
  if (seed === 1) await step('hot backup before a risky operation', 'db_backup', '--type=hot', '--reason', 'before stock-take import');
  else await step('hourly incremental: only the pages changed since the full backup', 'db_backup', '--type=incremental');
}
await step('list backups', 'db_restore', '--list');
await step('verify every backup (re-read and re-hash)', 'stowage', 'verify', '--all');
await step('validate the data of the newest backup', 'stowage', 'validate', 'latest');
await step('test-mode restore of the newest backup (replays the full, then the delta)', 'db_restore', '--file=latest', '--test-mode');
await step('check the test-mode restore', 'db_restore', '--verify', '--test-mode');

const total = steps.reduce((sum, s) => sum + s.ms, 0);
console.log(`\nSummary: ${steps.length} commands, all succeeded in ${(total / 1000).toFixed(1)} s.`);
console.log(`  backups and logs: ${join(dir, 'backups')} (full/, hot/, logs/backup.log, logs/restore.log)`);
console.log(`  test restore:     ${join(dir, '.stowage', 'test-restore', 'db.sqlite3')} — the live db.sqlite3 was not touched`);
console.log(`  try it yourself:  pnpm -s stowage list --config ${join(dir, 'stowage.config.json')}`);
