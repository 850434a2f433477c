import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_VERSION } from './version.js';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
let dir: string;

function schedulePrint(...args: string[]) {
  const result = spawnSync(join(REPO, 'node_modules/.bin/tsx'), [join(REPO, 'apps/cli/src/bin/stowage.ts'), 'schedule', 'print', ...args], { cwd: dir, encoding: 'utf8' });
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
    expect(jobs[1]).toContain(`&& ${process.execPath} --import tsx ${join(REPO, 'apps/cli/src/bin/stowage.ts')} backup --type incremental --config ${join(dir, 'stowage.config.json')}`);
    expect(schedulePrint('--format', 'systemd', '--time-zone', 'Europe/Paris')).toContain('OnCalendar=*-*-* 01:15:00 Europe/Paris');
  });

  it('runs npx -y @stowage/cli@<version> when asked, with node on the PATH', () => {
    const text = schedulePrint('--format', 'crontab', '--npx');
    expect(text).toContain(`\nPATH=${dirname(process.execPath)}:/usr/bin:/bin\n`);
    expect(text).toContain(`&& ${join(dirname(process.execPath), 'npx')} -y @stowage/cli@${CLI_VERSION} backup --type full --config`);
  });
});
