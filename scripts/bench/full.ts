import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk, sh } from './measure.js';
import type { BenchContext, Section } from './section.js';

const CP_SYNC = 'cp "$1" "$2" && sync';

/** Full backup vs `sqlite3 .backup` and `cp`+`sync`; restore vs `cp`+`sync`. One local destination. */
export async function fullBackupAndRestore(ctx: BenchContext): Promise<Section> {
  const dir = join(ctx.work, 'full');
  const configDir = join(dir, 'config');
  const config = join(configDir, 'stowage.config.json');
  const stateDir = join(configDir, '.stowage');
  const backups = join(dir, 'backups');
  const out = join(dir, 'out');
  const copy = join(out, 'copy.sqlite3');
  const restored = join(out, 'restored.sqlite3');

  await mkdir(configDir, { recursive: true });
  // Compression off: the references store the pages as they are (zstd and gpg get their own section).
  const settings = { source: { database: ctx.fixture.path }, destinations: [{ name: 'local', url: backups }], compression: { algorithm: 'none' } };
  await writeFile(config, `${JSON.stringify(settings, null, 2)}\n`);

  const fresh = async (...folders: string[]) => {
    for (const folder of folders) {
      await rm(folder, { recursive: true, force: true });
      await mkdir(folder, { recursive: true });
    }
  };
  const stowage = (...args: string[]) => [...ctx.stowage, ...args, '--config', config];
  let backupFile = '';

  return {
    title: 'Full backup and restore',
    about:
      'A full backup of the idle fixture to one local destination, compression off (snapshot, page hashes, store, fsync, verify, manifest), ' +
      'against `sqlite3 .backup` (the target baseline) and a plain `cp` + `sync`. A restore of that backup to a new file ' +
      '(download, SHA-256 check, fsync, `PRAGMA integrity_check` and `foreign_key_check`, rename), against `cp` + `sync` of the backup file.',
    cases: [
      {
        operation: 'full backup',
        maxRssMiB: 200,
        stowage: { label: 'stowage backup --type full', argv: () => stowage('backup', '--type', 'full'), before: () => fresh(backups, stateDir) },
        references: [
          { label: 'sqlite3 .backup', argv: () => ['sqlite3', ctx.fixture.path, `.backup ${JSON.stringify(copy)}`], before: () => fresh(out), maxRatio: 1.5 },
          { label: 'cp + sync', argv: () => sh(CP_SYNC, ctx.fixture.path, copy), before: () => fresh(out) },
        ],
      },
      {
        operation: 'restore',
        maxRssMiB: 200,
        setup: async () => {
          await fresh(backups, stateDir);
          await runOk(stowage('backup', '--type', 'full'), ctx.root);
          const names = await readdir(join(backups, 'full'));
          const name = names.find((f) => f.endsWith('.sqlite3'));
          if (!name) throw new Error(`no uncompressed backup (*.sqlite3) in ${join(backups, 'full')}, only: ${names.join(', ')}`);
          backupFile = join(backups, 'full', name);
        },
        stowage: { label: 'stowage restore latest', argv: () => stowage('restore', 'latest', '--target', restored), before: () => fresh(out) },
        references: [{ label: 'cp + sync', argv: () => sh(CP_SYNC, backupFile, copy), before: () => fresh(out), maxRatio: 2 }],
      },
    ],
  };
}
