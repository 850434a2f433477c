import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fresh } from './files.js';
import { runOk, sh } from './measure.js';
import type { BenchContext, Section } from './section.js';
import { stowageRig } from './stowage.js';

const CP_SYNC = 'cp "$1" "$2" && sync';

/** Full backup vs `sqlite3 .backup` and `cp`+`sync`; restore vs `cp`+`sync`. One local destination. */
export async function fullBackupAndRestore(ctx: BenchContext): Promise<Section> {
  const dir = join(ctx.work, 'full');
  const out = join(dir, 'out');
  const copy = join(out, 'copy.sqlite3');
  const restored = join(out, 'restored.sqlite3');
  // Compression off: the references store the pages as they are (zstd and gpg get their own section).
  const stowage = await stowageRig(ctx, join(dir, 'stowage'), { source: { database: ctx.fixture.path }, compression: { algorithm: 'none' } });
  let backupFile = '';

  return {
    title: 'Full backup and restore',
    about:
      'A full backup of the idle fixture to one local destination, compression off (snapshot, page hashes, store, fsync, verify, manifest), ' +
      'against `sqlite3 .backup` (the target baseline) and a plain `cp` + `sync`. A restore of that backup to a new file ' +
      '(download, SHA-256 check, fsync, rename), once `stowage validate` has checked the snapshot (so the restore reads back its header and ' +
      'schema), against `cp` + `sync` of the backup file and against `stowage restore --check full` (the same restore running ' +
      '`PRAGMA integrity_check` and `foreign_key_check`, as the first restore of a snapshot never checked does).',
    cases: [
      {
        operation: 'full backup',
        maxRssMiB: 200,
        stowage: { label: 'stowage backup --type full', argv: () => stowage.cli('backup', '--type', 'full'), before: stowage.reset },
        references: [
          { label: 'sqlite3 .backup', argv: () => ['sqlite3', ctx.fixture.path, `.backup ${JSON.stringify(copy)}`], before: () => fresh(out), maxRatio: 1.5 },
          { label: 'cp + sync', argv: () => sh(CP_SYNC, ctx.fixture.path, copy), before: () => fresh(out) },
        ],
      },
      {
        operation: 'restore',
        maxRssMiB: 200,
        setup: async () => {
          await stowage.reset();
          await runOk(stowage.cli('backup', '--type', 'full'), ctx.root);
          // Every run then restores a checked snapshot: without it the first run would check and the next would not.
          await runOk(stowage.cli('validate', 'latest'), ctx.root);
          const names = await readdir(join(stowage.backups, 'full'));
          const name = names.find((f) => f.endsWith('.sqlite3'));
          if (!name) throw new Error(`no uncompressed backup (*.sqlite3) in ${join(stowage.backups, 'full')}, only: ${names.join(', ')}`);
          backupFile = join(stowage.backups, 'full', name);
        },
        stowage: { label: 'stowage restore latest', argv: () => stowage.cli('restore', 'latest', '--target', restored), before: () => fresh(out) },
        references: [
          { label: 'cp + sync', argv: () => sh(CP_SYNC, backupFile, copy), before: () => fresh(out), maxRatio: 2 },
          {
            label: 'stowage restore --check full',
            argv: () => stowage.cli('restore', 'latest', '--target', restored, '--check', 'full'),
            before: () => fresh(out),
          },
        ],
      },
    ],
  };
}
