import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { Cron } from 'croner';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { UsageError } from './exit-codes.js';
import {
  COMPOSE_IMAGE,
  configSchedules,
  DEFAULT_ARCHIVE_SCHEDULE,
  DEFAULT_SCHEDULES,
  renderSchedule,
  type ScheduleFormat,
  type ScheduleOptions,
  type ScheduledJob,
} from './schedule.js';

const posixOptions: ScheduleOptions = {
  schedules: { ...DEFAULT_SCHEDULES, archive: DEFAULT_ARCHIVE_SCHEDULE },
  timeZone: 'Asia/Shanghai',
  stowageCommand: ['/usr/bin/node', '/opt/stowage/dist/bin/stowage.js'],
  configPath: '/srv/green house/stowage 100%.json',
  workingDir: '/srv/green house',
  logFile: '/var/log/stowage.log',
};

const windowsOptions: ScheduleOptions = {
  schedules: { ...DEFAULT_SCHEDULES, archive: DEFAULT_ARCHIVE_SCHEDULE },
  timeZone: 'Asia/Shanghai',
  stowageCommand: ['C:\\Program Files\\nodejs\\node.exe', 'C:\\stowage\\dist\\bin\\stowage.js'],
  configPath: 'C:\\GreaterWMS\\stowage.config.json',
  workingDir: 'C:\\GreaterWMS',
};

const JOB_ARGS: Record<ScheduledJob, string[]> = {
  full: ['backup', '--type', 'full'],
  incremental: ['backup', '--type', 'incremental'],
  cleanup: ['cleanup'],
  archive: ['archive', 'run'],
  verify: ['verify', '--all'],
  drill: ['drill'],
};

/** Whether croner accepts a five-field expression. */
function validCron(expression: string): boolean {
  try {
    new Cron(expression, { paused: true, mode: '5-part' });
    return true;
  } catch {
    return false;
  }
}

function usageError(format: ScheduleFormat, options: Partial<ScheduleOptions>): UsageError {
  try {
    renderSchedule(format, { ...posixOptions, ...options });
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return error as UsageError;
  }
  throw new Error('expected a UsageError');
}

/** Words of a Windows command line: `"` quotes, `\"` is a literal quote. */
function windowsWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '\\' && line[i + 1] === '"') {
      word = `${word ?? ''}"`;
      i++;
    } else if (c === '"') {
      quoted = !quoted;
      word ??= '';
    } else if (/\s/.test(c) && !quoted) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = `${word ?? ''}${c}`;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** Words of a systemd command line, with quotes, escapes and `%%`/`$$` undone. */
function systemdWords(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    (m[1] === undefined ? m[2]! : m[1].replace(/\\(.)/g, '$1')).replace(/%%/g, '%').replace(/\$\$/g, '$'),
  );
}

/** systemd units by path, each as sections of key → values. */
function systemdUnits(text: string): Map<string, Record<string, Record<string, string[]>>> {
  const units = new Map<string, Record<string, Record<string, string[]>>>();
  let sections: Record<string, Record<string, string[]>> | undefined;
  let section: Record<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    const file = /^# ==> (.+) <==$/.exec(line);
    if (file) units.set(file[1]!, (sections = {}));
    if (line.startsWith('#') || line.trim() === '') continue;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      expect(sections, `section outside a unit: ${line}`).toBeDefined();
      section = sections![header[1]!] = {};
      continue;
    }
    const eq = line.indexOf('=');
    expect(eq > 0 && section !== undefined, `not a setting: ${line}`).toBe(true);
    (section![line.slice(0, eq)] ??= []).push(line.slice(eq + 1));
  }
  return units;
}

describe('configSchedules', () => {
  it("takes the config's expressions and zone over the defaults, false turning a job off, then the overrides", () => {
    expect(configSchedules({ full: '0 1 * * *', drill: false, timeZone: 'Asia/Shanghai' })).toEqual({
      schedules: { ...DEFAULT_SCHEDULES, full: '0 1 * * *', drill: undefined },
      timeZone: 'Asia/Shanghai',
    });
    expect(configSchedules({ full: '0 1 * * *', timeZone: 'Asia/Shanghai' }, { schedules: { full: false }, timeZone: 'UTC' }).schedules.full).toBeUndefined();
    expect(configSchedules({ timeZone: 'Asia/Shanghai' }, { timeZone: 'UTC' }).timeZone).toBe('UTC');
    expect(configSchedules(undefined)).toEqual({ schedules: DEFAULT_SCHEDULES, timeZone: undefined });
  });

  it('runs the archive job daily after cleanup only when a destination has an archive policy, unless the config says otherwise', () => {
    expect(configSchedules(undefined).schedules.archive).toBeUndefined();
    expect(configSchedules(undefined, {}, true).schedules).toEqual({ ...DEFAULT_SCHEDULES, archive: '30 3 * * *' });
    expect(configSchedules({ archive: '0 6 * * *' }, {}, true).schedules.archive).toBe('0 6 * * *');
    expect(configSchedules({ archive: false }, {}, true).schedules.archive).toBeUndefined();
    expect(configSchedules({}, { schedules: { archive: false } }, true).schedules.archive).toBeUndefined();
  });

  it('keeps the default of a job whose key is present but undefined', () => {
    expect(configSchedules({ full: undefined, verify: false }).schedules).toEqual({ ...DEFAULT_SCHEDULES, verify: undefined });
  });
});

describe('the default schedule', () => {
  it('is the seed schedule plus verify and drill, all valid cron', () => {
    expect(DEFAULT_SCHEDULES).toEqual({ full: '0 2 * * *', incremental: '0 * * * *', cleanup: '0 3 * * 0', verify: '30 4 * * *', drill: '0 5 * * 1' });
    for (const expression of Object.values(DEFAULT_SCHEDULES)) expect(validCron(expression)).toBe(true);
  });
});

describe('crontab', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "stowage sched 'x' 100%-"));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('prints five-field lines whose commands run stowage with the config, in the app folder', async () => {
    const app = join(dir, 'app folder');
    await mkdir(app);
    const recorder = join(dir, 'record.cjs');
    await writeFile(
      recorder,
      "require('fs').appendFileSync(process.env.RECORD, JSON.stringify({ argv: process.argv.slice(2), cwd: process.cwd() }) + '\\n'); console.log('ran');",
    );
    const options: ScheduleOptions = {
      ...posixOptions,
      stowageCommand: [process.execPath, recorder],
      configPath: join(app, 'stowage.config.json'),
      workingDir: app,
      logFile: join(dir, 'cron.log'),
    };
    const text = renderSchedule('crontab', options);

    const lines = text.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
    const env = lines.filter((line) => /^[A-Z_]+=/.test(line));
    expect(env).toEqual(['CRON_TZ=Asia/Shanghai', 'TZ=Asia/Shanghai']);
    const jobs = lines
      .filter((line) => !env.includes(line))
      .map((line) => {
        const fields = line.split(/\s+/);
        return { expression: fields.slice(0, 5).join(' '), command: fields.slice(5).join(' ') };
      });
    expect(jobs.map((job) => job.expression)).toEqual(['0 2 * * *', '0 * * * *', '0 3 * * 0', '30 3 * * *', '30 4 * * *', '0 5 * * 1']);
    for (const job of jobs) expect(validCron(job.expression)).toBe(true);

    // Run each command as cron would: `\%` becomes `%`, the rest goes to sh.
    const record = join(dir, 'record.jsonl');
    for (const job of jobs) {
      const run = spawnSync('sh', ['-c', job.command.replace(/\\%/g, '%')], { env: { ...process.env, RECORD: record }, encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
    }
    const runs = (await readFile(record, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { argv: string[]; cwd: string });
    expect(runs).toEqual(Object.values(JOB_ARGS).map((args) => ({ argv: [...args, '--config', options.configPath, '--wait', '30m', '--quiet'], cwd: app })));
    expect((await readFile(options.logFile!, 'utf8')).match(/ran/g)).toHaveLength(6);
  });

  it('prints only the jobs given, without a zone when none is given', () => {
    const text = renderSchedule('crontab', { ...posixOptions, schedules: { full: '15 1 * * *' }, timeZone: undefined, logFile: undefined });
    expect(text).not.toMatch(/TZ=/);
    expect(text.split('\n').filter((line) => /^\d/.test(line))).toEqual([
      "15 1 * * * cd '/srv/green house' && /usr/bin/node /opt/stowage/dist/bin/stowage.js backup --type full --config '/srv/green house/stowage 100\\%.json' --wait 30m --quiet",
    ]);
  });
});

describe('schtasks', () => {
  /** The `schtasks /create` lines, each as its options. */
  function tasks(text: string): Array<Record<string, string | true>> {
    return text
      .split(/\r?\n/)
      .filter((line) => line.startsWith('schtasks '))
      .map((line) => {
        const words = windowsWords(line.replace(/%%/g, '%'));
        expect(words.slice(0, 2)).toEqual(['schtasks', '/create']);
        const options: Record<string, string | true> = {};
        for (let i = 2; i < words.length; i++) {
          const word = words[i]!;
          expect(word).toMatch(/^\/[a-z]+$/);
          const value = words[i + 1];
          if (value === undefined || value.startsWith('/')) options[word] = true;
          else options[word] = words[++i]!;
        }
        return options;
      });
  }

  it('prints a .bat of schtasks /create commands that run stowage with the config', () => {
    const text = renderSchedule('schtasks', windowsOptions);
    expect(text.split('\n')[0]).toBe('@echo off');
    const created = tasks(text);
    expect(created.map((t) => [t['/tn'], t['/sc'], t['/st'], t['/d'], t['/mo']])).toEqual([
      ['Stowage\\backup-full', 'daily', '02:00', undefined, undefined],
      ['Stowage\\backup-incremental', 'hourly', '00:00', undefined, undefined],
      ['Stowage\\cleanup', 'weekly', '03:00', 'SUN', undefined],
      ['Stowage\\archive', 'daily', '03:30', undefined, undefined],
      ['Stowage\\verify', 'daily', '04:30', undefined, undefined],
      ['Stowage\\drill', 'weekly', '05:00', 'MON', undefined],
    ]);
    Object.values(JOB_ARGS).forEach((args, index) => {
      const task = created[index]!;
      expect(task['/f']).toBe(true);
      expect(task['/ru']).toBe('SYSTEM');
      const run = task['/tr'] as string;
      expect(run.length).toBeLessThanOrEqual(261);
      expect(windowsWords(run)).toEqual([...(windowsOptions.stowageCommand as string[]), ...args, '--config', windowsOptions.configPath, '--wait', '30m']);
    });
  });

  it('appends the output to a log file through cmd', () => {
    const [task] = tasks(renderSchedule('schtasks', { ...windowsOptions, schedules: { full: '0 2 * * *' }, logFile: 'C:\\Stowage Logs\\backup 100%.log' }));
    const run = task!['/tr'] as string;
    const inner = /^cmd \/c "(.*)"$/.exec(run)?.[1];
    expect(windowsWords(inner!)).toEqual([
      ...(windowsOptions.stowageCommand as string[]),
      'backup',
      '--type',
      'full',
      '--config',
      windowsOptions.configPath,
      '--wait',
      '30m',
      '>>',
      'C:\\Stowage Logs\\backup 100%.log',
      '2>&1',
    ]);
  });

  it.each([
    ['*/15 * * * *', { '/sc': 'minute', '/mo': '15', '/st': '00:00' }],
    ['0 */6 * * *', { '/sc': 'hourly', '/mo': '6', '/st': '00:00' }],
    ['45 1-23/2 * * *', { '/sc': 'hourly', '/mo': '2', '/st': '01:45' }],
    ['0 12 * * 1-5', { '/sc': 'weekly', '/d': 'MON,TUE,WED,THU,FRI', '/st': '12:00' }],
    ['0 0 1,15 * *', { '/sc': 'monthly', '/d': '1,15', '/st': '00:00' }],
    ['30 2 1 JAN,JUL *', { '/sc': 'monthly', '/d': '1', '/m': 'JAN,JUL', '/st': '02:30' }],
  ])('converts %s', (expression, expected) => {
    const [task] = tasks(renderSchedule('schtasks', { ...windowsOptions, schedules: { full: expression } }));
    expect(task).toMatchObject(expected);
  });

  it.each(['0 2,14 * * *', '15,45 * * * *', '0 2 1 * 1', '0 2 * JAN 1'])('refuses %s, which one task cannot express', (expression) => {
    expect(usageError('schtasks', { ...windowsOptions, schedules: { full: expression } }).message).toMatch(
      new RegExp(`^the full schedule '${expression.replace(/\*/g, '\\*')}' cannot be expressed for schtasks: `),
    );
  });

  it('refuses a command longer than schtasks accepts', () => {
    const deep = `C:\\${'very long folder name\\'.repeat(12)}stowage.config.json`;
    expect(usageError('schtasks', { ...windowsOptions, configPath: deep }).message).toMatch(/more than the 261 that schtasks \/tr accepts/);
  });
});

describe('systemd', () => {
  it('prints a service and a timer per job, with absolute paths and the zone', () => {
    const units = systemdUnits(renderSchedule('systemd', posixOptions));
    const calendars: Record<ScheduledJob, string> = {
      full: '*-*-* 02:00:00',
      incremental: '*-*-* *:00:00',
      cleanup: 'Sun *-*-* 03:00:00',
      archive: '*-*-* 03:30:00',
      verify: '*-*-* 04:30:00',
      drill: 'Mon *-*-* 05:00:00',
    };
    const names: Record<ScheduledJob, string> = {
      full: 'backup-full',
      incremental: 'backup-incremental',
      cleanup: 'cleanup',
      archive: 'archive',
      verify: 'verify',
      drill: 'drill',
    };
    expect([...units.keys()]).toEqual(
      Object.values(names).flatMap((name) => [`/etc/systemd/system/stowage-${name}.service`, `/etc/systemd/system/stowage-${name}.timer`]),
    );
    for (const job of Object.keys(names) as ScheduledJob[]) {
      const service = units.get(`/etc/systemd/system/stowage-${names[job]}.service`)!;
      expect(Object.keys(service)).toEqual(['Unit', 'Service']);
      expect(service.Service).toMatchObject({ Type: ['oneshot'], Environment: ['TZ=Asia/Shanghai'], StandardOutput: ['append:/var/log/stowage.log'] });
      expect(service.Service!.WorkingDirectory).toEqual([posixOptions.workingDir]);
      const exec = systemdWords(service.Service!.ExecStart![0]!);
      expect(exec).toEqual([...(posixOptions.stowageCommand as string[]), ...JOB_ARGS[job], '--config', posixOptions.configPath, '--wait', '30m']);
      expect(isAbsolute(exec[0]!)).toBe(true);

      const timer = units.get(`/etc/systemd/system/stowage-${names[job]}.timer`)!;
      expect(Object.keys(timer)).toEqual(['Unit', 'Timer', 'Install']);
      expect(timer.Timer).toEqual({ OnCalendar: [`${calendars[job]} Asia/Shanghai`], Persistent: ['true'] });
      expect(timer.Install).toEqual({ WantedBy: ['timers.target'] });
    }
  });

  it.each([
    ['*/15 * * * *', '*-*-* *:00/15:00'],
    ['0 */6 * * *', '*-*-* 00/6:00:00'],
    ['0 8-18 * * 1-5', 'Mon..Fri *-*-* 08..18:00:00'],
    ['0 0 1,15 * *', '*-*-01,15 00:00:00'],
    ['5,35 1-3,20 * JAN,JUL *', '*-01,07-* 01..03,20:05,35:00'],
    ['10 4 * * 6,0', 'Sun,Sat *-*-* 04:10:00'],
    ['0 3 */2 * *', '*-*-01/2 03:00:00'],
  ])('converts %s to OnCalendar=%s', (expression, calendar) => {
    const units = systemdUnits(renderSchedule('systemd', { ...posixOptions, schedules: { verify: expression }, timeZone: undefined }));
    expect(units.get('/etc/systemd/system/stowage-verify.timer')?.Timer?.OnCalendar).toEqual([calendar]);
  });

  it('refuses an expression restricting both days, which cron joins with or', () => {
    expect(usageError('systemd', { schedules: { cleanup: '0 3 1 * 0' } }).message).toBe(
      "the cleanup schedule '0 3 1 * 0' cannot be expressed for systemd: cron runs when either the day of month or the day of week matches; use crontab or a simpler expression",
    );
  });

  it('passes systemd-analyze verify', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-units-'));
    try {
      const script = join(dir, 'stowage.js');
      await writeFile(script, '');
      const text = renderSchedule('systemd', {
        ...posixOptions,
        stowageCommand: [process.execPath, script],
        configPath: join(dir, 'stowage.config.json'),
        workingDir: dir,
        logFile: join(dir, 'stowage 100%.log'),
        searchPath: [dirname(process.execPath), '/usr/bin'],
      });
      const files: string[] = [];
      for (const [path, unit] of text
        .split(/^# ==> /m)
        .slice(1)
        .map((chunk) => chunk.split(' <==\n'))) {
        files.push(join(dir, basename(path!)));
        await writeFile(files.at(-1)!, unit!);
      }
      expect(files).toHaveLength(12);
      const verify = spawnSync('systemd-analyze', ['verify', '--man=no', ...files], { encoding: 'utf8' });
      expect(verify.error, 'systemd-analyze is installed (.ci/run installs systemd)').toBeUndefined();
      expect(verify.stderr.split('\n').filter((line) => line.includes(dir))).toEqual([]);
      expect(verify.status, verify.stderr).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('sets PATH when asked (npx and its bins need node there)', () => {
    const units = systemdUnits(renderSchedule('systemd', { ...posixOptions, searchPath: ['/opt/node 24/bin', '/usr/bin'] }));
    expect(units.get('/etc/systemd/system/stowage-backup-full.service')?.Service?.Environment).toEqual([
      'TZ=Asia/Shanghai',
      '"PATH=/opt/node 24/bin:/usr/bin"',
    ]);
    expect(renderSchedule('crontab', { ...posixOptions, searchPath: ['/opt/node/bin', '/usr/bin', '/bin'] })).toContain('\nPATH=/opt/node/bin:/usr/bin:/bin\n');
    expect(usageError('crontab', { searchPath: ['bin'] }).message).toBe("a PATH folder must be an absolute path for crontab, not 'bin'");
  });

  it('runs the service as the given user', () => {
    const units = systemdUnits(renderSchedule('systemd', { ...posixOptions, schedules: { full: '0 2 * * *' }, user: 'greaterwms' }));
    expect(units.get('/etc/systemd/system/stowage-backup-full.service')?.Service?.User).toEqual(['greaterwms']);
  });
});

describe('compose', () => {
  const bind = (path: string) => ({ type: 'bind', source: path, target: path });

  it('prints a service running the daemon of the Dockerfile image with the folders mounted at their paths', () => {
    const options: ScheduleOptions = { ...posixOptions, mounts: ['/srv/backups', '/srv/green house/media', '/srv/backups/'] };
    const text = renderSchedule('compose', options);
    expect(text).toMatch(/^# Stowage \S+ schedule for /);
    expect(text).toContain(`# Build the image first, in a clone of the Stowage repository: docker build -t ${COMPOSE_IMAGE} .`);
    const document = parseYaml(text) as { services: Record<string, Record<string, unknown>> };
    expect(Object.keys(document.services)).toEqual(['stowage']);
    expect(document.services.stowage).toEqual({
      image: COMPOSE_IMAGE,
      command: ['daemon', '--config', posixOptions.configPath],
      working_dir: posixOptions.workingDir,
      environment: ['TZ=Asia/Shanghai'],
      volumes: [bind('/srv/green house'), bind('/srv/backups')],
      restart: 'unless-stopped',
      stop_grace_period: '2m',
      healthcheck: {
        test: ['CMD', 'stowage', 'status', '--config', posixOptions.configPath, '--quiet'],
        interval: '5m',
        timeout: '1m',
        start_period: '1m',
        retries: 1,
      },
    });
  });

  it('passes the environment variables by name only, mounts key files read-only, and builds from a repository', () => {
    const options: ScheduleOptions = {
      ...posixOptions,
      timeZone: undefined,
      environment: ['STOWAGE_PASSPHRASE', 'OSS_ACCESS_KEY_ID', 'STOWAGE_PASSPHRASE'],
      keyFiles: ['/etc/stowage/ops-public.asc', '/srv/green house/keys/backup.key'],
      buildContext: '/opt/src/stowage',
    };
    const text = renderSchedule('compose', options);
    const service = (parseYaml(text) as { services: { stowage: Record<string, unknown> } }).services.stowage;
    expect(service.environment).toEqual(['OSS_ACCESS_KEY_ID', 'STOWAGE_PASSPHRASE']);
    expect(service.volumes).toEqual([bind('/srv/green house'), { ...bind('/etc/stowage/ops-public.asc'), read_only: true }]);
    expect(service.build).toEqual({ context: '/opt/src/stowage' });
    expect(text).toContain('their values are not printed here');
    expect(usageError('compose', { keyFiles: ['backup.key'] }).message).toBe("a key file must be an absolute path for compose, not 'backup.key'");
  });

  it('quotes whatever a path holds: the YAML reads back the same strings', () => {
    const odd = '/srv/it\'s: #1 "quoted" [x] {y}';
    const service = (
      parseYaml(renderSchedule('compose', { ...posixOptions, configPath: `${odd}/stowage.config.yaml`, workingDir: odd })) as {
        services: { stowage: Record<string, unknown> };
      }
    ).services.stowage;
    expect(service.working_dir).toBe(odd);
    expect(service.volumes).toEqual([bind(odd)]);
  });
});

describe('bad input', () => {
  it.each([
    ['61 * * * *', /Invalid value for minute/],
    ['0 2 * *', /needs minute, hour, day of month, month and day of week/],
    ['@daily', /needs minute/],
    ['0 2 L * *', /not standard cron/],
    ['0 2 * * 1#2', /not standard cron/],
    ['0 2 ? * *', /not standard cron/],
  ])('refuses the cron expression %s', (expression, why) => {
    const error = usageError('crontab', { schedules: { full: expression } });
    expect(error.message).toMatch(/^the full schedule '.*' is not a valid five-field cron expression: /);
    expect(error.message).toMatch(why);
  });

  it('refuses an unknown time zone and relative paths', () => {
    expect(usageError('systemd', { timeZone: 'Asia/Atlantis' }).message).toMatch(/unknown time zone 'Asia\/Atlantis'/);
    expect(usageError('systemd', { stowageCommand: 'stowage' }).message).toBe("the stowage command must be an absolute path for systemd, not 'stowage'");
    expect(usageError('crontab', { configPath: 'stowage.config.json' }).message).toMatch(/^the config path must be an absolute path/);
    expect(usageError('compose', { mounts: ['backups'] }).message).toMatch(/^a mount must be an absolute path/);
  });
});
