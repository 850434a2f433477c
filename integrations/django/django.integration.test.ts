/*
 * The Django app end to end: pip-installed into a venv (Debian's python3-django, no PyPI), a small
 * project (two apps, an sqlite3 database, media files), every seed command through
 * `python manage.py …` against the repository's real CLI, the pre-migrate hot backup with real new
 * migrations, and the refusals (missing or old CLI, a non-SQLite engine).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { acquireSourceLock } from '@stowage/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const REPO = resolve(HERE, '../..');
/** Debian's python3, which sees python3-django (a pyenv python3 on PATH would not). */
const PYTHON = process.env.STOWAGE_TEST_PYTHON ?? '/usr/bin/python3';
const CLI = [join(REPO, 'node_modules', '.bin', 'tsx'), join(REPO, 'apps/cli/src/bin/stowage.ts')];
const SMTP_PASSWORD = 'smtp-secret-7f3a9c';

let dir: string;
let app: string;
let venvPython: string;

function sh(command: string, args: string[], options: { cwd?: string; input?: string } = {}) {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? app,
    encoding: 'utf8',
    input: options.input ?? '',
    env: { ...process.env, STOWAGE_CONFIG: '', PYTHONDONTWRITEBYTECODE: '1' },
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, output: result.stdout + result.stderr };
}
/** `python manage.py ARGS` in the project, with its installed stowage_django. */
const manage = (...args: string[]) => sh(venvPython, ['manage.py', ...args]);
const managed = (settings: string, ...args: string[]) => manage(...args, `--settings=proj.${settings}`);
const orm = (code: string) => manage('shell', '-v', '0', '-c', `from shop.models import Item\n${code}`);
const sql = (database: string, query: string) => sh('sqlite3', [database, query]).stdout.trim();
const sha256 = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
const hotManifests = async () => (await readdir(join(app, 'backups', 'hot'))).filter((name) => name.endsWith('.manifest.json'));

const SETTINGS = `
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = 'not-a-secret'
INSTALLED_APPS = ['django.contrib.contenttypes', 'shop', 'stock', 'stowage_django']
DATABASES = {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': BASE_DIR / 'db.sqlite3'}}
DEFAULT_AUTO_FIELD = 'django.db.models.AutoField'
USE_TZ = True
MEDIA_ROOT = BASE_DIR / 'media'
ADMINS = [('Ops', 'ops@example.com')]
EMAIL_HOST = '127.0.0.1'
EMAIL_PORT = 9
EMAIL_USE_TLS = True
EMAIL_HOST_USER = 'backup'
EMAIL_HOST_PASSWORD = '${SMTP_PASSWORD}'
STOWAGE_CLI = ${JSON.stringify(CLI)}
STOWAGE = {
    'destinations': [{'name': 'local', 'url': BASE_DIR / 'backups'}],
    'retention': {'hot': {'keepLast': 1}},
    'hot_backup_before_migrate': True,
}
`;
const model = (name: string, extra = '') =>
  `from django.db import models\n\nclass ${name}(models.Model):\n    name = models.CharField(max_length=50)\n    qty = models.IntegerField(default=0)\n${extra}`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-django-'));
  // Installed as an operator would: pip from the source folder (a copy, so no build files land in the repo).
  await cp(HERE, join(dir, 'src'), { recursive: true, filter: (path) => !/\.ts$|__pycache__|\.egg-info|\/build$/.test(path) });
  // Debian's pip (python3-pip) installs into the venv; --without-pip spares ensurepip's seconds.
  expect(sh(PYTHON, ['-m', 'venv', '--system-site-packages', '--without-pip', join(dir, 'venv')], { cwd: dir }).code).toBe(0);
  venvPython = join(dir, 'venv', 'bin', 'python');
  // Django >= 3.2 is satisfied by Debian's package, or by STOWAGE_TEST_DJANGO_WHEEL (another version, with its dependencies beside it).
  const wheel = process.env.STOWAGE_TEST_DJANGO_WHEEL;
  const pip = sh(
    venvPython,
    [
      '-m',
      'pip',
      'install',
      '--no-build-isolation',
      '--no-index',
      '--disable-pip-version-check',
      '-q',
      ...(wheel ? ['--find-links', dirname(wheel), wheel] : []),
      join(dir, 'src'),
    ],
    { cwd: dir },
  );
  expect(pip.stderr).not.toMatch(/error/i);
  expect(pip.code).toBe(0);

  app = join(dir, 'wms');
  for (const folder of ['proj', 'shop/migrations', 'stock/migrations', 'media/photos']) await mkdir(join(app, folder), { recursive: true });
  await writeFile(
    join(app, 'manage.py'),
    "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'proj.settings')\nfrom django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n",
  );
  await writeFile(join(app, 'proj/settings.py'), SETTINGS);
  const variant = (name: string, body: string) => writeFile(join(app, `proj/${name}.py`), `from .settings import *\n${body}\n`);
  await variant('settings_nocli', "STOWAGE_CLI = '/nonexistent/stowage'");
  await variant('settings_oldcli', `STOWAGE_CLI = '${join(dir, 'old-stowage')}'`);
  await variant('settings_pg', "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'wms'}}");
  await variant(
    'settings_pg_nocli',
    "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'wms'}}\nSTOWAGE_CLI = '/nonexistent/stowage'",
  );
  await variant('settings_continue', "STOWAGE = {**STOWAGE, 'hot_backup_failure_stops_migrate': False}");
  await writeFile(join(dir, 'old-stowage'), '#!/bin/sh\necho 0.0.9\n');
  await chmod(join(dir, 'old-stowage'), 0o755);
  for (const [pkg, name] of [
    ['shop', 'Item'],
    ['stock', 'Bin'],
  ] as const) {
    for (const file of ['__init__.py', 'migrations/__init__.py']) await writeFile(join(app, pkg, file), '');
    await writeFile(join(app, pkg, 'models.py'), model(name));
  }
  await writeFile(join(app, 'media/photos/a.jpg'), 'photo v1');
  expect(manage('makemigrations', 'shop', 'stock', '-v0').code).toBe(0);
}, 180_000);
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('python manage.py db_backup / db_restore over the Stowage CLI', () => {
  it('the pure translation passes its Python unit tests', () => {
    const unit = sh(PYTHON, ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.'], { cwd: HERE });
    expect(unit.stderr).toMatch(/Ran \d+ tests[\s\S]*OK/);
    expect(unit.code).toBe(0);
  });

  let fullId: string;
  let incId: string;
  it('check passes; the first migrate takes no hot backup (no data yet); full, then incremental after ORM writes', async () => {
    const check = manage('check');
    expect(check.output).toContain('System check identified no issues');
    expect(check.code).toBe(0);
    const first = manage('migrate', '--skip-checks');
    expect(first.code).toBe(0);
    expect(first.output).not.toContain('Stowage');
    expect(orm("Item.objects.bulk_create([Item(name=f'sku{i}', qty=i) for i in range(50)])").code).toBe(0);

    const full = manage('db_backup', '--type=full');
    expect(full.code).toBe(0);
    fullId = /(full_backup_\d{8}_\d{6}): /.exec(full.stdout)![1]!;
    expect(full.stdout).toContain('stored and verified at: local');
    const written = join(app, '.stowage-django.json');
    const config = await readFile(written, 'utf8');
    expect(config).not.toContain(SMTP_PASSWORD); // the CLI got it through its environment only
    expect(JSON.parse(config)).toMatchObject({
      source: { database: join(app, 'db.sqlite3'), files: { media: { path: 'media' } } },
      alerts: { channels: [{ passwordEnv: 'STOWAGE_EMAIL_HOST_PASSWORD', secure: 'starttls' }] },
    });
    expect((await stat(written)).mode & 0o777).toBe(0o600);

    expect(orm("Item.objects.bulk_create([Item(name=f'new{i}') for i in range(5)]); Item.objects.filter(name='sku1').update(qty=999)").code).toBe(0);
    await writeFile(join(app, 'media/photos/a.jpg'), 'photo v2');
    const inc = manage('db_backup', '--type=incremental');
    expect(inc.code).toBe(0);
    incId = /(inc_backup_\d{8}_\d{6}): \d+ of \d+ pages changed since (\S+),/.exec(inc.stdout)![1]!;
    expect(inc.stdout).toContain(`changed since ${fullId}`);
  });

  it('list, verify, validate and a test-mode restore (the live database untouched), then --verify --test-mode', async () => {
    const list = manage('db_restore', '--list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${fullId}\\s+full[\\s\\S]*${incId}\\s+incremental`));
    const verify = manage('db_backup', `--verify=backups/full/${fullId}.sqlite3`);
    expect(verify.stdout).toContain(`${fullId}: OK`);
    expect(verify.code).toBe(0);
    const validate = manage('db_backup', `--validate-data=backups/incremental/${incId}.sqlite3`);
    expect(validate.stdout).toContain(`${incId}: data valid`);
    expect(validate.code).toBe(0);
    const live = await sha256(join(app, 'db.sqlite3'));
    const test = manage('db_restore', `--file=${fullId}`, '--test-mode');
    expect(test.code).toBe(0);
    expect(test.stdout).toContain('test mode: the live data was not touched');
    expect(await sha256(join(app, 'db.sqlite3'))).toBe(live);
    const checked = manage('db_restore', '--verify', '--test-mode');
    expect(checked.stdout).toMatch(new RegExp(`restored from ${fullId}\\): OK`));
    expect(checked.code).toBe(0);
    const bad = manage('db_backup', '--verify=not-a-backup.txt');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /stowage: error: 'not-a-backup.txt' is not a Stowage backup name[\s\S]*CommandError: stowage verify exited with code 1 \(failed\)/,
    );
  });

  it('migrate with new migrations of two apps: one hot backup naming the plan; a failed one stops the migration unless the setting says otherwise', async () => {
    await writeFile(join(app, 'shop/models.py'), model('Item', '    price = models.IntegerField(default=0)\n'));
    await writeFile(join(app, 'stock/models.py'), model('Bin', '    aisle = models.CharField(max_length=5, default="A")\n'));
    expect(manage('makemigrations', 'shop', 'stock', '-v0').code).toBe(0);
    const applied = () =>
      sql(join(app, 'db.sqlite3'), "select app || '.' || name from django_migrations where app in ('shop', 'stock') and name like '0002%' order by app");

    const lock = await acquireSourceLock(join(app, '.stowage'), { operation: 'backup', command: 'cron backup (test)' });
    try {
      const stopped = manage('migrate', '--skip-checks');
      expect(stopped.code).toBe(1);
      expect(stopped.stderr).toMatch(
        /holds the lock on this source[\s\S]*CommandError: the hot backup before migrate failed \(stowage exited with code 1\), so nothing was migrated/,
      );
      expect(applied()).toBe('');
    } finally {
      await lock.release();
    }

    const migrated = manage('migrate', '--skip-checks');
    expect(migrated.code).toBe(0);
    expect(migrated.stdout.match(/Stowage: hot backup/g)).toHaveLength(1);
    expect(migrated.stdout).toContain('Stowage: hot backup before migrate: shop.0002_item_price, stock.0002_bin_aisle');
    expect(applied()).toBe('shop.0002_item_price\nstock.0002_bin_aisle');
    const hot = await hotManifests();
    expect(hot).toHaveLength(1);
    expect(JSON.parse(await readFile(join(app, 'backups/hot', hot[0]!), 'utf8'))).toMatchObject({
      type: 'hot',
      reason: 'before migrate: shop.0002_item_price, stock.0002_bin_aisle',
    });

    const again = await acquireSourceLock(join(app, '.stowage'), { operation: 'backup', command: 'cron backup (test)' });
    try {
      const anyway = managed('settings_continue', 'migrate', 'shop', '0001', '--skip-checks');
      expect(anyway.code).toBe(0);
      expect(anyway.stderr).toContain("migrating anyway, as STOWAGE['hot_backup_failure_stops_migrate'] is False");
      expect(anyway.stdout).toContain('Stowage: hot backup before migrate: shop.0002_item_price (unapply)');
      expect(applied()).toBe('stock.0002_bin_aisle');
    } finally {
      await again.release();
    }
    expect(await hotManifests()).toHaveLength(1);
    expect(manage('migrate', '--skip-checks', '-v0').output).toBe(''); // re-applies shop.0002 (a second hot backup, quietly)
    expect(await hotManifests()).toHaveLength(2);
  });

  it('a live restore asks first, keeps the damaged copy, and the ORM reads the restored data; restore --verify; cleanup', async () => {
    const cancelled = sh(venvPython, ['manage.py', 'db_restore', `--file=${fullId}`], { input: 'no\n' });
    expect(cancelled.code).toBe(1);
    expect(cancelled.output).toContain('Stop the application before a live restore');
    expect(cancelled.stderr).toContain('CommandError: restore cancelled; nothing was changed');
    expect(orm('print(Item.objects.count())').stdout.trim()).toBe('55');

    const restored = manage('db_restore', `--file=backups/full/${fullId}.sqlite3`, '--noinput');
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain(`restored ${fullId}`);
    const damaged = (await readdir(app)).filter((name) => /^db\.sqlite3\.damaged_\d{8}_\d{6}$/.test(name));
    expect(damaged).toHaveLength(1);
    expect(sql(join(app, damaged[0]!), 'select count(*) from shop_item')).toBe('55');
    expect(orm("print(Item.objects.count(), Item.objects.values_list('qty', flat=True).get(name='sku1'))").stdout.trim()).toBe('50 1');
    expect(await readFile(join(app, 'media/photos/a.jpg'), 'utf8')).toBe('photo v1');
    const verified = manage('db_restore', '--verify');
    expect(verified.stdout).toMatch(new RegExp(`restored from ${fullId}\\): OK`));
    expect(verified.code).toBe(0);

    const [olderHot] = await hotManifests();
    const cleanup = manage('db_backup', '--cleanup');
    expect(cleanup.code).toBe(0);
    expect(cleanup.stdout).toContain(`removed local: ${olderHot!.replace('.manifest.json', '')}`); // hot keeps the newest 1
    expect(await hotManifests()).toHaveLength(1);
  });

  it('a missing or too old CLI and a non-SQLite engine: a clear error (exit 2) and manage.py check reports them', () => {
    const missing = managed('settings_nocli', 'db_backup', '--type=full');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(
      "CommandError: the Stowage CLI '/nonexistent/stowage' was not found: install it (npm i -g @stowage/cli) or set STOWAGE_CLI to its path",
    );
    const old = managed('settings_oldcli', 'db_restore', '--list');
    expect(old.code).toBe(2);
    expect(old.stderr).toMatch(/CommandError: the Stowage CLI .*old-stowage is version 0\.0\.9; this app needs 0\.1\.0 or newer/);
    const oldCheck = managed('settings_oldcli', 'check');
    expect(oldCheck.code).toBe(1);
    expect(oldCheck.stderr).toContain('(stowage.E003) the Stowage CLI');

    const postgres = managed('settings_pg', 'db_backup', '--type=full');
    expect(postgres.code).toBe(2);
    expect(postgres.stderr).toContain(
      "CommandError: DATABASES['default'] uses the engine django.db.backends.postgresql: Stowage backs up SQLite databases only",
    );
    const check = managed('settings_pg_nocli', 'check');
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(
      /\(stowage\.E001\) DATABASES\['default'\] uses the engine django\.db\.backends\.postgresql[\s\S]*\(stowage\.E002\) the Stowage CLI '\/nonexistent\/stowage' was not found/,
    );
  });
});
