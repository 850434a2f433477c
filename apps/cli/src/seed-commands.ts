/*
 * The seed document's own commands, `db_backup` and `db_restore`, with its flags
 * (`--type=full`, `--verify=FILE`, `--file=FILE --test-mode`, …), reading the same config as `stowage`.
 */
import { Command, Option } from 'commander';
import type { GlobalOptions } from './commands.js';
import { UsageError } from './exit-codes.js';
import { addGlobalOptions } from './program.js';

export function dbBackupProgram(setExit: (code: number) => void): Command {
  return addGlobalOptions(new Command('db_backup'))
    .description('Back up the database (seed-compatible): --type=full|incremental|hot, --cleanup, --verify=FILE, --validate-data=FILE')
    .addOption(new Option('--type <type>', 'take a backup of this type').choices(['full', 'incremental', 'hot']))
    .option('--reason <text>', 'why (recorded with hot backups)')
    .option('--cleanup', 'delete backups past their retention')
    .option('--verify <file>', 'verify a backup file')
    .option('--validate-data <file>', 'validate the data in a backup file')
    .action(async (options: GlobalOptions & { type?: string; reason?: string; cleanup?: boolean; verify?: string; validateData?: string }) => {
      // Loaded here, not above: `--help`, `--version` and usage errors load no engine (see program.ts).
      const { waitMs, runBackup, runCleanup, runValidate, runVerify, withEngine } = await import('./commands.js');
      const actions = [options.type, options.cleanup, options.verify, options.validateData].filter((a) => a !== undefined).length;
      setExit(
        await withEngine(
          { program: 'db_backup', command: 'db_backup' },
          options,
          async (engine, out) => {
            if (actions !== 1) throw new UsageError('give exactly one of --type=…, --cleanup, --verify=FILE, --validate-data=FILE');
            if (options.type) return runBackup(engine, out, { type: options.type, ...(options.reason === undefined ? {} : { reason: options.reason }) });
            if (options.cleanup) return runCleanup(engine, out, {});
            if (options.verify) return runVerify(engine, out, { backup: options.verify });
            return runValidate(engine, out, options.validateData!);
          },
          options.type || options.cleanup
            ? { kind: 'exclusive', operation: options.type ? 'backup' : 'cleanup', waitMs: waitMs(options.wait) }
            : options.verify
              ? { kind: 'readers', operation: 'verify', waitMs: waitMs(options.wait) }
              : undefined,
        ),
      );
    });
}

export function dbRestoreProgram(setExit: (code: number) => void): Command {
  return addGlobalOptions(new Command('db_restore'))
    .description('Restore the database (seed-compatible): --file=FILE [--test-mode], --list, --verify [--test-mode]')
    .option('--file <file>', 'restore this backup (a file name, path, id, or latest)')
    .option('--test-mode', 'restore into a scratch folder; the live database is not touched')
    .option('--target <path>', 'restore here instead of the live database')
    .option('--list', 'list available backups')
    .option('--verify', 'check the database restored last')
    .action(async (options: GlobalOptions & { file?: string; testMode?: boolean; target?: string; list?: boolean; verify?: boolean }) => {
      const { waitMs, runList, runRestore, runRestoreVerify, withEngine } = await import('./commands.js');
      setExit(
        await withEngine(
          { program: 'db_restore', command: 'db_restore' },
          options,
          async (engine, out) => {
            const actions = [options.file, options.list, options.verify].filter((a) => a !== undefined).length;
            if (actions !== 1) throw new UsageError('give exactly one of --file=FILE, --list, --verify');
            if (options.list) return runList(engine, out, {});
            if (options.verify) return runRestoreVerify(engine, out, { testMode: options.testMode ?? false });
            // The seed's `--file=FILE` names the backup explicitly: it is the consent, in scripts too.
            return runRestore(engine, out, {
              backup: options.file!,
              yes: true,
              testMode: options.testMode ?? false,
              ...(options.target === undefined ? {} : { target: options.target }),
            });
          },
          options.file
            ? { kind: options.testMode ? 'readers' : 'exclusive', operation: options.testMode ? 'restore-test' : 'restore', waitMs: waitMs(options.wait) }
            : undefined,
        ),
      );
    });
}
