import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfigText } from './config.js';
import { CoreErrorCode } from './errors.js';

const dir = await mkdtemp(join(tmpdir(), 'stowage-config-file-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('config files', () => {
  it('reads YAML with comments, resolving paths from its folder like JSON', async () => {
    const path = join(dir, 'stowage.config.yaml');
    await writeFile(path, '# GreaterWMS\nsource:\n  database: db.sqlite3 # the live db\ndestinations:\n  - name: local\n    url: backups\n');
    const config = await loadConfig(path);
    expect(config.source.database).toBe(join(dir, 'db.sqlite3'));
    expect(config.destinations).toEqual([{ name: 'local', url: 'backups' }]);
  });

  it.each([
    ['stowage.config.yaml', 'source:\n  database: db.sqlite3\ndestinations: [\n', /^\S+stowage\.config\.yaml:4:1: not valid YAML: /],
    ['stowage.config.yaml', 'source:\n  database: a\n  database: b\n', /^\S+stowage\.config\.yaml:3:3: not valid YAML: Map keys must be unique/],
    ['stowage.config.json', '{\n  "source": {\n    "database": "db.sqlite3",\n  }\n}\n', /^\S+stowage\.config\.json:4:3: not valid JSON: /],
  ])('names the line and column of a syntax error in %s', (name, text, message) => {
    expect(() => parseConfigText(text, join(dir, name))).toThrow(
      expect.objectContaining({ code: CoreErrorCode.ConfigInvalid, message: expect.stringMatching(message) }),
    );
  });

  it('reports schema errors of a YAML file as path.to.key: message', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, 'source:\n  database: db.sqlite3\ndestinations: []\n');
    await expect(loadConfig(path)).rejects.toThrow(/destinations: /);
  });
});

describe('the common mistakes, told what to write', () => {
  const load = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return loadConfig(path);
  };

  it('no destinations: add one, with an example', async () => {
    await expect(load('no-destinations.yaml', 'source:\n  database: db.sqlite3\n')).rejects.toThrow(
      expect.objectContaining({
        code: CoreErrorCode.ConfigInvalid,
        message: expect.stringMatching(/^destinations: add at least one destination, e\.g\. "destinations": \[\{ "name": "local", "url": "backups" \}\]/m),
      }),
    );
    await expect(load('empty-destinations.json', '{ "source": { "database": "db.sqlite3" }, "destinations": [] }')).rejects.toThrow(
      /^destinations: add at least one destination/m,
    );
  });

  it('a file set written as a bare path: write { "path": … }', async () => {
    await expect(
      load(
        'bare-set.json',
        '{ "source": { "database": "db.sqlite3", "files": { "media": "media" } }, "destinations": [{ "name": "local", "url": "backups" }] }',
      ),
    ).rejects.toThrow(
      expect.objectContaining({
        code: CoreErrorCode.ConfigInvalid,
        message: expect.stringMatching(/^source\.files\.media: write \{ "path": "media" \} for a folder/m),
      }),
    );
  });

  it.each(['0 25 * * *', 'every night', '* * *', ''])('a bad cron expression (%j) is refused at load, not only by the daemon', async (expression) => {
    await expect(
      load(
        'bad-cron.yaml',
        `source:\n  database: db.sqlite3\ndestinations: [{ name: local, url: backups }]\nschedules:\n  incremental: ${JSON.stringify(expression)}\n`,
      ),
    ).rejects.toThrow(
      expect.objectContaining({
        code: CoreErrorCode.ConfigInvalid,
        message: expect.stringMatching(/^schedules\.incremental: '.*' is not a cron expression \(.+\); write minute hour/m),
      }),
    );
  });

  it('takes good cron expressions, six fields and false', async () => {
    const config = await load(
      'good-cron.yaml',
      'source:\n  database: db.sqlite3\ndestinations: [{ name: local, url: backups }]\nschedules:\n  full: "0 2 * * *"\n  incremental: "30 */15 * * * *"\n  drill: false\n',
    );
    expect(config.schedules).toEqual({ full: '0 2 * * *', incremental: '30 */15 * * * *', drill: false });
  });

  it('a relative database path meant from the current folder: says it is relative to the config file', async () => {
    const appDir = join(dir, 'app');
    const configDir = join(dir, 'etc');
    await mkdir(appDir, { recursive: true });
    await mkdir(configDir, { recursive: true });
    await writeFile(join(appDir, 'db.sqlite3'), 'SQLite format 3\0');
    await writeFile(join(configDir, 'stowage.config.yaml'), 'source:\n  database: db.sqlite3\ndestinations: [{ name: local, url: backups }]\n');
    const cwd = process.cwd();
    process.chdir(appDir);
    try {
      await expect(loadConfig(join(configDir, 'stowage.config.yaml'))).rejects.toThrow(
        expect.objectContaining({
          code: CoreErrorCode.ConfigInvalid,
          message: expect.stringContaining(`source.database: "db.sqlite3" is relative to the config file's folder ${configDir}, where there is no such file`),
        }),
      );
      // Beside the config, it is found; nowhere at all (a restore onto a new machine) is not a config error.
      await writeFile(join(configDir, 'db.sqlite3'), 'SQLite format 3\0');
      await expect(loadConfig(join(configDir, 'stowage.config.yaml'))).resolves.toMatchObject({ source: { database: join(configDir, 'db.sqlite3') } });
      await rm(join(configDir, 'db.sqlite3'));
      await rm(join(appDir, 'db.sqlite3'));
      await expect(loadConfig(join(configDir, 'stowage.config.yaml'))).resolves.toMatchObject({ source: { database: join(configDir, 'db.sqlite3') } });
    } finally {
      process.chdir(cwd);
    }
  });
});
