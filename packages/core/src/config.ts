import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { systemErrorCode } from '@stowage/errors';
import { fileSetsConfigSchema, type FileSetsConfig } from '@stowage/filesets';
import { alertsConfigSchema, type AlertsConfig } from '@stowage/alerts/config';
import { encryptionConfigSchema, type EncryptionConfig } from '@stowage/crypto/config';
import { CronPattern } from 'croner';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { CoreError, CoreErrorCode } from './errors.js';
import { DEFAULT_RETENTION, durationSchema, retentionRuleSchema, type RetentionPolicy, type RetentionRule } from './retention.js';

const retentionSchema = z
  .object({
    full: retentionRuleSchema.default(DEFAULT_RETENTION.full),
    incremental: retentionRuleSchema.default(DEFAULT_RETENTION.incremental),
    hot: retentionRuleSchema.default(DEFAULT_RETENTION.hot),
  })
  .strict();

/**
 * A destination's tiering policy: backups of `types` older than `after` move to `storageClass`
 * (one of the adapter's archive classes). A chain moves as a unit, once its newest backup is past
 * `after`, unless `splitChains` lets a full go while newer incrementals that replay it stay hot.
 */
export const archivePolicySchema = z
  .object({
    after: durationSchema.describe('Age after which a backup moves to the archive class, e.g. 30d'),
    storageClass: z.string().min(1).describe('The archive storage class, e.g. DEEP_ARCHIVE, GLACIER (S3) or Archive, ColdArchive (OSS)'),
    types: z
      .array(z.enum(['full', 'incremental', 'hot']))
      .min(1)
      .default(['full'])
      .describe('Backup types that move (default: full)'),
    splitChains: z
      .boolean()
      .default(false)
      .describe('Archive a full past `after` even while newer incrementals that replay it are still hot (their restores then need a thaw)'),
  })
  .strict();
export type ArchivePolicy = z.infer<typeof archivePolicySchema>;

/**
 * A job's cron expression (five fields, or six with seconds first, as the daemon reads them), or
 * false to turn the job off. Checked here, so a typo fails every command, not only the daemon at night.
 */
const cronSchema = z.union(
  [
    z
      .string()
      .min(1)
      .superRefine((expression, ctx) => {
        try {
          new CronPattern(expression.trim(), undefined, { mode: '5-or-6-parts' });
        } catch (error) {
          ctx.addIssue({
            code: 'custom',
            message: `'${expression}' is not a cron expression (${(error as Error).message.replace(/^CronPattern: /, '')}); write minute hour day-of-month month day-of-week, e.g. "0 2 * * *" for 02:00 daily`,
          });
        }
      }),
    z.literal(false),
  ],
  { error: (issue) => (issue.code === 'invalid_union' ? 'write a cron expression such as "0 2 * * *", or false to turn the job off' : undefined) },
);

/** What a config without destinations is told. */
const ADD_A_DESTINATION =
  'add at least one destination, e.g. "destinations": [{ "name": "local", "url": "backups" }] (a folder beside the config; s3:// and oss:// URLs too)';

/**
 * `stowage.config.json`. Relative paths are relative to the config file's folder.
 * Secrets never go here: adapters take credentials from the environment.
 */
export const configSchema = z
  .object({
    $schema: z.string().optional(),
    source: z
      .object({
        /** The live SQLite database, e.g. GreaterWMS's `db.sqlite3`. */
        database: z.string().min(1).describe('Path of the live SQLite database'),
        /** How long a backup waits for a writer's lock before it gives up (ms). */
        busyTimeoutMs: z.number().int().min(0).default(10_000).describe('How long to wait for a writer lock, in ms'),
        /** Named file sets backed up with the database: media folder, config files, logs. */
        files: fileSetsConfigSchema.optional().describe('Named file sets (media, config, logs) backed up with the database'),
      })
      .strict(),
    destinations: z
      .array(
        z
          .object({
            name: z
              .string()
              .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'use letters, digits, ".", "_" and "-", starting with a letter or digit')
              .describe('Short name of the destination, e.g. local-primary'),
            url: z.string().min(1).describe('A folder path or file:// URL (more schemes with their adapters)'),
            options: z.record(z.string(), z.unknown()).optional().describe("The adapter's own options"),
            retention: z
              .object({ full: retentionRuleSchema.optional(), incremental: retentionRuleSchema.optional(), hot: retentionRuleSchema.optional() })
              .strict()
              .optional()
              .describe('Retention overrides for this destination (an archive bucket may keep fulls for a year)'),
            archive: archivePolicySchema
              .optional()
              .describe('Tiering: backups older than `after` are moved to an archive storage class at this destination (`stowage archive run`)'),
          })
          .strict(),
        { error: (issue) => (issue.input === undefined || issue.input === null ? ADD_A_DESTINATION : undefined) },
      )
      .min(1, ADD_A_DESTINATION)
      .describe('Where backups are stored; every backup goes to every destination'),
    retention: retentionSchema.default(DEFAULT_RETENTION).describe('How long backups of each type are kept: a duration (30d) or { maxAge, keepLast }'),
    adapters: z
      .array(z.string().min(1))
      .default([])
      .describe('Custom storage adapters: local modules (./my-adapter.js) or packages that export an AdapterFactory as default or storageAdapterFactory'),
    compression: z
      .object({
        algorithm: z.enum(['zstd', 'none']).default('zstd'),
        level: z.number().int().min(1).max(19).default(3),
      })
      .strict()
      .default({ algorithm: 'zstd', level: 3 })
      .describe('zstd compression of every artifact before encryption (algorithm none to store as is)'),
    encryption: encryptionConfigSchema
      .optional()
      .describe(
        'AES-256 OpenPGP encryption: passphrase mode (passphraseFile or passphraseEnv) or public-key mode (recipients); secrets are never in the config',
      ),
    targets: z
      .object({
        rpo: durationSchema.default('1h').describe('Recovery point objective: the newest backup must be younger than this'),
        rto: durationSchema.default('30m').describe('Recovery time objective: a drill must restore a usable database within this'),
      })
      .strict()
      .default({ rpo: '1h', rto: '30m' }),
    alerts: alertsConfigSchema.optional().describe('Alert channels (email, webhook) and how often a firing alert repeats'),
    quorum: z
      .union([z.literal('all'), z.number().int().min(1)])
      .default('all')
      .describe('Destinations that must commit a backup for it to succeed; fewer than all but at least this many is degraded (exit 3)'),
    maxChainLength: z.number().int().min(1).default(48).describe('Incrementals after which the next incremental is taken as a full backup'),
    stateDir: z.string().default('.stowage').describe('Local cache and staging folder (never the only copy of anything)'),
    logDir: z.string().optional().describe('Folder of backup.log and restore.log (default: logs/ in the first local destination)'),
    schedules: z
      .object({
        full: cronSchema.optional().describe('Full backup (default 0 2 * * *: daily at 02:00)'),
        incremental: cronSchema.optional().describe('Incremental backup (default 0 * * * *: hourly)'),
        cleanup: cronSchema.optional().describe('Cleanup of expired backups (default 0 3 * * 0: Sunday 03:00)'),
        verify: cronSchema.optional().describe('Verify of every backup (default 30 4 * * *: daily at 04:30)'),
        drill: cronSchema.optional().describe('Restore drill (default 0 5 * * 1: Monday 05:00)'),
        archive: cronSchema
          .optional()
          .describe('`stowage archive run` (default 30 3 * * *: daily at 03:30 when a destination has an archive policy, else off)'),
        timeZone: z.string().min(1).optional().describe('IANA time zone of the expressions, e.g. Asia/Shanghai (default: the machine’s)'),
      })
      .strict()
      .optional()
      .describe('What `stowage daemon` runs when: a cron expression per job, or false to turn it off; jobs left out keep their default'),
  })
  .strict()
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.destinations.forEach((destination, index) => {
      if (seen.has(destination.name)) {
        ctx.addIssue({ code: 'custom', path: ['destinations', index, 'name'], message: `duplicate destination name '${destination.name}'` });
      }
      seen.add(destination.name);
    });
    if (typeof config.quorum === 'number' && config.quorum > config.destinations.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['quorum'],
        message: `quorum ${config.quorum} is more than the ${config.destinations.length} configured destination(s)`,
      });
    }
    if (typeof config.schedules?.archive === 'string' && !config.destinations.some((d) => d.archive)) {
      ctx.addIssue({
        code: 'custom',
        path: ['schedules', 'archive'],
        message:
          'no destination has an archive policy to run; add e.g. "archive": { "after": "30d", "storageClass": "DEEP_ARCHIVE" } to one, or remove schedules.archive',
      });
    }
  });

export type ConfigFile = z.input<typeof configSchema>;

/** What reads or writes the state folder needs of a run (an `Engine` is one). */
export interface StateFolder {
  readonly config: Pick<ResolvedConfig, 'stateDir'>;
}

/** A validated config with every path made absolute. */
export interface ResolvedConfig {
  configPath: string;
  baseDir: string;
  source: { database: string; busyTimeoutMs: number; files?: FileSetsConfig };
  destinations: Array<{
    name: string;
    url: string;
    options?: Record<string, unknown> | undefined;
    retention?: Partial<Record<keyof RetentionPolicy, RetentionRule | undefined>> | undefined;
    archive?: ArchivePolicy | undefined;
  }>;
  retention: RetentionPolicy;
  compression: { algorithm: 'zstd' | 'none'; level: number };
  /** The encryption section as written (validated); key files resolve against `baseDir`. */
  encryption?: EncryptionConfig;
  alerts?: AlertsConfig;
  /** Module specifiers of custom adapters (relative ones already absolute). */
  adapters: string[];
  targets: { rpo: string; rto: string };
  quorum: 'all' | number;
  maxChainLength: number;
  stateDir: string;
  /** Undefined means: logs/ in the first local destination, else `<stateDir>/logs`. */
  logDir?: string;
  /** `stowage daemon`'s schedules as written (the expressions are checked when the daemon starts). */
  schedules?: {
    full?: string | false | undefined;
    incremental?: string | false | undefined;
    cleanup?: string | false | undefined;
    verify?: string | false | undefined;
    drill?: string | false | undefined;
    archive?: string | false | undefined;
    timeZone?: string | undefined;
  };
}

/** Validates a parsed config; problems are reported one per line as `path.to.key: message`. */
export function resolveConfig(json: unknown, configPath: string): ResolvedConfig {
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new CoreError(CoreErrorCode.ConfigInvalid, `invalid config ${configPath}:\n${lines.join('\n')}`, { context: { configPath, problems: lines } });
  }
  const config = parsed.data;
  const baseDir = dirname(resolve(configPath));
  return {
    configPath: resolve(configPath),
    baseDir,
    source: {
      database: resolve(baseDir, config.source.database),
      busyTimeoutMs: config.source.busyTimeoutMs,
      ...(config.source.files === undefined ? {} : { files: config.source.files }),
    },
    destinations: config.destinations,
    retention: config.retention,
    compression: config.compression,
    ...(config.encryption === undefined ? {} : { encryption: config.encryption }),
    ...(config.alerts === undefined ? {} : { alerts: config.alerts }),
    adapters: config.adapters.map((spec) => (spec.startsWith('.') || isAbsolute(spec) ? resolve(baseDir, spec) : spec)),
    targets: config.targets,
    quorum: config.quorum,
    maxChainLength: config.maxChainLength,
    stateDir: resolve(baseDir, config.stateDir),
    ...(config.logDir === undefined ? {} : { logDir: resolve(baseDir, config.logDir) }),
    ...(config.schedules === undefined ? {} : { schedules: config.schedules }),
  };
}

export async function loadConfig(configPath: string): Promise<ResolvedConfig> {
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (cause) {
    if (systemErrorCode(cause) === 'ENOENT') {
      throw new CoreError(CoreErrorCode.ConfigNotFound, `no config file at ${configPath}; run \`stowage init\` or pass --config PATH`, {
        context: { configPath },
        cause,
      });
    }
    throw new CoreError(CoreErrorCode.ConfigInvalid, `cannot read config ${configPath}: ${(cause as Error).message}`, { context: { configPath }, cause });
  }
  const json = parseConfigText(text, configPath);
  const config = resolveConfig(json, configPath);
  await checkRelativeDatabase(config, (json as { source: { database: string } }).source.database);
  return config;
}

/**
 * The common mistake of a relative `source.database` written as if relative to the current folder:
 * when there is no database beside the config but there is one at that path from here, says so.
 * (A database that is nowhere yet is fine: a restore onto a new machine creates it.)
 */
async function checkRelativeDatabase(config: ResolvedConfig, written: string): Promise<void> {
  if (isAbsolute(written)) return;
  const fromHere = resolve(written);
  if (fromHere === config.source.database || (await exists(config.source.database)) || !(await exists(fromHere))) return;
  throw new CoreError(
    CoreErrorCode.ConfigInvalid,
    `invalid config ${config.configPath}:\nsource.database: "${written}" is relative to the config file's folder ${config.baseDir}, where there is no such file (${fromHere}, relative to the current folder, exists): write its absolute path, or a path relative to ${config.baseDir}`,
    { context: { configPath: config.configPath, database: config.source.database } },
  );
}

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

/**
 * A config file's data: YAML for `.yaml`/`.yml` (comments allowed), JSON otherwise. A syntax error
 * names the file, the line and the column.
 */
export function parseConfigText(text: string, configPath: string): unknown {
  const invalid = (what: string, line: number, column: number, message: string, cause: unknown) =>
    new CoreError(CoreErrorCode.ConfigInvalid, `${configPath}:${line}:${column}: not valid ${what}: ${message}`, {
      context: { configPath, line, column },
      cause,
    });
  if (/\.ya?ml$/i.test(configPath)) {
    const document = parseDocument(text, { uniqueKeys: true });
    const [error] = document.errors;
    if (error) {
      const { line, col } = error.linePos?.[0] ?? { line: 1, col: 1 };
      throw invalid('YAML', line, col, error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''), error);
    }
    return document.toJS() as unknown;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    // Node 20 says "at position N", Node 22+ also "(line L column C)": report line and column alike.
    const message = (cause as Error).message.replace(/\s*\(line \d+ column \d+\)$/, '');
    const position = Number(/at position (\d+)/.exec(message)?.[1] ?? text.length);
    const before = text.slice(0, position).split('\n');
    throw invalid('JSON', before.length, before.at(-1)!.length + 1, message.replace(/ in JSON at position \d+$/, ''), cause);
  }
}

/** The JSON schema of the config file, generated from the zod schema (shipped with the CLI). */
export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input' });
}
