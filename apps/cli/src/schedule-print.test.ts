import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CLI_VERSION } from './version.js';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
let dir: string;

function schedulePrint(...args: string[]) {
  const result = spawnSync(join(REPO, 'node_modules/.bin/tsx'), [join(REPO, 'apps/cli/src/bin/stowage.ts'), 'schedule', 'print', ...args], {
    cwd: dir,
    encoding: 'utf8',
  });
  expect(result.status, result.stderr).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-schedule-print-'));
  const config = {
    source: { database: 'db.sqlite3' },
    destinations: [{ name: 'local', url: 'backups' }],
    schedules: { full: '15 1 * * *', incremental: '*/30 * * * *', cleanup: false, verify: false, drill: false, timeZone: 'Asia/Shanghai' },
  };
  await writeFile(join(dir, 'stowage.config.json'), JSON.stringify(config));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('stowage schedule print', () => {
  it("prints the config's schedules in its time zone, running node and the bin by absolute paths", () => {
    const text = schedulePrint('--format', 'crontab');
    expect(text).toContain('\nCRON_TZ=Asia/Shanghai\nTZ=Asia/Shanghai\n');
    const jobs = text.split('\n').filter((line) => /^[\d*]/.test(line));
    expect(jobs.map((line) => line.split(' ').slice(0, 5).join(' '))).toEqual(['15 1 * * *', '*/30 * * * *']);
    expect(jobs[1]).toContain(
      `&& ${process.execPath} --import tsx ${join(REPO, 'apps/cli/src/bin/stowage.ts')} backup --type incremental --config ${join(dir, 'stowage.config.json')}`,
    );
    expect(schedulePrint('--format', 'systemd', '--time-zone', 'Europe/Paris')).toContain('OnCalendar=*-*-* 01:15:00 Europe/Paris');
  });

  it('runs npx -y @stowage/cli@<version> when asked, with node on the PATH', () => {
    const text = schedulePrint('--format', 'crontab', '--npx');
    expect(text).toContain(`\nPATH=${dirname(process.execPath)}:/usr/bin:/bin\n`);
    expect(text).toContain(`&& ${join(dirname(process.execPath), 'npx')} -y @stowage/cli@${CLI_VERSION} backup --type full --config`);
  });
});

describe('stowage schedule print: the archive job', () => {
  async function configIn(name: string, config: object): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, JSON.stringify({ source: { database: 'db.sqlite3' }, ...config }));
    return path;
  }
  const s3 = { name: 's3', url: 's3://bucket/prefix', options: { endpoint: 'http://127.0.0.1:1', region: 'us-east-1' } };

  it('runs `archive run` daily at 03:30, after cleanup, when a destination has an archive policy, and not otherwise', async () => {
    const archived = await configIn('archived.json', { destinations: [{ ...s3, archive: { after: '30d', storageClass: 'DEEP_ARCHIVE' } }] });
    const crontab = schedulePrint('--format', 'crontab', '--config', archived);
    const jobs = crontab.split('\n').filter((line) => /^[\d*]/.test(line));
    expect(jobs.map((line) => line.split(' ').slice(0, 5).join(' '))).toEqual(['0 2 * * *', '0 * * * *', '0 3 * * 0', '30 3 * * *', '30 4 * * *', '0 5 * * 1']);
    expect(jobs[3]).toContain(` archive run --config ${archived} --wait 30m --quiet`);
    expect(schedulePrint('--format', 'systemd', '--config', archived)).toContain('ExecStart=');
    expect(schedulePrint('--format', 'compose', '--config', archived)).toContain('archive 30 3 * * *');

    const hot = await configIn('hot.json', { destinations: [s3] });
    expect(schedulePrint('--format', 'crontab', '--config', hot)).not.toContain('archive run');
    const moved = await configIn('moved.json', {
      destinations: [{ ...s3, archive: { after: '30d', storageClass: 'DEEP_ARCHIVE' } }],
      schedules: { archive: '0 6 * * 6' },
    });
    expect(schedulePrint('--format', 'crontab', '--config', moved)).toMatch(/^0 6 \* \* 6 .* archive run /m);
  });

  it('refuses schedules.archive when no destination has an archive policy', async () => {
    const config = await configIn('no-policy.json', { destinations: [s3], schedules: { archive: '30 3 * * *' } });
    const result = spawnSync(
      join(REPO, 'node_modules/.bin/tsx'),
      [join(REPO, 'apps/cli/src/bin/stowage.ts'), 'schedule', 'print', '--format', 'crontab', '--config', config],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/schedules\.archive: no destination has an archive policy to run/);
  });
});

describe('stowage schedule print --format compose', () => {
  it('passes every environment variable the config names without their values, mounts key files, and builds from this repository', async () => {
    const app = join(dir, 'compose');
    await mkdir(join(app, 'keys'), { recursive: true });
    await writeFile(
      join(app, 'stowage.config.yaml'),
      [
        'source: { database: db.sqlite3 }',
        'destinations:',
        '  - { name: local, url: /srv/backups }',
        '  - { name: s3, url: "s3://bucket/prefix", options: { endpoint: "http://127.0.0.1:1", region: us-east-1 } }',
        '  - { name: oss, url: "oss://bucket/prefix", options: { endpoint: "http://127.0.0.1:2", region: oss-cn-hangzhou, accessKeyIdEnv: WMS_OSS_ID, accessKeySecretEnv: WMS_OSS_SECRET } }',
        'encryption: { mode: public-key, recipients: [/etc/stowage/ops-public.asc], privateKeyEnv: STOWAGE_PRIVATE_KEY }',
        'alerts: { channels: [{ type: webhook, url: "https://hooks.example/x", secretEnv: HOOK_SECRET }] }',
        'schedules: { verify: false, drill: false, timeZone: Asia/Shanghai }',
        '',
      ].join('\n'),
    );
    const result = spawnSync(
      join(REPO, 'node_modules/.bin/tsx'),
      [join(REPO, 'apps/cli/src/bin/stowage.ts'), 'schedule', 'print', '--format', 'compose', '--config', join(app, 'stowage.config.yaml')],
      {
        cwd: app,
        encoding: 'utf8',
        env: { PATH: process.env.PATH, HOME: process.env.HOME }, // none of the named variables is set
      },
    );
    expect(result.status, result.stderr).toBe(0);
    const service = (parseYaml(result.stdout) as { services: { stowage: Record<string, unknown> } }).services.stowage;
    expect(service).toMatchObject({
      image: `stowage:${CLI_VERSION}`,
      build: { context: REPO },
      command: ['daemon', '--config', join(app, 'stowage.config.yaml')],
    });
    expect(service.environment).toEqual([
      'TZ=Asia/Shanghai',
      'AWS_ACCESS_KEY_ID',
      'AWS_REGION',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'HOOK_SECRET',
      'STOWAGE_PRIVATE_KEY',
      'WMS_OSS_ID',
      'WMS_OSS_SECRET',
    ]);
    expect(service.volumes).toEqual([
      { type: 'bind', source: app, target: app },
      { type: 'bind', source: '/srv/backups', target: '/srv/backups' },
      { type: 'bind', source: '/etc/stowage/ops-public.asc', target: '/etc/stowage/ops-public.asc', read_only: true },
    ]);
  });
});
