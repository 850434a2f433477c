/*
 * Reading the status changes nothing: `stowage status`, the status page (every route of `stowage
 * serve`), `stowage report` and the metrics leave the alert state file byte for byte as it was —
 * absent, with the RPO alert firing, or with another alert firing — whether the RPO is met or
 * breached, and send nothing. The watchers do raise and resolve: the daemon after each job, and
 * `stowage status --alert`; a committed backup clears a breached RPO. Alerts go to a webhook
 * receiver on 127.0.0.1 started here.
 */
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alertOnStatus, backup, openEngine, resolveConfig, status, type Engine } from '@stowage/core';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runStatus } from './commands.js';
import { runJob } from './daemon/index.js';
import { runReport } from './dashboard/commands.js';
import { serveDashboard, serverUrl } from './dashboard/server.js';
import { renderMetrics } from './metrics.js';
import { Output } from './output.js';

const T0 = new Date(2026, 5, 1, 2, 0, 0);
const MET = new Date(T0.getTime() + 30 * 60_000);
const BREACHED = new Date(T0.getTime() + 3 * 3600_000);
const clock = { now: T0 };
let dir: string;
let engine: Engine;
let receiver: Server;
/** Subjects of the alert messages the webhook received, in order. */
const received: string[] = [];
const statePath = () => join(dir, '.stowage', 'status', 'alerts-state.json');
const quiet = () => new Output({ json: false, quiet: true }, 'stowage');

beforeAll(async () => {
  receiver = createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8').on('data', (text: string) => (body += text));
    request.on('end', () => {
      received.push((JSON.parse(body) as { subject: string }).subject);
      response.writeHead(204).end();
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  dir = await mkdtemp(join(tmpdir(), 'stowage-status-alerts-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 3, scale: 0.02 });
  const config = resolveConfig(
    {
      source: { database: 'db.sqlite3' },
      destinations: [{ name: 'local', url: 'backups' }],
      stateDir: '.stowage',
      targets: { rpo: '1h', rto: '30m' },
      alerts: { channels: [{ type: 'webhook', url: `${serverUrl(receiver)}alerts` }], repeatMinutes: 60 },
    },
    join(dir, 'stowage.config.json'),
  );
  engine = await openEngine(config, { retry: false, now: () => clock.now });
  await backup(engine, { type: 'full' });
}, 60_000);
afterAll(async () => {
  await engine?.close();
  receiver?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The alert state file's bytes, or undefined when there is none. */
const stateBytes = () => readFile(statePath()).catch(() => undefined);

/** Every way to read the status without watching. */
const READERS: Record<string, () => Promise<unknown>> = {
  'core status()': () => status(engine),
  'stowage status': () => runStatus(engine, quiet()),
  'stowage report --html': () => runReport(engine, quiet(), { html: join(dir, 'report.html') }),
  'stowage metrics': () => renderMetrics(engine),
  'status page routes': async () => {
    const server = await serveDashboard(engine, { listen: '127.0.0.1:0' });
    try {
      for (const route of ['', 'api/dashboard', 'api/status', 'api/backups', 'metrics']) {
        const response = await fetch(`${serverUrl(server)}${route}`);
        expect(response.status, route).toBe(200);
        await response.text();
      }
    } finally {
      server.closeAllConnections();
      server.close();
    }
  },
};

describe('the status is read without writing alert state', () => {
  it('every reader leaves the alert state file byte-identical (absent, RPO firing, other alert firing) with the RPO met or breached, and sends nothing', async () => {
    // The three starting states, made by the alerter itself.
    const states: Record<string, Buffer | undefined> = { absent: undefined };
    clock.now = BREACHED;
    await alertOnStatus(engine, await status(engine));
    states['RPO alert firing'] = await stateBytes();
    await engine.alerts.raise((a, at) => a.backupFailed({ ...at, type: 'incremental', error: 'disk full' }));
    await engine.alerts.resolve('rpo-breached');
    states['another alert firing'] = await stateBytes();
    expect(states['RPO alert firing']?.toString()).toContain('rpo-breached');
    expect(states['another alert firing']?.toString()).not.toContain('rpo-breached');
    const sent = received.length;

    const cells: string[] = [];
    for (const [stateName, bytes] of Object.entries(states)) {
      for (const [when, at] of [
        ['RPO met', MET],
        ['RPO breached', BREACHED],
      ] as const) {
        for (const [reader, read] of Object.entries(READERS)) {
          await rm(statePath(), { force: true });
          if (bytes) await writeFile(statePath(), bytes, { mode: 0o600 });
          clock.now = at;
          await read();
          const after = await stateBytes();
          const same = bytes === undefined ? after === undefined : after?.equals(bytes) === true;
          cells.push(`${same ? 'unchanged' : 'CHANGED'.padEnd(9)}  ${stateName.padEnd(21)} ${when.padEnd(13)} ${reader}`);
        }
      }
    }
    console.log(`alert state after each read (${cells.length} cells):\n${cells.join('\n')}`);
    expect(cells.filter((cell) => cell.startsWith('CHANGED'))).toEqual([]);
    expect(received.slice(sent)).toEqual([]);
  }, 120_000);

  it('the watchers raise and resolve: the daemon after each job, `stowage status --alert`, and a committed backup', async () => {
    await rm(statePath(), { force: true });
    const mark = received.length;
    const log: string[] = [];
    // The daemon: a job (any) finds the RPO breached and raises it, once within repeatMinutes.
    clock.now = BREACHED;
    await expect(runJob(engine, 'verify', { log: (m) => log.push(m) })).resolves.toMatch(/^ok:/);
    expect(JSON.parse((await stateBytes())!.toString()).firing).toHaveProperty(['rpo-breached']);
    await runJob(engine, 'verify', { log: (m) => log.push(m) });
    // A backup (the daemon's incremental) is a fresh recovery point: resolved.
    await expect(runJob(engine, 'incremental', { log: (m) => log.push(m) })).resolves.toMatch(/ ok$/);
    expect(JSON.parse((await stateBytes())!.toString()).firing).not.toHaveProperty(['rpo-breached']);
    // `stowage status --alert`, hours later with no backup: raised again; then resolved by the next.
    clock.now = new Date(BREACHED.getTime() + 3 * 3600_000);
    await runStatus(engine, quiet(), { alert: true });
    expect(JSON.parse((await stateBytes())!.toString()).firing).toHaveProperty(['rpo-breached']);
    await backup(engine, { type: 'incremental' });
    await runStatus(engine, quiet(), { alert: true });
    expect(JSON.parse((await stateBytes())!.toString()).firing).not.toHaveProperty(['rpo-breached']);

    const rpo = received.slice(mark).filter((subject) => /RPO/.test(subject));
    expect(rpo.map((subject) => (subject.startsWith('[Stowage RESOLVED]') ? 'resolved' : 'raised'))).toEqual(['raised', 'resolved', 'raised', 'resolved']);
    expect(log.filter((line) => /status check/.test(line))).toEqual([]);
  }, 120_000);
});
