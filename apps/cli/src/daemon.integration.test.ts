import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listBackups, loadConfig, openEngine, status } from '@stowage/core';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const DAEMON_MODULE = fileURLToPath(new URL('./daemon/index.ts', import.meta.url));

/** A daemon process, as `stowage daemon` runs it, with its output so far. */
interface DaemonProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Starts the real daemon in its own node process (`runDaemon`, as the CLI calls it). With `hang`,
 * every upload of a page-hash list stops for good, so a backup is caught mid-upload: its database
 * artifact stored, its manifest not.
 */
function startDaemon(config: string, options: { schedules?: Record<string, string>; hang?: boolean; grace?: string } = {}): DaemonProcess {
  const script = `
    import { runDaemon } from ${JSON.stringify(DAEMON_MODULE)};
    const hang = (adapter) => ({
      description: adapter.description,
      capabilities: adapter.capabilities,
      async put(key, body, options) {
        if (key.includes('.pagehash')) {
          console.log('HANGING on ' + key);
          await new Promise(() => {});
        }
        return adapter.put(key, body, options);
      },
      get: (key, options) => adapter.get(key, options),
      stat: (key, options) => adapter.stat(key, options),
      list: (prefix, options) => adapter.list(prefix, options),
      delete: (keys, options) => adapter.delete(keys, options),
      close: () => adapter.close?.(),
    });
    process.exitCode = await runDaemon({ config: ${JSON.stringify(config)} }, {
      ${options.schedules ? `schedules: ${JSON.stringify(options.schedules)},` : ''}
      grace: '${options.grace ?? '20s'}',
      ${options.hang ? 'engineOptions: { wrappers: [hang] },' : ''}
    });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, output: () => output, exited };
}

/** Waits until the daemon has printed everything `patterns` match. */
async function waitForOutput(daemon: DaemonProcess, patterns: RegExp[], timeoutMs = 40_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!patterns.every((p) => p.test(daemon.output()))) {
    if (Date.now() > deadline)
      throw new Error(`the daemon did not print ${patterns.filter((p) => !p.test(daemon.output())).join(', ')}; it printed:\n${daemon.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dir: string;
let config: string;
const running: DaemonProcess[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-daemon-e2e-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 9, scale: 0.3 });
  config = join(dir, 'stowage.config.json');
  await writeFile(config, JSON.stringify({ source: { database: 'db.sqlite3' }, destinations: [{ name: 'local', url: 'backups' }] }));
});
afterEach(async () => {
  for (const daemon of running.splice(0)) if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

/** What a daemon must never leave behind after a clean stop. */
async function expectNoLeftovers(): Promise<void> {
  expect(await readdir(join(dir, '.stowage', 'locks'))).toEqual([]);
  expect(await readdir(join(dir, 'backups', 'locks'))).toEqual([]);
  expect(await readdir(join(dir, '.stowage', 'staging'))).toEqual([]);
  expect((await readdir(join(dir, '.stowage'))).filter((name) => name.startsWith('drill-'))).toEqual([]);
}

describe('stowage daemon, end to end', () => {
  it('takes backups and a drill on a short schedule, refuses a second daemon, and stops cleanly on SIGTERM', async () => {
    const daemon = startDaemon(config, {
      schedules: { full: '*/5 * * * * *', incremental: '*/2 * * * * *', drill: '*/3 * * * * *', verify: '*/4 * * * * *', cleanup: '0 3 * * 0' },
    });
    running.push(daemon);
    await waitForOutput(daemon, [/started for /]);
    const second = startDaemon(config);
    running.push(second);
    expect(await second.exited).toBe(1);
    expect(second.output()).toMatch(/stowage: error: another stowage daemon \(pid \d+ on host .*\) runs with the state folder .*\.stowage; stop it first/);

    await waitForOutput(daemon, [
      /full backup full_backup_\S+ ok/,
      /incremental backup inc_backup_\S+ ok/,
      /drill of \S+ from local ok/,
      /verify ok: \d+ backup\(s\) intact/,
    ]);
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
    expect(daemon.output()).toMatch(/SIGTERM: stopping\n(.*\n)*.*stopped\n$/);

    const engine = await openEngine(await loadConfig(config));
    try {
      const types = new Set((await listBackups(engine)).map((e) => e.manifest.type));
      expect([...types].sort()).toEqual(['full', 'incremental']);
      expect((await status(engine)).lastDrill).toMatchObject({ ok: true, destination: 'local' });
    } finally {
      await engine.close();
    }
    await expectNoLeftovers();
  });

  it('after a kill -9 mid-backup, the next start takes over the locks, deletes the partial upload and carries on', async () => {
    const killed = startDaemon(config, { hang: true });
    running.push(killed);
    await waitForOutput(killed, [/HANGING on full\/full_backup_\S+\.pagehash/]);
    killed.child.kill('SIGKILL');
    await killed.exited;
    const partial = (await readdir(join(dir, 'backups', 'full'))).filter((name) => !name.endsWith('.manifest.json'));
    expect(partial).toEqual([expect.stringMatching(/^full_backup_\d{8}_\d{6}\.sqlite3\.zst$/)]);
    expect((await readdir(join(dir, '.stowage', 'locks'))).sort()).toEqual(['daemon.lock', 'source.lock']);
    expect(await readdir(join(dir, '.stowage', 'staging'))).not.toEqual([]);

    const next = startDaemon(config);
    running.push(next);
    await waitForOutput(next, [/full backup full_backup_\S+ ok/]);
    next.child.kill('SIGTERM');
    expect(await next.exited).toBe(0);
    const log = next.output();
    expect(log).toContain(`took over the daemon lock of a daemon that is gone (pid ${killed.child.pid}`);
    expect(log).toContain(`recovery: took over the stale lock on source (pid ${killed.child.pid} no longer runs`);
    expect(log).toContain(`recovery: took over the stale lock on local (pid ${killed.child.pid} no longer runs`);
    // The staging files carry the dead pid in their names: opening the engine already removed them.
    expect(log).toMatch(new RegExp(`warning: removed [1-9]\\d* leftover\\(s\\) of crashed runs: backup-[^ ]+_${killed.child.pid}_`));
    expect(await readdir(join(dir, '.stowage', 'staging'))).toEqual([]);
    expect(log).toContain(`recovery: deleted 1 artifact(s) of an interrupted backup that was never committed: local:full/${partial[0]}`);
    expect(log).toContain('there is no full backup yet: running the full backup now');
    const engine = await openEngine(await loadConfig(config));
    try {
      expect((await listBackups(engine)).map((e) => e.manifest.type)).toEqual(['full']);
    } finally {
      await engine.close();
    }
    // Every artifact left belongs to a committed backup (the new full may reuse the killed one's name).
    const names = await readdir(join(dir, 'backups', 'full'));
    for (const name of names) expect(names).toContain(`${name.split('.')[0]}.manifest.json`);
    await expectNoLeftovers();
  });

  it('exits non-zero within the grace period when the backup under way does not finish', async () => {
    const daemon = startDaemon(config, { hang: true, grace: '1s' });
    running.push(daemon);
    await waitForOutput(daemon, [/HANGING on /]);
    const signalled = Date.now();
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(1);
    expect(Date.now() - signalled).toBeLessThan(10_000);
    expect(daemon.output()).toMatch(
      /waiting up to 1 s for the full backup under way to finish\n.* the job under way did not finish within 1 s: exiting; the next start takes over its locks and clears its leftovers\n$/,
    );
    expect(await readdir(join(dir, '.stowage', 'locks'))).toEqual(['source.lock']); // its pid is gone: stale
  });
});
