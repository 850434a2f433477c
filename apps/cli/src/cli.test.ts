import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGreaterWmsDatabase, simulateWarehouseActivity } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireSourceLock, configJsonSchema } from '@stowage/core';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const TSX = join(REPO, 'node_modules', '.bin', 'tsx');
const sha256File = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

let dir: string;
/** Runs a bin as a user would (`pnpm -s stowage …` runs the same file through tsx). */
function run(bin: 'stowage' | 'db_backup' | 'db_restore', ...args: string[]) {
  const result = spawnSync(TSX, [join(REPO, 'apps/cli/src/bin', `${bin}.ts`), ...args], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, STOWAGE_CONFIG: '' },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
/** The `result` of a --json envelope. */
const json = (stdout: string) => (JSON.parse(stdout) as { result: Record<string, unknown> }).result;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-cli-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 7 });
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

describe('the stowage and seed commands, end to end', () => {
  it('init, backup, list, verify, validate, test-mode restore, restore --verify', async () => {
    expect(run('stowage', 'init', '--config', 'stowage.config.json').code).toBe(0);
    expect(run('stowage', 'init').code).toBe(2); // refuses to write a second config

    const full = run('stowage', 'backup', '--type', 'full', '--json');
    expect(full.code).toBe(0);
    const fullResult = json(full.stdout);
    expect(fullResult).toMatchObject({ outcome: 'ok', type: 'full', committed: ['local'] });
    simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: 2 });
    const hot = run('db_backup', '--type=hot', '--reason', 'before import', '--json');
    expect(hot.code).toBe(0);
    const hotId = json(hot.stdout).id as string;

    const list = json(run('stowage', 'list', '--json').stdout) as { backups: Array<{ id: string; destinations: string[] }> };
    expect(list.backups.map((b) => b.id)).toEqual([fullResult.id, hotId]);
    expect(run('db_restore', '--list').stdout).toContain(hotId);

    expect(run('stowage', 'verify', '--all').code).toBe(0);
    const seedVerify = run('db_backup', `--verify=backups/hot/${hotId}.sqlite3`);
    expect(seedVerify.code).toBe(0);
    expect(seedVerify.stdout).toContain(`${hotId}: OK`);
    const validated = run('db_backup', `--validate-data=backups/full/${fullResult.id as string}.sqlite3`);
    expect(validated.code).toBe(0);
    expect(validated.stdout).toContain('data valid');

    const live = await sha256File(join(dir, 'db.sqlite3'));
    const restored = run('db_restore', `--file=backups/full/${fullResult.id as string}.sqlite3`, '--test-mode');
    expect(restored.code).toBe(0);
    expect(restored.stdout).toContain('test mode');
    expect(await sha256File(join(dir, 'db.sqlite3'))).toBe(live);
    const check = run('db_restore', '--verify', '--test-mode', '--json');
    expect(check.code).toBe(0);
    expect(json(check.stdout)).toMatchObject({ ok: true, id: fullResult.id });
  }, 180_000); // eleven CLI runs in dev mode: over a minute on a loaded machine

  it('takes seed-style incrementals and restores them with --at', () => {
    simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: 11, operations: 20 });
    const inc = run('db_backup', '--type=incremental', '--json');
    expect(inc.code).toBe(0);
    const result = json(inc.stdout);
    expect(result).toMatchObject({ outcome: 'ok', type: 'incremental' });
    expect(result.changedPages).toBeGreaterThan(0);
    const at = run('stowage', 'restore', '--at', new Date(Date.now() + 60_000).toISOString(), '--test-mode', '--json');
    expect(at.code).toBe(0);
    expect(json(at.stdout)).toMatchObject({ id: result.id });
    expect(run('stowage', 'restore', '--at', 'yesterday-ish', '--test-mode').code).toBe(2);
  });

  it('guard takes a hot backup, passes the exit code through and prints the restore command on failure', () => {
    const ok = run('stowage', 'guard', '--reason', 'migration 0042', '--', 'node', '-e', 'process.exit(0)');
    expect(ok.code).toBe(0);
    const failed = run('stowage', 'guard', '--json', '--', 'node', '-e', 'process.exit(7)');
    expect(failed.code).toBe(7);
    const hot = json(failed.stdout).id as string;
    expect(hot).toMatch(/^hot_backup_/);
    expect(failed.stderr).toContain(`stowage restore ${hot}`);
    const list = json(run('stowage', 'list', '--type', 'hot', '--json').stdout) as { backups: Array<{ reason?: string }> };
    expect(list.backups.map((b) => b.reason)).toContain('migration 0042');
  });

  it('cleans up with db_backup --cleanup and shows a dry run', () => {
    const dry = run('stowage', 'cleanup', '--dry-run', '--as-of', '2099-01-01', '--json');
    expect(dry.code).toBe(0);
    const plan = json(dry.stdout) as { removed: Array<{ what: string }>; kept: unknown[] };
    expect(plan.removed.length).toBeGreaterThan(0);
    expect(plan.kept.length).toBeGreaterThan(0);
    const seed = run('db_backup', '--cleanup');
    expect(seed.code).toBe(0);
    expect(seed.stdout).toMatch(/removed 0 item\(s\)/);
  });

  it('key generate / show / check: a public-key host can encrypt but not decrypt, and says so', async () => {
    const generated = run('stowage', 'key', 'generate', '--public-key', '--out', join(dir, 'ops'), '--json');
    expect(generated.code).toBe(0);
    const { fingerprint } = json(generated.stdout) as { fingerprint: string };
    expect((await stat(join(dir, 'ops-private.asc'))).mode & 0o777).toBe(0o600);
    const config = JSON.parse(await readFile(join(dir, 'stowage.config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'pk.json'), JSON.stringify({ ...config, encryption: { mode: 'public-key', recipients: ['ops-public.asc'] } }));
    const shown = run('stowage', 'key', 'show', '--config', 'pk.json');
    expect(shown.stdout).toContain(fingerprint);
    expect(shown.stdout + shown.stderr).not.toContain('PRIVATE KEY');
    const check = run('stowage', 'key', 'check', '--config', 'pk.json', '--json');
    // The backups taken so far are not encrypted: restoring them needs a config without encryption (exit 3 says so).
    expect(check.code).toBe(3);
    const report = json(check.stdout) as { chains: { checked: string; ok: boolean; problem?: string }[] };
    expect(report).toMatchObject({ canEncrypt: { ok: true }, canDecrypt: { ok: false, problem: expect.stringMatching(/only public keys, by design/) } });
    expect(report.chains.length).toBeGreaterThan(0);
    for (const chain of report.chains)
      expect(chain).toMatchObject({ checked: 'recipients', ok: false, problem: expect.stringMatching(/is not encrypted, and this config encrypts$/) });
  });

  it('a held lock stops a second backup with who and since; unlock --force removes it', async () => {
    const lock = await acquireSourceLock(join(dir, '.stowage'), { operation: 'backup', command: 'stowage backup (test)' });
    try {
      const blocked = run('stowage', 'backup');
      expect(blocked.code).toBe(1);
      expect(blocked.stderr).toMatch(new RegExp(`another stowage \\(backup, pid ${process.pid} on host .*, since .*\\) holds the lock on this source`));
      expect(run('stowage', 'unlock', '--source').code).toBe(1); // the holder is alive
      expect(run('stowage', 'unlock', '--source', '--force').stdout).toMatch(/removed the source lock/);
      expect(await readFile(join(dir, 'backups', 'logs', 'audit.jsonl'), 'utf8')).toMatch(
        /"operation":"lock-break".*"detail":"source:source held by backup, pid \d+/,
      );
      expect(run('stowage', 'backup').code).toBe(0);
    } finally {
      await lock.release();
    }
  });

  it('a lock held for hours raises a lock-held alert through the webhook', async () => {
    const received: Array<{ key: string; title: string }> = [];
    const hook = createServer((request, response) => {
      let body = '';
      request
        .on('data', (chunk: Buffer) => (body += chunk.toString()))
        .on('end', () => {
          received.push((JSON.parse(body) as { alert: { key: string; title: string } }).alert);
          response.end('ok');
        });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    const config = JSON.parse(await readFile(join(dir, 'stowage.config.json'), 'utf8')) as Record<string, unknown>;
    const { port } = hook.address() as { port: number };
    await writeFile(
      join(dir, 'hooked.json'),
      JSON.stringify({ ...config, alerts: { channels: [{ type: 'webhook', url: `http://127.0.0.1:${port}/alerts` }] } }),
    );
    const lock = await acquireSourceLock(join(dir, '.stowage'), { operation: 'backup' });
    const path = join(dir, '.stowage', 'locks', 'source.lock');
    const held = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    await writeFile(path, JSON.stringify({ ...held, startedAt: new Date(Date.now() - 3 * 3_600_000).toISOString() }));
    try {
      // Asynchronously: the webhook server lives in this process and must keep answering.
      const child = spawn(TSX, [join(REPO, 'apps/cli/src/bin/stowage.ts'), 'backup', '--config', 'hooked.json'], { cwd: dir, stdio: 'ignore' });
      const [code] = (await once(child, 'exit')) as [number];
      expect(code).toBe(1);
      expect(received.map((alert) => alert.key)).toContain('lock-held:source');
    } finally {
      await lock.release();
      await rm(path, { force: true });
      hook.close();
    }
  });

  it('exits 2 with path.to.key messages on an invalid config, and 1 with one line on an unknown backup', async () => {
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ source: { database: 5 }, destinations: [] }));
    const bad = run('stowage', 'list', '--config', 'bad.json');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/source\.database: /);
    expect(bad.stderr).toMatch(/destinations: add at least one destination, e\.g\. /);
    const missing = run('stowage', 'restore', 'full_backup_19990101_000000', '--test-mode', '--json');
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, command: 'restore', result: null, error: { code: 'stowage.backup.not_found' } });
    expect(run('stowage', 'frobnicate').code).toBe(2);
    await writeFile(join(dir, 'ftp.json'), JSON.stringify({ source: { database: 'db.sqlite3' }, destinations: [{ name: 'old', url: 'ftp://host/backups' }] }));
    const ftp = run('stowage', 'list', '--config', 'ftp.json');
    expect(ftp.code).toBe(2);
    expect(ftp.stderr).toMatch(/destinations\.0 \(old\): unknown storage scheme 'ftp:'.*known: file:, oss:, s3:/);
  });

  it('a live restore needs a named backup and --yes off a terminal; the seed form is its own consent; mode and owner are kept', async () => {
    const database = join(dir, 'db.sqlite3');
    await chmod(database, 0o644);
    const before = await sha256File(database);
    const bare = run('stowage', 'restore');
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/name the backup to restore over the live data/);
    const unconfirmed = run('stowage', 'restore', 'latest');
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/replaces the database .*db\.sqlite3; pass --yes to confirm/);
    expect(await sha256File(database)).toBe(before);

    const list = json(run('stowage', 'list', '--json').stdout) as { backups: Array<{ id: string; type: string }> };
    const full = list.backups.find((b) => b.type === 'full')!.id;
    const seed = run('db_restore', `--file=backups/full/${full}.sqlite3`);
    expect(seed.code).toBe(0);
    expect(seed.stdout).toMatch(/the previous database was moved aside: .*db\.sqlite3\.damaged_\d{8}_\d{6}/);
    expect((await stat(database)).mode & 0o777).toBe(0o644);
    const confirmed = run('stowage', 'restore', 'latest', '--yes', '--json');
    expect(confirmed.code).toBe(0);
    expect((await stat(database)).mode & 0o777).toBe(0o644);
    expect(json(confirmed.stdout).movedAside).toHaveLength(1);
  });

  it('ships a JSON schema of the config that matches the zod schema', async () => {
    const shipped = JSON.parse(await readFile(join(REPO, 'apps/cli/stowage.config.schema.json'), 'utf8')) as unknown;
    expect(shipped).toEqual(configJsonSchema());
  });
});
