import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
    expect(() => parseConfigText(text, join(dir, name))).toThrow(expect.objectContaining({ code: CoreErrorCode.ConfigInvalid, message: expect.stringMatching(message) }));
  });

  it('reports schema errors of a YAML file as path.to.key: message', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(path, 'source:\n  database: db.sqlite3\ndestinations: []\n');
    await expect(loadConfig(path)).rejects.toThrow(/destinations: /);
  });
});
