import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const TSX = join(REPO, 'node_modules', '.bin', 'tsx');
const bin = (name: string) => join(REPO, 'apps/cli/src/bin', `${name}.ts`);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-envelope-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 3 });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function run(program: string, args: readonly string[], cwd = dir) {
  const result = spawnSync(TSX, [bin(program), ...args], { cwd, encoding: 'utf8', env: { ...process.env, STOWAGE_CONFIG: '' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Every key anywhere in `value`. */
function keysOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(keysOf);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, field]) => [key, ...keysOf(field)]);
}

/** Parses stdout as exactly one envelope and checks what every envelope promises; returns it. */
function envelope(stdout: string, code: number | null, command: string) {
  const parsed = JSON.parse(stdout) as { ok: boolean; command: string; result: unknown; warnings: unknown; error: { code: string; message: string } | null };
  expect(Object.keys(parsed)).toEqual(['ok', 'command', 'result', 'warnings', 'error']);
  expect(parsed.command).toBe(command);
  expect(parsed.ok).toBe(code === 0);
  expect(Array.isArray(parsed.warnings)).toBe(true);
  if (parsed.error === null) expect(parsed.result).not.toBeNull();
  else {
    expect(code).not.toBe(0);
    expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message']);
    expect(parsed.error.code).toMatch(/^stowage\.[a-z_]+\.[a-z_]+$/);
  }
  // One name for one thing in every command: `id`, `ok`.
  expect(keysOf(parsed.result)).not.toEqual(expect.arrayContaining(['backupId']));
  expect(keysOf(parsed.result)).not.toEqual(expect.arrayContaining(['healthy']));
  return parsed;
}

// In order: each row may rely on the ones before (init writes the config, backups exist for restore).
const COMMANDS: ReadonlyArray<{ argv: string[]; program?: string; command: string; code: number; result?: Record<string, unknown>; error?: string }> = [
  {
    argv: ['init'],
    command: 'init',
    code: 0,
    result: { config: expect.stringMatching(/\/stowage\.config\.yaml$/), database: expect.stringMatching(/\/db\.sqlite3$/) },
  },
  { argv: ['backup', '--type', 'full'], command: 'backup', code: 0, result: { type: 'full', id: expect.any(String), committed: ['local'] } },
  { argv: ['--type=incremental'], program: 'db_backup', command: 'db_backup', code: 0, result: { type: 'incremental', parent: expect.any(String) } },
  { argv: ['list'], command: 'list', code: 0, result: { backups: [{ type: 'full', parent: null, storedBytes: expect.any(Number) }, { type: 'incremental' }] } },
  { argv: ['--list'], program: 'db_restore', command: 'db_restore', code: 0, result: { backups: expect.any(Array) } },
  { argv: ['verify', '--all'], command: 'verify', code: 0, result: { backups: [{ id: expect.any(String), ok: true }, { ok: true }] } },
  { argv: ['validate', 'latest'], command: 'validate', code: 0, result: { ok: true, id: expect.any(String) } },
  { argv: ['restore', 'latest', '--test-mode'], command: 'restore', code: 0, result: { testMode: true, chain: expect.any(Array) } },
  { argv: ['--verify', '--test-mode'], program: 'db_restore', command: 'db_restore', code: 0, result: { ok: true, id: expect.any(String) } },
  { argv: ['cleanup', '--dry-run'], command: 'cleanup', code: 0, result: { dryRun: true } },
  { argv: ['sync', '--dry-run'], command: 'sync', code: 0, result: { actions: [] } },
  { argv: ['drill'], command: 'drill', code: 0, result: { ok: true, id: expect.any(String) } },
  { argv: ['status'], command: 'status', code: 0, result: { ok: true, problems: [] } },
  { argv: ['destinations', 'probe'], command: 'destinations probe', code: 0, result: { destinations: [{ destination: 'local', ok: true }] } },
  { argv: ['key', 'generate', '--out', 'backup.key'], command: 'key generate', code: 0, result: { mode: 'passphrase' } },
  { argv: ['key', 'show'], command: 'key show', code: 0, result: { encryption: null } },
  { argv: ['audit', 'verify'], command: 'audit verify', code: 0, result: { ok: true } },
  { argv: ['unlock'], command: 'unlock', code: 0, result: { removed: [] } },
  {
    argv: ['schedule', 'print', '--format', 'crontab'],
    command: 'schedule print',
    code: 0,
    result: { format: 'crontab', text: expect.stringContaining('backup') },
  },
  { argv: ['metrics'], command: 'metrics', code: 0, result: { text: expect.stringContaining('# TYPE') } },
  { argv: ['report'], command: 'report', code: 0, result: { backups: expect.any(Array) } },
  {
    argv: ['guard', '--json', '--', process.execPath, '-e', 'console.log("from the guarded command"); process.exit(5)'],
    command: 'guard',
    code: 5,
    result: { id: expect.stringMatching(/^hot_/), exitCode: 5 },
  },
  // Failures: still one envelope, with the error's stable code.
  { argv: ['backup', '--type', 'weekly'], command: 'backup', code: 2, error: 'stowage.usage.invalid' },
  { argv: ['restore', 'full_backup_19990101_000000', '--test-mode'], command: 'restore', code: 1, error: 'stowage.backup.not_found' },
  { argv: ['alert', 'test'], command: 'alert test', code: 2, error: 'stowage.usage.invalid' },
  { argv: ['key', 'check'], command: 'key check', code: 2, error: 'stowage.usage.invalid' },
  { argv: ['--cleanup', '--type=full'], program: 'db_backup', command: 'db_backup', code: 2, error: 'stowage.usage.invalid' },
  { argv: ['init'], command: 'init', code: 2, error: 'stowage.usage.invalid' },
];

describe('--json: one envelope { ok, command, result, warnings, error } on stdout for every command', () => {
  it.each(COMMANDS.map((c) => ({ ...c, name: `${c.program ?? 'stowage'} ${c.argv.join(' ')}` })))(
    '$name',
    ({ argv, program = 'stowage', command, code, result, error }) => {
      const ran = run(program, argv.includes('--json') ? argv : [...argv, '--json']);
      expect(ran.code, ran.stderr).toBe(code);
      const parsed = envelope(ran.stdout, ran.code, command);
      if (result) expect(parsed.result).toMatchObject(result);
      if (error) expect(parsed.error).toMatchObject({ code: error, message: expect.any(String) });
      else expect(parsed.error).toBeNull();
    },
  );

  it('a missing config, in a folder without one', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'stowage-envelope-empty-'));
    try {
      const ran = run('stowage', ['status', '--json'], empty);
      expect(ran.code).toBe(2);
      expect(envelope(ran.stdout, ran.code, 'status').error).toMatchObject({ code: 'stowage.config.not_found' });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('serve prints its envelope as soon as it listens', async () => {
    const child = spawn(TSX, [bin('stowage'), 'serve', '--listen', '127.0.0.1:0', '--json'], {
      cwd: dir,
      env: { ...process.env, STOWAGE_CONFIG: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', done));
    try {
      await expect.poll(() => stdout.endsWith('}\n'), { timeout: 30_000 }).toBe(true);
      const parsed = envelope(stdout, 0, 'serve');
      expect(parsed.result).toMatchObject({ url: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/$/) });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(stdout.trim().split('\n').at(-1)).toBe('}'); // nothing after the envelope
    JSON.parse(stdout);
  });
});
