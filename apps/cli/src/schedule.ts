import { posix, win32 } from 'node:path';
import { TOOL_VERSION, type ResolvedConfig } from '@stowage/core';
import { CronPattern } from 'croner';
import { Document } from 'yaml';
import { UsageError } from './exit-codes.js';
import type { ScheduleFormat } from './schedule-formats.js';

/** The jobs a schedule runs. */
export type ScheduledJob = 'full' | 'incremental' | 'cleanup' | 'archive' | 'verify' | 'drill';

export type { ScheduleFormat } from './schedule-formats.js';

/** The seed's schedule (full daily 02:00, incremental hourly, cleanup Sunday 03:00), plus a daily verify and a weekly restore drill. */
export const DEFAULT_SCHEDULES: Readonly<Record<Exclude<ScheduledJob, 'archive'>, string>> = {
  full: '0 2 * * *',
  incremental: '0 * * * *',
  cleanup: '0 3 * * 0',
  verify: '30 4 * * *',
  drill: '0 5 * * 1',
};

/** `stowage archive run`'s default schedule when a destination has an `archive` policy: daily at 03:30, after the Sunday 03:00 cleanup (nothing is archived just to be deleted). */
export const DEFAULT_ARCHIVE_SCHEDULE = '30 3 * * *';

/** Whether a destination of the config has an `archive` policy (the archive job is scheduled by default). */
export function hasArchivePolicy(config: Pick<ResolvedConfig, 'destinations'>): boolean {
  return config.destinations.some((d) => d.archive !== undefined);
}

/**
 * The schedules a config runs: its `schedules` section over `DEFAULT_SCHEDULES` (`false` turns a job
 * off), then `overrides`; the time zone is the override's, else the config's, else undefined (the machine's).
 * The archive job defaults to `DEFAULT_ARCHIVE_SCHEDULE` when `archivePolicy` (a destination has an
 * `archive` policy), else to off.
 */
export function configSchedules(
  section: Partial<Record<ScheduledJob, string | false | undefined>> & { timeZone?: string | undefined } = {},
  overrides: { schedules?: Partial<Record<ScheduledJob, string | false>>; timeZone?: string | undefined } = {},
  archivePolicy = false,
): { schedules: Partial<Record<ScheduledJob, string>>; timeZone: string | undefined } {
  const { timeZone, ...fromConfig } = section;
  const defaults: Partial<Record<ScheduledJob, string>> = { ...DEFAULT_SCHEDULES, ...(archivePolicy && { archive: DEFAULT_ARCHIVE_SCHEDULE }) };
  const schedules: Partial<Record<ScheduledJob, string>> = {};
  for (const job of Object.keys(JOBS) as ScheduledJob[]) {
    // A key set to undefined keeps the default (a spread would erase it).
    const expression = overrides.schedules?.[job] ?? fromConfig[job] ?? defaults[job];
    if (expression !== undefined && expression !== false) schedules[job] = expression;
  }
  return { schedules, timeZone: overrides.timeZone ?? timeZone };
}

/** What each job runs, and the name of its task or unit. */
const JOBS: Readonly<Record<ScheduledJob, { title: string; name: string; args: readonly string[] }>> = {
  full: { title: 'full backup', name: 'backup-full', args: ['backup', '--type', 'full'] },
  incremental: { title: 'incremental backup', name: 'backup-incremental', args: ['backup', '--type', 'incremental'] },
  cleanup: { title: 'cleanup of expired backups', name: 'cleanup', args: ['cleanup'] },
  archive: { title: 'move of old backups to archive storage', name: 'archive', args: ['archive', 'run'] },
  verify: { title: 'verification of every backup', name: 'verify', args: ['verify', '--all'] },
  drill: { title: 'restore drill', name: 'drill', args: ['drill'] },
};

export interface ScheduleOptions {
  /** Five-field cron expressions by job; a job left out is not scheduled. */
  schedules: Partial<Record<ScheduledJob, string>>;
  /** IANA time zone the expressions are meant in, e.g. `Asia/Shanghai` (default: the machine's). */
  timeZone?: string | undefined;
  /** How to run stowage, absolute: the installed bin, or `[node binary, script]` (safer: cron's PATH may lack node). */
  stowageCommand: string | readonly string[];
  /** crontab, systemd: the PATH jobs run with (absolute folders), when the command needs more than cron's. */
  searchPath?: readonly string[];
  /** The config file, absolute. */
  configPath: string;
  /** The application's folder, absolute: jobs run there (compose mounts it). */
  workingDir: string;
  /** crontab, schtasks, systemd: where each run's output is appended. */
  logFile?: string | undefined;
  /** systemd `User=` and compose `user:`: the account owning the application's files (default root). */
  user?: string;
  /** compose: further host folders the jobs use (database, local destinations, state), mounted at the same path. */
  mounts?: readonly string[];
  /** compose: key files outside those folders, absolute, mounted read-only at the same path. */
  keyFiles?: readonly string[];
  /** compose: names of environment variables passed through from where compose runs (never their values). */
  environment?: readonly string[];
  /** compose: the image (default `COMPOSE_IMAGE`). */
  image?: string;
  /** compose: a Stowage repository whose Dockerfile builds the image (`docker compose build`). */
  buildContext?: string;
}

/**
 * The schedule as text to paste: crontab lines, a Windows .bat of `schtasks /create` commands,
 * systemd service and timer units, or a docker-compose service. Pure; throws a `UsageError` for an
 * invalid cron expression or time zone, a relative path, or an expression the format cannot express.
 */
export function renderSchedule(format: ScheduleFormat, options: ScheduleOptions): string {
  if (options.timeZone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: options.timeZone });
    } catch {
      throw new UsageError(`unknown time zone '${options.timeZone}'; use an IANA name such as Asia/Shanghai`);
    }
  }
  const jobs = (Object.keys(JOBS) as ScheduledJob[]).flatMap((job) => {
    const expression = options.schedules[job];
    return expression === undefined ? [] : [{ job, ...JOBS[job], expression: expression.trim(), fields: parseCron(job, expression) }];
  });
  const isAbsolute = format === 'schtasks' ? win32.isAbsolute : posix.isAbsolute;
  const command = typeof options.stowageCommand === 'string' ? [options.stowageCommand] : [...options.stowageCommand];
  const paths: Array<[string, string | undefined]> = [
    ['the stowage command', format === 'compose' ? undefined : command[0]],
    ['the config path', options.configPath],
    ['the working folder', format === 'schtasks' ? undefined : options.workingDir],
    ['the log file', format === 'compose' ? undefined : options.logFile],
    ...(options.searchPath ?? []).map((p): [string, string] => ['a PATH folder', p]),
    ...(options.mounts ?? []).map((m): [string, string] => ['a mount', m]),
  ];
  for (const [what, path] of paths) {
    if (path !== undefined && !isAbsolute(path)) throw new UsageError(`${what} must be an absolute path for ${format}, not '${path}'`);
  }
  // Jobs that meet (the full and the incremental at 02:00) queue for the lock instead of failing.
  const argv = (job: (typeof jobs)[number]) => [...command, ...job.args, '--config', options.configPath, '--wait', '30m'];
  const header = `Stowage ${TOOL_VERSION} schedule for ${options.configPath}`;

  switch (format) {
    case 'crontab': {
      const log = options.logFile === undefined ? '' : ` >> ${shQuote(options.logFile)} 2>&1`;
      return lines(
        `# ${header}`,
        '# Paste into `crontab -e` of the account that owns the application files.',
        ...(options.timeZone === undefined
          ? []
          : [
              '# CRON_TZ sets the schedule zone for cronie (RHEL, Fedora, Arch); Debian and Ubuntu cron use the system zone.',
              `CRON_TZ=${options.timeZone}`,
              `TZ=${options.timeZone}`,
            ]),
        ...(options.searchPath === undefined ? [] : [`PATH=${options.searchPath.join(':')}`]),
        ...jobs.flatMap((job) => [
          `# ${job.title}`,
          `${job.expression} cd ${shQuote(options.workingDir)} && ${[...argv(job), '--quiet'].map(shQuote).join(' ')}${log}`.replace(/%/g, '\\%'),
        ]),
      );
    }
    case 'schtasks':
      return lines(
        '@echo off',
        `REM ${header}`,
        'REM Run once as an administrator. Tasks run as SYSTEM, at the local time of this machine',
        ...(options.timeZone === undefined ? [] : [`REM (set its Windows time zone to match ${options.timeZone}).`]),
        ...jobs.map((job) => {
          let run = argv(job).map(winQuote).join(' ');
          if (options.logFile !== undefined) run = `cmd /c "${run} >> ${winQuote(options.logFile)} 2>&1"`;
          if (run.length > 261) {
            throw new UsageError(
              `the ${job.title} command is ${run.length} characters, more than the 261 that schtasks /tr accepts; install stowage or the config on a shorter path`,
            );
          }
          const when = toSchtasks(job.job, job.expression, job.fields);
          return `schtasks /create /f /ru SYSTEM /tn "Stowage\\${job.name}" /tr "${run.replace(/"/g, '\\"')}" ${when}`.replace(/%/g, '%%');
        }),
      );
    case 'systemd': {
      const units = jobs.flatMap((job) => {
        const unit = `stowage-${job.name}`;
        return [
          `# ==> /etc/systemd/system/${unit}.service <==`,
          '[Unit]',
          `Description=Stowage ${job.title} (${systemdEscape(options.configPath)})`,
          'Wants=network-online.target',
          'After=network-online.target',
          '',
          '[Service]',
          'Type=oneshot',
          ...(options.user === undefined ? [] : [`User=${options.user}`]),
          `WorkingDirectory=${systemdEscape(options.workingDir)}`,
          ...(options.timeZone === undefined ? [] : [`Environment=TZ=${options.timeZone}`]),
          ...(options.searchPath === undefined ? [] : [`Environment=${systemdQuote(`PATH=${options.searchPath.join(':')}`)}`]),
          `ExecStart=${argv(job).map(systemdQuote).join(' ')}`,
          ...(options.logFile === undefined ? [] : [`StandardOutput=append:${systemdEscape(options.logFile)}`]),
          '',
          `# ==> /etc/systemd/system/${unit}.timer <==`,
          '[Unit]',
          `Description=Stowage ${job.title} schedule (${job.expression})`,
          '',
          '[Timer]',
          `OnCalendar=${toOnCalendar(job.job, job.expression, job.fields)}${options.timeZone === undefined ? '' : ` ${options.timeZone}`}`,
          'Persistent=true',
          '',
          '[Install]',
          'WantedBy=timers.target',
          '',
        ];
      });
      return lines(
        `# ${header}`,
        '# Save each unit below under its path, then:',
        `#   systemctl daemon-reload && systemctl enable --now ${jobs.map((job) => `stowage-${job.name}.timer`).join(' ')}`,
        '',
        ...units,
      ).replace(/\n+$/, '\n');
    }
    case 'compose':
      return composeService(options, jobs, header);
  }
}

/** The compose image of this version, built from the repository's Dockerfile (`docker build -t stowage:<version> .`). */
export const COMPOSE_IMAGE = `stowage:${TOOL_VERSION}`;

/**
 * A docker-compose file (built as data with the `yaml` library) with one service running the
 * daemon in the image of the repository's Dockerfile: folders mounted at their host paths, key
 * files read-only, and the environment variables the config names passed through by name.
 */
function composeService(options: ScheduleOptions, jobs: ReadonlyArray<{ job: ScheduledJob; expression: string }>, header: string): string {
  for (const file of options.keyFiles ?? [])
    if (!posix.isAbsolute(file)) throw new UsageError(`a key file must be an absolute path for compose, not '${file}'`);
  const folders = new Set([options.workingDir, posix.dirname(options.configPath), ...(options.mounts ?? [])].map((p) => posix.resolve(p)));
  const within = (p: string, other: string) => p !== other && p.startsWith(other === '/' ? '/' : `${other}/`);
  const volumes = [...folders].filter((p) => ![...folders].some((other) => within(p, other)));
  const keyFiles = [...new Set(options.keyFiles ?? [])].filter((file) => !volumes.some((folder) => within(file, folder)));
  const environment = [...(options.timeZone === undefined ? [] : [`TZ=${options.timeZone}`]), ...[...new Set(options.environment ?? [])].sort()];
  const service = {
    image: options.image ?? COMPOSE_IMAGE,
    ...(options.buildContext === undefined ? {} : { build: { context: options.buildContext } }),
    command: ['daemon', '--config', options.configPath], // the image's entrypoint is stowage
    working_dir: options.workingDir,
    ...(options.user === undefined ? {} : { user: options.user }),
    ...(environment.length ? { environment } : {}),
    // The long syntax: a path may hold a colon.
    volumes: [
      ...volumes.map((p) => ({ type: 'bind', source: p, target: p })),
      ...keyFiles.map((file) => ({ type: 'bind', source: file, target: file, read_only: true })),
    ],
    restart: 'unless-stopped',
    stop_grace_period: '2m',
    healthcheck: {
      test: ['CMD', 'stowage', 'status', '--config', options.configPath, '--quiet'],
      interval: '5m',
      timeout: '1m',
      start_period: '1m',
      retries: 1,
    },
  };
  const document = new Document({ services: { stowage: service } });
  document.commentBefore = [
    ` ${header}`,
    ' Add this service to the docker-compose.yml of the application. Folders are mounted at their',
    ' host paths, so the config and its paths work unchanged inside the container.',
    options.buildContext === undefined
      ? ` Build the image first, in a clone of the Stowage repository: docker build -t ${options.image ?? COMPOSE_IMAGE} .`
      : ' `docker compose build` builds the image from the Stowage repository (its Dockerfile).',
    ...(environment.length > (options.timeZone === undefined ? 0 : 1)
      ? [' The environment variables the config names are passed from where compose runs (their values are not printed here).']
      : []),
    ` The daemon runs the config's schedule: ${jobs.map((job) => `${job.job} ${job.expression}`).join(', ')}.`,
  ].join('\n');
  return document.toString({ lineWidth: 0 });
}

// ——— cron expressions ———

/** The times a cron expression matches, as sorted value lists (days and months from 1, Sunday = 0). */
interface CronFields {
  minutes: number[];
  hours: number[];
  days: number[];
  months: number[];
  weekdays: number[];
}

const FULL = { minutes: 60, hours: 24, days: 31, months: 12, weekdays: 7 } as const;
const LAST = { minutes: 59, hours: 23, days: 31, months: 12, weekdays: 6 } as const;
/** croner's mark of "every occurrence of this weekday in the month" (other values are `#n`/`L` forms). */
const EVERY_WEEKDAY = 0b111111;

/** Validates a five-field expression with croner and expands it; `?`, `L`, `W` and `#` are refused (not standard cron). */
function parseCron(job: ScheduledJob, expression: string): CronFields {
  const invalid = (why: string) => new UsageError(`the ${job} schedule '${expression}' is not a valid five-field cron expression: ${why}`);
  if (expression.trim().split(/\s+/).length !== 5) throw invalid('it needs minute, hour, day of month, month and day of week');
  let pattern: CronPattern;
  try {
    pattern = new CronPattern(expression.trim(), undefined, { mode: '5-part' });
  } catch (error) {
    throw invalid((error as Error).message.replace(/^CronPattern: /, ''));
  }
  const nonStandard =
    pattern.lastDayOfMonth ||
    pattern.lastWeekday ||
    pattern.nearestWeekdays.some(Boolean) ||
    pattern.dayOfWeek.some((bit) => bit !== 0 && bit !== EVERY_WEEKDAY);
  if (nonStandard || expression.includes('?')) throw invalid('?, L, W and # are not standard cron');
  const set = (bits: readonly number[], offset = 0) => bits.flatMap((bit, index) => (bit ? [index + offset] : []));
  return { minutes: set(pattern.minute), hours: set(pattern.hour), days: set(pattern.day, 1), months: set(pattern.month, 1), weekdays: set(pattern.dayOfWeek) };
}

function cannot(job: ScheduledJob, expression: string, format: string, why: string): UsageError {
  return new UsageError(`the ${job} schedule '${expression}' cannot be expressed for ${format}: ${why}; use crontab or a simpler expression`);
}

const every = (fields: CronFields, key: keyof CronFields) => fields[key].length === FULL[key];
const pad = (n: number) => String(n).padStart(2, '0');
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] as const;

/** `start` and `step` when `values` is start, start+step, … up to `max`, the field's last value. */
function progression(values: readonly number[], max: number): { start: number; step: number } | undefined {
  const [start, second] = values;
  if (start === undefined || second === undefined || values.length < 3) return undefined;
  const step = second - start;
  const expected = Array.from({ length: Math.floor((max - start) / step) + 1 }, (_, i) => start + i * step);
  return expected.length === values.length && expected.every((v, i) => v === values[i]) ? { start, step } : undefined;
}

/** One systemd calendar component: `*`, `00/15`, or a list of values and `a..b` ranges (weekdays: names). */
function calendarComponent(values: readonly number[], key: keyof CronFields, show: (n: number) => string): string {
  if (values.length === FULL[key]) return '*';
  const steps = key === 'weekdays' ? undefined : progression(values, LAST[key]);
  if (steps && steps.step > 1) return `${show(steps.start)}/${steps.step}`;
  const parts: string[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (values[j + 1] === values[j]! + 1) j++;
    parts.push(
      j - i >= 2
        ? `${show(values[i]!)}..${show(values[j]!)}`
        : values
            .slice(i, j + 1)
            .map(show)
            .join(','),
    );
    i = j + 1;
  }
  return parts.join(',');
}

/** systemd `OnCalendar=` for a cron expression: `0 2 * * *` → `*-*-* 02:00:00`, `0 3 * * 0` → `Sun *-*-* 03:00:00`. */
function toOnCalendar(job: ScheduledJob, expression: string, fields: CronFields): string {
  if (!every(fields, 'days') && !every(fields, 'weekdays'))
    throw cannot(job, expression, 'systemd', 'cron runs when either the day of month or the day of week matches');
  const weekdays = every(fields, 'weekdays') ? '' : `${calendarComponent(fields.weekdays, 'weekdays', (n) => WEEKDAYS[n]!)} `;
  const date = `*-${calendarComponent(fields.months, 'months', pad)}-${calendarComponent(fields.days, 'days', pad)}`;
  return `${weekdays}${date} ${calendarComponent(fields.hours, 'hours', pad)}:${calendarComponent(fields.minutes, 'minutes', pad)}:00`;
}

/** The `/sc … /st …` part of `schtasks /create` for a cron expression. */
function toSchtasks(job: ScheduledJob, expression: string, fields: CronFields): string {
  const fail = (why: string) => cannot(job, expression, 'schtasks', why);
  const { minutes, hours, days, weekdays, months } = fields;
  const anyDate = every(fields, 'days') && every(fields, 'weekdays') && every(fields, 'months');
  const minuteSteps = progression(minutes, 59);
  if (minuteSteps && minuteSteps.start < minuteSteps.step && 60 % minuteSteps.step === 0 && every(fields, 'hours') && anyDate) {
    return `/sc minute /mo ${minuteSteps.step} /st 00:${pad(minuteSteps.start)}`;
  }
  const [minute] = minutes;
  if (minutes.length !== 1 || minute === undefined) throw fail('it runs at several minutes of the hour');
  const hourSteps = every(fields, 'hours') ? { start: 0, step: 1 } : progression(hours, 23);
  if (hourSteps && hourSteps.start < hourSteps.step && 24 % hourSteps.step === 0 && anyDate) {
    return `/sc hourly${hourSteps.step > 1 ? ` /mo ${hourSteps.step}` : ''} /st ${pad(hourSteps.start)}:${pad(minute)}`;
  }
  const [hour] = hours;
  if (hours.length !== 1 || hour === undefined) throw fail('it runs at several hours of the day');
  const at = `/st ${pad(hour)}:${pad(minute)}`;
  if (anyDate) return `/sc daily ${at}`;
  if (every(fields, 'days') && every(fields, 'months')) return `/sc weekly /d ${weekdays.map((d) => WEEKDAYS[d]!.toUpperCase()).join(',')} ${at}`;
  if (every(fields, 'weekdays') && !every(fields, 'days')) {
    return `/sc monthly /d ${days.join(',')}${every(fields, 'months') ? '' : ` /m ${months.map((m) => MONTHS[m - 1]!).join(',')}`} ${at}`;
  }
  throw fail('it restricts both the month and the day of week, or both days');
}

// ——— quoting ———

function lines(...text: string[]): string {
  return `${text.join('\n')}\n`;
}

/** A word for sh. */
function shQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** `%` and `$` as systemd reads them literally. */
function systemdEscape(text: string): string {
  return text.replace(/%/g, '%%').replace(/\$/g, '$$$$');
}

/** A word of a systemd command line or setting. */
function systemdQuote(word: string): string {
  const escaped = systemdEscape(word);
  return /^[\w@%$+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replace(/[\\"]/g, '\\$&')}"`;
}

/** A word of a Windows command line (paths cannot contain `"`). */
function winQuote(word: string): string {
  return /^[^\s"&|<>^()]+$/.test(word) ? word : `"${word}"`;
}
