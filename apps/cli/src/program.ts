import { Command, CommanderError, Option } from 'commander';
import { dirname } from 'node:path';
import type { Engine } from '@stowage/core';
import type { CommandName, GlobalOptions, LockPolicy } from './commands.js';
import type { ThawFlags } from './archive-commands.js';
import { ExitCode, UsageError, exitCodeFor } from './exit-codes.js';
import { SCHEDULE_FORMATS, type ScheduleFormat } from './schedule-formats.js';
import { DEFAULT_LISTEN } from './dashboard/defaults.js';
import { Output } from './output.js';
import { CLI_VERSION } from './version.js';

// The command implementations (and through them the engine, the storage SDKs, nodemailer, openpgp
// and better-sqlite3) are imported when an action runs: `--version`, `--help` and usage errors load
// commander and this file's few light imports only (apps/cli/src/startup.test.ts checks the built bin).
/** The implementations of most commands. */
const commands = () => import('./commands.js');
type Commands = Awaited<ReturnType<typeof commands>>;

/** Adds the options every command takes. */
export function addGlobalOptions(command: Command): Command {
  return command
    .option('-c, --config <path>', 'config file, YAML or JSON (default: $STOWAGE_CONFIG, else ./stowage.config.yaml or ./stowage.config.json)')
    .option('--json', 'print a machine-readable result on stdout (logs go to stderr)')
    .option('-q, --quiet', 'print nothing but errors and warnings')
    .option(
      '--wait [duration]',
      'when another stowage holds the lock, wait up to this long (30s, 10m) instead of failing; with --thaw, also wait for thaws (bare --wait: as long as they take)',
    );
}

/**
 * Parses argv with `build`'s commander program and runs the chosen action.
 * Commander's own errors (unknown option, missing argument) exit 2.
 */
export async function runProgram(build: (setExit: (code: number) => void) => Command, argv: readonly string[]): Promise<number> {
  let exit: number = ExitCode.Ok;
  const program = build((code) => (exit = code));
  // On every subcommand: commander copies these settings only to commands created after them.
  const override = (command: Command): void => {
    command.exitOverride().configureOutput({ writeErr: (text) => process.stderr.write(text) });
    command.commands.forEach(override);
  };
  override(program);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    const usage = error instanceof CommanderError;
    if (usage && (error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version')) return ExitCode.Ok;
    // Commander printed its message to stderr already; --json still gets its envelope.
    const ours = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
    const out = new Output({ json: ours.includes('--json'), quiet: false }, program.name(), commandNamed(program, ours).command);
    if (usage) out.error(new UsageError(error.message.replace(/^error: /, '')), { printed: true });
    else out.error(error);
    const code = usage ? ExitCode.Usage : exitCodeFor(error);
    out.finish(code);
    return code;
  }
  return exit;
}

/** Commands whose bare `--wait` waits for thaws. */
const THAWING_COMMANDS = ['restore', 'verify', 'drill'];

/** The envelope's name of the subcommand `command` (`backup`, `key generate`); the program's own name for a top-level program. */
export function commandName(command: Command): CommandName {
  const path: string[] = [];
  let root = command;
  for (; root.parent; root = root.parent) path.unshift(root.name());
  return { program: root.name(), command: path.join(' ') || root.name() };
}

/** The subcommand that `argv` names (as far as it names one), for errors raised before an action runs. */
function commandNamed(program: Command, argv: readonly string[]): CommandName {
  let command = program;
  for (const word of argv) {
    if (word.startsWith('-')) continue;
    const sub = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
    if (!sub) break;
    command = sub;
  }
  return commandName(command);
}

export function stowageProgram(setExit: (code: number) => void): Command {
  const program = addGlobalOptions(new Command('stowage'))
    .description('Backup and disaster recovery for SQLite-backed applications')
    .version(CLI_VERSION)
    .showHelpAfterError()
    .enablePositionalOptions();
  const globals = (command: Command) => command.optsWithGlobals<GlobalOptions>();
  /** Runs `fn` with an engine for the config (see withEngine); `fn` gets the loaded `commands` module too. */
  const run = async (command: Command, fn: (engine: Engine, out: Output, impl: Commands) => Promise<number>, locks?: Omit<LockPolicy, 'waitMs'>) => {
    const impl = await commands();
    const g = globals(command);
    // A bare --wait waits for thaws (restore, verify, drill with --thaw: see thawRequestOf), not for locks.
    const lockWait = g.wait === true && THAWING_COMMANDS.includes(command.name()) ? undefined : g.wait;
    setExit(await impl.withEngine(commandName(command), g, (engine, out) => fn(engine, out, impl), locks && { ...locks, waitMs: impl.waitMs(lockWait) }));
  };
  /** `withOutput` (no engine) for the commands that need none. */
  const withOutput = async (command: Command, fn: (out: Output, impl: Commands) => Promise<number>) => {
    const impl = await commands();
    setExit(await impl.withOutput(commandName(command), globals(command), (out) => fn(out, impl)));
  };

  program
    .command('init')
    .description(
      'write a starting config: commented YAML (./stowage.config.yaml), or JSON for a --config path ending in .json; finds media/ beside the database',
    )
    .option('--database <path>', 'the live SQLite database', 'db.sqlite3')
    .option('--destination <path>', 'backup folder or URL', 'backups')
    .option('--force', 'overwrite an existing config, or write one for a database that does not exist yet')
    .action((options: { database: string; destination: string; force?: boolean }, command: Command) =>
      withOutput(command, async (out) => {
        const { initConfigPath, runInit } = await import('./init.js');
        return runInit(out, initConfigPath(globals(command).config), options);
      }),
    );

  program
    .command('backup')
    .description('take a backup of the database and store it at every destination')
    .addOption(new Option('-t, --type <type>', 'backup type').choices(['full', 'hot', 'incremental']).default('full'))
    .option('--reason <text>', 'why (recorded with hot backups)')
    .action((options: { type: string; reason?: string }, command: Command) =>
      run(command, (engine, out, impl) => impl.runBackup(engine, out, options), { kind: 'exclusive', operation: 'backup' }),
    );

  program
    .command('list')
    .description('list committed backups and the destinations holding them')
    .addOption(new Option('-t, --type <type>', 'only this type').choices(['full', 'hot', 'incremental']))
    .action((options: { type?: string }, command: Command) => run(command, (engine, out, impl) => impl.runList(engine, out, options)));

  /** The thaw `command`'s flags and its global `--wait` ask for (see thawRequestOf). */
  const thawRequest = async (flags: ThawFlags, command: Command) => (await import('./archive-commands.js')).thawRequestOf(flags, globals(command).wait);

  /** `--thaw`, `--tier`, `--days`, `--poll` (with the global `--wait`: see thawRequestOf). */
  const withThawOptions = (command: Command): Command =>
    command
      .option('--thaw', 'request a thaw of the archived artifacts this needs (S3 RestoreObject, OSS RestoreObject); with --wait, wait for them and go on')
      .addOption(new Option('--tier <tier>', 'thaw speed (faster costs more; default standard)').choices(['expedited', 'standard', 'bulk']))
      .option('--days <n>', 'days the thawed copies stay readable (default 7)')
      .option('--poll <duration>', 'while waiting, look at the thaws this often (default 1m)');

  withThawOptions(
    program
      .command('verify')
      .argument('[backup]', 'backup id, file name, or latest')
      .description('re-read a backup at its destinations and compare sizes and SHA-256')
      .option('--all', 'verify every backup')
      .option('--destination <name>', 'only this destination')
      .option('--deep', 'read every byte back and hash it, even where the destination reports a checksum (archived objects: only with --thaw)'),
  ).action((backupRef: string | undefined, options: { all?: boolean; destination?: string; deep?: boolean } & ThawFlags, command: Command) =>
    run(
      command,
      async (engine, out, impl) => {
        const { thaw, tier, days, poll, ...rest } = options;
        const request = await thawRequest({ thaw, tier, days, poll }, command);
        if (request && !rest.deep) throw new UsageError('--thaw goes with --deep: verify without --deep never reads archived objects');
        return impl.runVerify(engine, out, { ...rest, ...(backupRef === undefined ? {} : { backup: backupRef }), ...(request && { thaw: request }) });
      },
      { kind: 'readers', operation: 'verify' },
    ),
  );

  program
    .command('validate')
    .argument('<backup>', 'backup id, file name, or latest')
    .description('restore to scratch and check integrity, foreign keys, row counts and schema')
    .action((backupRef: string, _options: unknown, command: Command) =>
      run(command, (engine, out, impl) => impl.runValidate(engine, out, backupRef), { kind: 'readers', operation: 'validate' }),
    );

  withThawOptions(
    program
      .command('restore')
      .argument('[backup]', 'backup id, file name, or latest')
      .description('restore a backup over the live database (moving it aside), or elsewhere')
      .option('--target <path>', 'restore here instead (a file or an existing folder)')
      .option('--test-mode', 'restore into a scratch folder; the live database is not touched')
      .option('--from <destination>', 'read from this destination only')
      .option('--at <time>', 'the newest backup taken at or before this time')
      .option('--only <names>', 'restore only these, comma-separated: database and/or file-set names')
      .option('--verify', 'check the database restored last against its backup')
      .option(
        '--check <kind>',
        'auto: when the snapshot passed the full checks before (validate, or a restore that ran them), its bytes matching it are enough (header and schema read back); else full. quick: quick_check; full: integrity_check and foreign_key_check',
        'auto',
      )
      .option('-y, --yes', 'replace the live data without asking (required without a terminal)'),
  ).action(
    (
      backupRef: string | undefined,
      options: { target?: string; testMode?: boolean; from?: string; at?: string; only?: string; verify?: boolean; yes?: boolean; check?: string } & ThawFlags,
      command: Command,
    ) =>
      run(
        command,
        async (engine, out, impl) => {
          const { verify, thaw, tier, days, poll, ...rest } = options;
          const request = await thawRequest({ thaw, tier, days, poll }, command);
          if (verify) return impl.runRestoreVerify(engine, out, { testMode: options.testMode ?? false });
          const defaultLatest = backupRef === undefined && options.at === undefined && options.testMode;
          return impl.runRestore(engine, out, {
            ...rest,
            ...(defaultLatest ? { backup: 'latest' } : backupRef === undefined ? {} : { backup: backupRef }),
            ...(request && { thaw: request }),
          });
        },
        options.verify ? undefined : { kind: options.testMode ? 'readers' : 'exclusive', operation: options.testMode ? 'restore-test' : 'restore' },
      ),
  );

  program
    .command('cleanup')
    .description('delete backups past their retention (keeping every link a kept incremental needs) and leftovers of crashed backups')
    .option('--dry-run', 'show what would be deleted, delete nothing')
    .option('--as-of <time>', 'judge ages as of this time instead of now')
    .option('--allow-early-delete', "also delete archived objects younger than their storage class's minimum storage duration (charged as if kept that long)")
    .action((options: { dryRun?: boolean; asOf?: string; allowEarlyDelete?: boolean }, command: Command) =>
      run(command, (engine, out, impl) => impl.runCleanup(engine, out, options), { kind: 'exclusive', operation: 'cleanup' }),
    );

  const archive = program.command('archive').description("archive offload: move old backups to a destination's archive storage class");
  archive
    .command('run')
    .description("move backups past their destination's archive.after to its archive class (server-side copy, checked by checksum); a chain moves as a unit")
    .option('--dry-run', 'show what would move, move nothing')
    .option('--as-of <time>', 'judge ages as of this time instead of now')
    .action((options: { dryRun?: boolean; asOf?: string }, command: Command) =>
      run(
        command,
        async (engine, out, impl) =>
          (await import('./archive-commands.js')).runArchiveRun(engine, out, {
            dryRun: options.dryRun ?? false,
            ...(options.asOf === undefined ? {} : { asOf: impl.parseTime(options.asOf) }),
          }),
        { kind: 'exclusive', operation: 'archive' },
      ),
    );

  program
    .command('thaw')
    .description('archived backups: where their thaws stand')
    .command('status')
    .argument('<backup>', 'backup id, file name, or latest')
    .description('per artifact a restore of the backup reads: archived, thawing or readable (and until when), with the expected thaw time')
    .option('--from <destination>', 'only this destination')
    .action((backupRef: string, options: { from?: string }, command: Command) =>
      run(command, async (engine, out) => (await import('./archive-commands.js')).runThawStatus(engine, out, backupRef, options.from)),
    );

  program
    .command('status')
    .description('newest backups against the RPO target, destinations, last verify and drill; exit 0 healthy, 1 unhealthy')
    .option('--alert', 'also raise or resolve the RPO alert, as the daemon does after each job (for a monitoring cron); without it status only reads')
    .action((options: { alert?: boolean }, command: Command) => run(command, (engine, out, impl) => impl.runStatus(engine, out, options)));

  withThawOptions(
    program
      .command('drill')
      .description('restore drill: restore into scratch from a destination, validate, measure the RTO, clean up, record')
      .option('--backup <ref>', 'backup id, latest or random', 'latest'),
  )
    .option('--destination <name>', 'read from this destination (default: the last configured)')
    .action((options: { backup?: string; destination?: string } & ThawFlags, command: Command) =>
      run(
        command,
        async (engine, out, impl) => {
          const { thaw, tier, days, poll, ...rest } = options;
          const request = await thawRequest({ thaw, tier, days, poll }, command);
          return impl.runDrill(engine, out, { ...rest, ...(request && { thaw: request }) });
        },
        { kind: 'readers', operation: 'drill' },
      ),
    );

  program
    .command('sync')
    .description('copy missing or damaged replicas from a healthy destination, so every destination holds every backup')
    .option('--dry-run', 'show the plan, copy nothing')
    .option('--deep', 'check replicas by reading them back')
    .action((options: { dryRun?: boolean; deep?: boolean }, command: Command) =>
      run(command, (engine, out, impl) => impl.runSync(engine, out, options), { kind: 'exclusive', operation: 'sync' }),
    );

  const destinations = program.command('destinations').description('about the configured destinations');
  destinations
    .command('probe')
    .description('write, read and delete a probe object at every destination; for S3, find what the endpoint supports')
    .action((_options: unknown, command: Command) => run(command, (engine, out, impl) => impl.runProbe(engine, out)));
  const lifecycle = destinations
    .command('lifecycle')
    .description("bucket lifecycle rules equivalent to each destination's archive policy (S3, OSS; a local folder has none: exit 2)");
  lifecycle
    .command('print')
    .description('print the lifecycle configuration the provider takes (S3: JSON, OSS: XML) on stdout, the caveat on stderr')
    .option('--destination <name>', 'only this destination')
    .action((options: { destination?: string }, command: Command) =>
      run(command, async (engine, out) => (await import('./archive-commands.js')).runLifecyclePrint(engine, out, options)),
    );
  lifecycle
    .command('apply')
    .description(
      "write the rules (replacing only Stowage's own, ids stowage-…, under the destination's prefix; removing them where the policy was deleted) under the bucket's lifecycle lock, and read them back",
    )
    .option('--destination <name>', 'only this destination')
    .option('--yes', 'write without asking')
    .action((options: { destination?: string; yes?: boolean }, command: Command) =>
      run(command, async (engine, out, impl) =>
        (await import('./archive-commands.js')).runLifecycleApply(engine, out, {
          ...options,
          waitMs: impl.waitMs(globals(command).wait),
          command: `${commandName(command).program} ${process.argv.slice(2).join(' ')}`,
        }),
      ),
    );

  const key = program.command('key').description('encryption keys: generate, show, check');
  key
    .command('generate')
    .description('write a new passphrase file (600), or with --public-key an OpenPGP key pair')
    .option('--public-key', 'generate a key pair: the public key for backup hosts, the private key for restore machines')
    .option('--out <path>', 'where to write (a file; with --public-key a path prefix)')
    .option('--user-id <text>', 'user id of the key pair', 'Stowage backups')
    .action((options: { publicKey?: boolean; out?: string; userId?: string }, command: Command) =>
      withOutput(command, async (out, impl) => (await import('./keys.js')).runKeyGenerate(out, dirname(impl.configPath(globals(command))), options)),
    );
  key
    .command('show')
    .description('the configured encryption mode and key fingerprints (never a secret)')
    .action((_options: unknown, command: Command) => run(command, async (engine, out) => (await import('./keys.js')).runKeyShow(engine, out)));
  key
    .command('check')
    .description('can this machine encrypt backups? decrypt them?')
    .action((_options: unknown, command: Command) => run(command, async (engine, out) => (await import('./keys.js')).runKeyCheck(engine, out)));

  program
    .command('alert')
    .description('alert channels')
    .command('test')
    .description('send a test message through every channel')
    .action((_options: unknown, command: Command) => run(command, (engine, out, impl) => impl.runAlertTest(engine, out)));

  program
    .command('audit')
    .description('the tamper-evident audit log')
    .command('verify')
    .description('check that no record was edited, deleted, reordered or cut off')
    .action((_options: unknown, command: Command) => run(command, (engine, out, impl) => impl.runAuditVerify(engine, out)));

  program
    .command('unlock')
    .description('remove locks left by a stowage that is gone (a dead pid, an expired lease); --force removes any')
    .option('--source', 'only the lock on the source')
    .option('--destination <name...>', 'only the locks at these destinations')
    .option('--force', 'also remove a lock whose holder still runs')
    .action((options: { source?: boolean; destination?: string[]; force?: boolean }, command: Command) =>
      run(command, (engine, out, impl) => impl.runUnlock(engine, out, options)),
    );

  program
    .command('schedule')
    .description('run Stowage on a schedule')
    .command('print')
    .description("print ready-to-paste schedules with this installation's paths: crontab, Windows schtasks (.bat), systemd units, docker compose")
    .addOption(new Option('--format <format>', 'output format').choices([...SCHEDULE_FORMATS]).makeOptionMandatory())
    .option('--time-zone <tz>', 'time zone of the schedules (default: schedules.timeZone in the config, else this machine’s)')
    .option('--log <file>', 'append output to this file (crontab)')
    .option('--npx', 'run `npx -y @stowage/cli@<this version>` instead of this installation')
    .action((options: { format: ScheduleFormat; timeZone?: string; log?: string; npx?: boolean }, command: Command) =>
      // The config alone: printing needs no destination, key or secret (environment variables are named, not read).
      withOutput(command, async (out, impl) => {
        const { loadConfig } = await import('@stowage/core');
        return impl.runSchedulePrint(await loadConfig(impl.configPath(globals(command))), out, options);
      }),
    );

  program
    .command('daemon')
    .description('run the schedules of the config (backups, cleanup, verify, drill) until SIGTERM or SIGINT, one log line per event')
    .option('--time-zone <tz>', 'time zone of the schedules (default: schedules.timeZone in the config, else this machine’s)')
    .option('--grace <duration>', 'on SIGTERM, how long the job under way may take to finish before the daemon exits 1', '100s')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics, e.g. 127.0.0.1:9464')
    .option('--http <host:port>', 'serve the status page, its /api and /metrics (as `stowage serve`), e.g. 127.0.0.1:8787')
    .option('--auth-token-env <name>', 'with --http beyond loopback: environment variable holding the bearer token')
    .action((options: { timeZone?: string; grace: string; metricsListen?: string; http?: string; authTokenEnv?: string }, command: Command) =>
      import('./daemon/index.js').then(({ runDaemon }) => runDaemon(globals(command), options)).then(setExit),
    );

  program
    .command('metrics')
    .description('Prometheus metrics (text format) on stdout, or --textfile PATH for node_exporter’s textfile collector')
    .option('--textfile <path>', 'write them atomically to this file')
    .action((options: { textfile?: string }, command: Command) =>
      run(command, async (engine, out) => {
        const { renderMetrics, writeMetricsFile } = await import('./metrics.js');
        if (options.textfile) {
          await writeMetricsFile(engine, options.textfile);
          out.result({ textfile: options.textfile });
        } else {
          const text = await renderMetrics(engine);
          out.result({ text });
          if (!out.options.json) process.stdout.write(text);
        }
        return ExitCode.Ok;
      }),
    );

  program
    .command('serve')
    .description('a read-only status page (health, backup timeline, sizes, replica matrix, drills, audit) and its JSON API under /api/')
    .option('--listen <host:port>', 'where to listen; an address beyond loopback needs --auth-token-env', DEFAULT_LISTEN)
    .option('--auth-token-env <name>', 'environment variable holding a bearer token that every request must present')
    .action((options: { listen: string; authTokenEnv?: string }, command: Command) =>
      run(command, async (engine, out) => (await import('./dashboard/commands.js')).runServe(engine, out, options)),
    );

  program
    .command('report')
    .description('the status page as one self-contained HTML file (no network needed to open it); with --json its data')
    .option('--html <file>', 'write the page here')
    .action((options: { html?: string }, command: Command) =>
      run(command, async (engine, out) => (await import('./dashboard/commands.js')).runReport(engine, out, options)),
    );

  program
    .command('guard')
    .description('take a hot backup, run a command, pass its exit code through; on failure print the restore command')
    .option('--reason <text>', 'recorded with the hot backup (default: the command)')
    .argument('<command...>', 'the command to run, after --')
    .passThroughOptions()
    .action((commandLine: string[], options: { reason?: string }, command: Command) =>
      run(command, (engine, out, impl) => impl.runGuard(engine, out, commandLine, { ...options, config: globals(command).config }), {
        kind: 'exclusive',
        operation: 'guard',
      }),
    );

  const addEverywhere = (command: Command): void => {
    for (const sub of command.commands) {
      addGlobalOptions(sub);
      addEverywhere(sub);
    }
  };
  addEverywhere(program);
  return program;
}
