/*
 * The status page in a real browser (Debian's chromium through playwright-core), served by the real
 * `stowage serve` process, over a catalog built with the core API at three destinations (two local
 * folders and an OSS bucket on the OSS test server): a full, incrementals and
 * a hot backup, one incremental degraded (a destination's disk full), one failed run (every disk
 * full), a replica damaged on disk and found by verify, and a drill. Screenshots go to
 * test-artifacts/dashboard/ (gitignored).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest, type Server } from 'node:http';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { builtinRegistry } from '@stowage/adapters';
import { backup, drill, listBackups, loadConfig, openEngine, resolveConfig, serializeManifest, verify, type Engine, type Manifest } from '@stowage/core';
import { bufferBody } from '@stowage/storage';
import { createGreaterWmsDatabase, simulateWarehouseActivity } from '@stowage/fixtures';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { MemoryStorage, withChaos } from '@stowage/storage-testkit';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDaemon } from '../daemon/index.js';
import { buildDashboard } from './model.js';
import { MATRIX_PAGE_ROWS, renderDashboard } from './render.js';
import { serveDashboard, serverUrl } from './server.js';

const REPO = resolve(fileURLToPath(new URL('../../../..', import.meta.url)));
const TSX = join(REPO, 'node_modules', '.bin', 'tsx');
const STOWAGE = join(REPO, 'apps/cli/src/bin/stowage.ts');
const ARTIFACTS = join(REPO, 'test-artifacts', 'dashboard');
const OSS_SECRET = 'oss-dashboard-secret-never-shown';
const ENV = { DASHBOARD_OSS_ID: 'dashboard-oss-id', DASHBOARD_OSS_SECRET: OSS_SECRET };
const HOSTILE_REASON = '<img src=x onerror="document.title=\'pwned\'"> before import';
/** Chromium's flags for this sandbox-less, offline machine (see README: the status page). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let oss: OssTestServer;
let dir: string;
let configPath: string;
let engine: Engine;
let browser: BrowserContext;
let ids: { full: string; inc1: string; hot: string; inc2: string; full2: string };

/** A browser with a new, empty profile folder. */
async function launchBrowser(): Promise<BrowserContext> {
  const profile = await mkdtemp(join(tmpdir(), 'stowage-chromium-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
}

/**
 * Runs the CLI as a user would. Asynchronously: the OSS test server answers from this process, so
 * a blocking spawn would leave the child waiting for it.
 */
async function stowage(args: string[], env: Record<string, string> = {}) {
  const child = spawn(TSX, [STOWAGE, '--config', configPath, ...args], {
    cwd: dir,
    env: { ...process.env, ...ENV, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

beforeAll(async () => {
  Object.assign(process.env, ENV);
  oss = await startOssTestServer({ accessKeyId: ENV.DASHBOARD_OSS_ID, accessKeySecret: OSS_SECRET, buckets: ['wms-archive'] });
  dir = await mkdtemp(join(tmpdir(), 'stowage-dashboard-'));
  const database = join(dir, 'db.sqlite3');
  createGreaterWmsDatabase(database, { seed: 3 });
  configPath = join(dir, 'stowage.config.json');
  await writeFile(
    configPath,
    JSON.stringify({
      source: { database: 'db.sqlite3' },
      destinations: [
        { name: 'local', url: 'backups' },
        { name: 'offsite', url: 'offsite' },
        {
          name: 'oss-hangzhou',
          url: 'oss://wms-archive/greaterwms',
          options: {
            region: 'oss-cn-hangzhou',
            endpoint: oss.endpoint,
            secure: false,
            accessKeyIdEnv: 'DASHBOARD_OSS_ID',
            accessKeySecretEnv: 'DASHBOARD_OSS_SECRET',
            storageClass: 'IA',
          },
        },
      ],
      quorum: 2,
    }),
  );
  const config = await loadConfig(configPath);
  // Backups over the last week, on a clock set back for each; the newest is taken now.
  let clock: Date | undefined;
  const daysAgo = (days: number) => (clock = new Date(Date.now() - days * 86_400_000));
  const now = () => clock ?? new Date();
  engine = await openEngine(config, { registry: builtinRegistry(), retry: false, now });
  daysAgo(6);
  const full = await backup(engine, { type: 'full' });
  simulateWarehouseActivity(database, { seed: 1 });
  daysAgo(5);
  const inc1 = await backup(engine, { type: 'incremental' });
  daysAgo(2.5);
  const hot = await backup(engine, { type: 'hot', reason: HOSTILE_REASON });
  simulateWarehouseActivity(database, { seed: 2 });
  daysAgo(2);
  // offsite's disk is full: committed at two destinations of three, quorum 2 → degraded.
  const offsiteFull = await openEngine(config, {
    registry: builtinRegistry(),
    retry: false,
    now,
    wrappers: [(adapter, name) => (name === 'offsite' ? withChaos(adapter, { diskFull: true }) : adapter)],
  });
  const inc2 = await backup(offsiteFull, { type: 'incremental' });
  await offsiteFull.close();
  expect(inc2.outcome, JSON.stringify(inc2.failures)).toBe('degraded');
  // Every disk full: the run fails and leaves no manifest, only its audit record.
  daysAgo(1);
  const allFull = await openEngine(config, { registry: builtinRegistry(), retry: false, now, wrappers: [(adapter) => withChaos(adapter, { diskFull: true })] });
  await expect(backup(allFull, { type: 'incremental' })).rejects.toThrow();
  await allFull.close();
  simulateWarehouseActivity(database, { seed: 3 });
  clock = undefined;
  const full2 = await backup(engine, { type: 'full' });
  ids = { full: full.manifest.id, inc1: inc1.manifest.id, hot: hot.manifest.id, inc2: inc2.manifest.id, full2: full2.manifest.id };
  // A byte flipped in offsite's copy of the full, found by verify.
  const damaged = await open(join(dir, 'offsite', full.manifest.artifacts[0]!.key), 'r+');
  const byte = Buffer.alloc(1);
  await damaged.read(byte, 0, 1, 4096);
  await damaged.write(Buffer.from([byte[0]! ^ 0xff]), 0, 1, 4096);
  await damaged.close();
  await verify(engine, { all: true });
  expect((await drill(engine, { destination: 'local' })).ok).toBe(true);
  browser = await launchBrowser();
  await mkdir(ARTIFACTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await engine?.close();
  await oss?.close();
  await rm(dir, { recursive: true, force: true });
  for (const name of Object.keys(ENV)) delete process.env[name];
});

interface PageReading {
  healthy: string;
  title: string;
  marks: Record<string, Record<string, number>>;
  runs: string[];
  bars: Array<{ backup: string; type: string; stored: number; dbSize: number; anomaly: string }>;
  hasDbSizeLine: boolean;
  counts: Record<string, number>;
  matrix: Record<string, Record<string, string>>;
  verifiedCellText: string;
  ossMethods: string[];
  injectedImages: number;
  reasonShown: boolean;
  destinations: string[];
  drills: string[];
  verifyOk: string | undefined;
  auditRows: number;
}

/** What the page shows, read from its DOM (plain JavaScript: it runs in the browser). */
const READ_PAGE = `(() => {
  const all = (selector) => [...document.querySelectorAll(selector)];
  const marks = {};
  for (const mark of all('#timeline circle.mark')) {
    const lane = (marks[mark.dataset.destination] ??= {});
    lane[mark.dataset.state] = (lane[mark.dataset.state] ?? 0) + 1;
  }
  return {
    healthy: document.getElementById('health').dataset.healthy,
    title: document.title,
    marks,
    runs: all('#timeline path.run').map((r) => r.dataset.type + ':' + r.dataset.outcome),
    bars: all('#sizes rect.bar').map((b) => ({ backup: b.dataset.backup, type: b.dataset.type, stored: Number(b.dataset.stored), dbSize: Number(b.dataset.dbSize), anomaly: b.dataset.anomaly })),
    hasDbSizeLine: all('#sizes path.db-size').length === 1,
    counts: Object.fromEntries(all('[data-count-state]').map((c) => [c.dataset.countState, Number(/(\\d+)$/.exec(c.textContent)[1])])),
    matrix: Object.fromEntries(all('#matrix tbody tr').map((row) => [row.dataset.backup, Object.fromEntries([...row.querySelectorAll('td[data-state]')].map((c) => [c.dataset.destination, c.dataset.state]))])),
    verifiedCellText: all('#matrix td[data-state=verified]')[0]?.textContent ?? '',
    ossMethods: [...new Set(all('#matrix td[data-destination=oss-hangzhou] small').map((c) => c.textContent.split(',')[0]))],
    injectedImages: all('main img').length,
    reasonShown: document.querySelector('#matrix').textContent.includes('<img src=x'),
    destinations: all('#overview .card[data-destination]').map((c) => c.dataset.destination + ':' + c.dataset.verifiedRpoOk),
    drills: all('#drills tbody tr').map((r) => r.dataset.ok + ':' + r.dataset.withinRto),
    verifyOk: document.getElementById('verify')?.dataset.ok,
    auditRows: all('#audit tbody tr').length,
  };
})()`;
const readPage = (page: Page) => page.evaluate(READ_PAGE) as Promise<PageReading>;

/** What the served page showed first: later tests compare with it. */
let served: PageReading;

describe('the status page in Chromium', () => {
  it('`stowage serve` shows the timeline, sizes, replica matrix, drills and audit with the right counts and states; the API matches the CLI --json', async () => {
    const child: ChildProcess = spawn(TSX, [STOWAGE, 'serve', '--config', configPath, '--listen', '127.0.0.1:0'], {
      cwd: dir,
      env: { ...process.env, ...ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit');
    try {
      await expect.poll(() => /status page at (http:\/\/\S+\/)/.exec(output)?.[1], { timeout: 30_000 }).toBeDefined();
      const url = /status page at (http:\/\/\S+\/)/.exec(output)![1]!;
      const page = await browser.newPage();
      const consoleErrors: string[] = [];
      page.on('console', (message) => void (message.type() === 'error' && consoleErrors.push(message.text())));
      await page.goto(url);
      served = await readPage(page);
      await page.screenshot({ path: join(ARTIFACTS, 'served.png'), fullPage: true });

      expect(served.healthy).toBe('false'); // verify found damage
      expect(served.title).not.toBe('pwned');
      expect(served.marks).toEqual({ local: { verified: 5 }, offsite: { damaged: 1, verified: 3, missing: 1 }, 'oss-hangzhou': { verified: 5 } });
      expect(served.runs.sort()).toEqual(['incremental:degraded', 'incremental:failed']);
      const manifests = new Map((await listBackups(engine)).map((e) => [e.manifest.id, e.manifest] as const));
      expect(served.bars).toEqual(
        [ids.full, ids.inc1, ids.hot, ids.inc2, ids.full2].map((id) => {
          const m = manifests.get(id)!;
          return {
            backup: id,
            type: m.type,
            stored: m.artifacts.reduce((n, a) => n + a.size, 0),
            dbSize: m.source.size,
            anomaly: String((m.anomalies ?? []).length > 0),
          };
        }),
      );
      expect(served.hasDbSizeLine).toBe(true);
      expect(served.counts).toEqual({ verified: 13, archived: 0, unverified: 0, damaged: 1, missing: 1, pruned: 0 });
      expect(served.matrix[ids.full]).toEqual({ local: 'verified', offsite: 'damaged', 'oss-hangzhou': 'verified' });
      expect(served.matrix[ids.inc2]).toEqual({ local: 'verified', offsite: 'missing', 'oss-hangzhou': 'verified' });
      expect(served.ossMethods).toEqual(['server-crc64ecma']);
      expect(served.verifiedCellText).toMatch(/verified.*server-sha256, \d{4}-\d{2}-\d{2} \d{2}:\d{2}Z/);
      expect(served.injectedImages).toBe(0);
      expect(served.reasonShown).toBe(true);
      // The newest full is verified everywhere, within the 1 h RPO.
      expect(served.destinations).toEqual(['local:true', 'offsite:true', 'oss-hangzhou:true']);
      expect(served.drills).toEqual(['true:true']);
      expect(served.verifyOk).toBe('false');
      expect(served.auditRows).toBeGreaterThan(5);
      expect(consoleErrors).toEqual([]);

      await page.check('#matrix-problems');
      expect(await page.locator('#matrix tbody tr:visible').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-backup')))).toEqual([
        ids.inc2,
        ids.full,
      ]);

      // The API: the same shapes as the result of the CLI's --json.
      const api = async (path: string) => {
        const response = await fetch(new URL(path, url));
        expect(response.status).toBe(200);
        return response.text();
      };
      const result = (stdout: string) => (JSON.parse(stdout) as { result: Record<string, unknown> }).result;
      expect(JSON.parse(await api('api/backups'))).toEqual(result((await stowage(['list', '--json'])).stdout));
      const cliStatus = result((await stowage(['status', '--json'])).stdout);
      const apiStatus = JSON.parse(await api('api/status')) as Record<string, unknown>;
      expect(Object.keys(apiStatus).sort()).toEqual(Object.keys(cliStatus).sort());
      expect({ ...apiStatus, at: 0, rpo: 0, types: 0, destinations: 0 }).toEqual({ ...cliStatus, at: 0, rpo: 0, types: 0, destinations: 0 });
      const apiDashboard = JSON.parse(await api('api/dashboard')) as { replicas: unknown; backups: unknown };
      const report = result((await stowage(['report', '--json'])).stdout) as { replicas: unknown; backups: unknown };
      expect(apiDashboard.replicas).toEqual(report.replicas);
      expect(apiDashboard.backups).toEqual(report.backups);
      // Never a secret, anywhere.
      for (const text of [await page.content(), await api('api/dashboard'), await api('api/status'), await api('api/backups')])
        expect(text).not.toContain(OSS_SECRET);
      expect((await fetch(new URL('api/dashboard', url), { method: 'POST' })).status).toBe(405);
      await page.close();
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(child.exitCode).toBe(0);
  }, 180_000);

  it('`stowage report --html` opens from a file URL with no network and shows the same', async () => {
    const file = join(dir, 'report.html');
    const result = await stowage(['report', '--html', file]);
    expect(result.code, result.stderr).toBe(0);
    const html = await readFile(file, 'utf8');
    expect(html).not.toContain(OSS_SECRET);
    const page = await browser.newPage();
    await browser.setOffline(true);
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    const consoleErrors: string[] = [];
    page.on('console', (message) => void (message.type() === 'error' && consoleErrors.push(message.text())));
    try {
      await page.goto(pathToFileURL(file).href);
      const shown = await readPage(page);
      await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true });
      expect(requests).toEqual([pathToFileURL(file).href]);
      expect(consoleErrors).toEqual([]);
      expect({ ...shown, auditRows: 0 }).toEqual({ ...served, auditRows: 0 }); // the audit grew by the CLI runs in between
    } finally {
      await browser.setOffline(false);
      await page.close();
    }
    // The report carries its data too, the same as `report --json` gives.
    const data = JSON.parse(
      html.slice(html.indexOf('>', html.indexOf('id="dashboard-data"')) + 1, html.indexOf('</script>', html.indexOf('id="dashboard-data"'))),
    ) as { replicas: unknown[] };
    expect(data.replicas).toHaveLength(15);
  }, 120_000);
});

describe('`stowage daemon --http`', () => {
  it('serves the status page, its /api and /metrics while it runs, on the port it picked, and stops cleanly', async () => {
    // The same destinations and state folder, with every job off but a yearly drill: nothing runs.
    const daemonConfig = join(dir, 'daemon.config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    await writeFile(
      daemonConfig,
      JSON.stringify({ ...config, schedules: { full: false, incremental: false, cleanup: false, verify: false, drill: '0 5 1 1 *', timeZone: 'UTC' } }),
    );
    const child = spawn(TSX, [STOWAGE, 'daemon', '--config', daemonConfig, '--http', '127.0.0.1:0'], {
      cwd: dir,
      env: { ...process.env, ...ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit');
    try {
      await expect.poll(() => /status page at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1], { timeout: 60_000 }).toBeDefined();
      const url = /status page at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)![1]!;
      expect(url).not.toMatch(/:0\/$/);
      await expect.poll(() => output, { timeout: 60_000 }).toMatch(/drill: '0 5 1 1 \*', next at \d{4}-01-01T05:00:00Z/);

      const page = await browser.newPage();
      await page.goto(url);
      const shown = await readPage(page);
      await page.close();
      expect(shown.matrix[ids.full]).toEqual({ local: 'verified', offsite: 'damaged', 'oss-hangzhou': 'verified' });
      expect(shown.counts).toEqual(served.counts);

      const get = async (path: string) => {
        const response = await fetch(new URL(path, url));
        expect(response.status, path).toBe(200);
        return { type: response.headers.get('content-type'), text: await response.text() };
      };
      const backups = JSON.parse((await get('api/backups')).text) as { backups: Array<{ id: string }> };
      expect(backups.backups.map((b) => b.id)).toEqual([ids.full, ids.inc1, ids.hot, ids.inc2, ids.full2]);
      expect(JSON.parse((await get('api/status')).text)).toMatchObject({ ok: false, lastDrill: { ok: true } });
      expect((JSON.parse((await get('api/dashboard')).text) as { replicas: unknown[] }).replicas).toHaveLength(15);
      const metrics = await get('metrics');
      expect(metrics.type).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(metrics.text).toMatch(/^stowage_healthy 0$/m);
      expect(metrics.text).toMatch(/^stowage_destination_up\{destination="oss-hangzhou"\} 1$/m);
      for (const path of ['', 'api/status', 'api/dashboard', 'api/backups', 'metrics']) expect((await get(path)).text).not.toContain(OSS_SECRET);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(child.exitCode, output).toBe(0);
    expect(output).toMatch(/SIGTERM: stopping\n.*stopped\n$/);
    expect(output).not.toContain(OSS_SECRET);
  }, 180_000);
});

describe('an archived replica', () => {
  it('shows in the matrix as archived (the objects refuse a read until thawed), counted, and told apart from damage', async () => {
    // What an OSS lifecycle rule does to old backups: every object of the first full moved to the Archive class.
    const oss = engine.destinations.find((d) => d.name === 'oss-hangzhou')!;
    const full = (await listBackups(engine)).find((e) => e.manifest.id === ids.full)!.manifest;
    for (const key of [`full/${ids.full}.manifest.json`, ...full.artifacts.map((a) => a.key)]) {
      await expect(oss.adapter.setStorageClass!(key, 'Archive')).resolves.toMatchObject({ storageClass: 'Archive', archive: { state: 'archived' } });
    }
    const server = await serveDashboard(engine, { listen: '127.0.0.1:0' });
    try {
      const page = await browser.newPage();
      await page.goto(serverUrl(server));
      const shown = await readPage(page);
      const cell = (await page.evaluate(`(() => {
        const cell = document.querySelector('#matrix tr[data-backup="${ids.full}"] td[data-destination="oss-hangzhou"]');
        return { text: cell.textContent, title: cell.getAttribute('title') };
      })()`)) as { text: string; title: string | null };
      await page.screenshot({ path: join(ARTIFACTS, 'archived.png'), fullPage: true });
      await page.close();
      expect(shown.matrix[ids.full]).toEqual({ local: 'verified', offsite: 'damaged', 'oss-hangzhou': 'archived' });
      expect(cell.text).toBe('❄ archivedreadable after a thaw');
      expect(cell.title).toMatch(/Archive storage class and must be thawed/);
      expect(shown.counts).toEqual({ verified: 12, archived: 1, unverified: 0, damaged: 1, missing: 1, pruned: 0 });
      expect(shown.marks['oss-hangzhou']).toEqual({ archived: 1, verified: 4 });
      const dashboard = await buildDashboard(engine);
      expect(dashboard.replicas.find((c) => c.backupId === ids.full && c.destination === 'oss-hangzhou')).toMatchObject({
        state: 'archived',
        problem: expect.stringContaining('thawed'),
      });
      expect(JSON.stringify(dashboard)).not.toContain(OSS_SECRET);
    } finally {
      server.closeAllConnections(); // the browser keeps its connections alive
      await new Promise((done) => server.close(done));
    }
  }, 120_000);
});

describe('safe by default', () => {
  it('refuses a non-loopback bind without a token (and a short token); with one, every request must present it', async () => {
    const refused = await stowage(['serve', '--listen', '0.0.0.0:0']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/0\.0\.0\.0 is not a loopback address.*--auth-token-env NAME/);
    const short = await stowage(['serve', '--listen', '0.0.0.0:0', '--auth-token-env', 'DASHBOARD_TOKEN'], { DASHBOARD_TOKEN: 'short' });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('shorter than 16 characters');

    const token = 'a-long-random-token-0123456789abcdef';
    process.env.DASHBOARD_TOKEN = token;
    const server = await serveDashboard(engine, { listen: '0.0.0.0:0', authTokenEnv: 'DASHBOARD_TOKEN' });
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      expect((await fetch(`${base}/api/status`)).status).toBe(401);
      expect((await fetch(`${base}/api/status`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
      expect((await fetch(`${base}/api/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      const login = await fetch(`${base}/?token=${token}`, { redirect: 'manual' });
      expect(login.status).toBe(303);
      expect(login.headers.get('location')).toBe('/');
      const cookie = login.headers.get('set-cookie')!;
      expect(cookie).toContain('HttpOnly');
      expect((await fetch(`${base}/`, { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(200);
    } finally {
      delete process.env.DASHBOARD_TOKEN;
      await new Promise((done) => server.close(done));
    }
  }, 120_000);

  it('`daemon --http` refuses a non-loopback address without a token, and a token without --http', async () => {
    const refused = await runDaemon({ config: configPath }, { http: '0.0.0.0:0' });
    expect(refused).toBe(2);
    expect(await runDaemon({ config: configPath }, { authTokenEnv: 'DASHBOARD_TOKEN' })).toBe(2);
  });

  it('on loopback, answers only requests addressed to a loopback name (no DNS rebinding)', async () => {
    const server = await serveDashboard(engine, { listen: '127.0.0.1:0' });
    try {
      const port = (server.address() as { port: number }).port;
      const statusFor = (host: string) =>
        new Promise<number>((done, fail) =>
          httpRequest({ host: '127.0.0.1', port, path: '/api/status', headers: { host } }, (r) => (r.resume(), done(r.statusCode!)))
            .on('error', fail)
            .end(),
        );
      expect(await statusFor('evil.example:8787')).toBe(421);
      expect(await statusFor(`localhost:${port}`)).toBe(200);
      expect(await statusFor(`127.0.0.1:${port}`)).toBe(200);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});

describe('speed', () => {
  it('renders 1,000 backups × 4 destinations, a page of the matrix at a time (timings printed)', async () => {
    // In memory (MemoryStorage behind each destination): disk and this shared machine's I/O stay out of it.
    const root = await mkdtemp(join(tmpdir(), 'stowage-dashboard-big-'));
    const template = (await listBackups(engine)).find((e) => e.manifest.id === ids.inc1)!.manifest;
    const names = ['local', 'nas', 's3-eu', 'oss-hangzhou'];
    const stores = new Map(names.map((name) => [name, new MemoryStorage(name)]));
    const start = Date.now() - 1000 * 3600_000;
    const stamp = (t: Date) => t.toISOString().replace(/[-:]/g, '').replace('T', '_').slice(0, 15);
    let parent: string | null = null;
    let chainLength = 0;
    for (let i = 0; i < 1000; i++) {
      const createdAt = new Date(start + i * 3600_000);
      const type = i % 24 === 0 ? 'full' : i % 100 === 50 ? 'hot' : 'incremental';
      const id = `${{ full: 'full', incremental: 'inc', hot: 'hot' }[type]}_backup_${stamp(createdAt)}`;
      chainLength = type === 'incremental' ? chainLength + 1 : 0;
      const at = createdAt.toISOString();
      const manifest: Manifest = {
        ...template,
        id,
        type,
        seq: i + 1,
        parent: type === 'incremental' ? parent : null,
        chainLength,
        createdAt: at,
        source: { ...template.source, size: template.source.size + i * 4096 },
        artifacts: template.artifacts.map((a) => ({ ...a, key: a.key.replace(template.id, id).replace(/^\w+\//, `${type}/`) })),
        replicas: Object.fromEntries(names.map((n) => [n, { committedAt: at, verifiedAt: at, verifiedBy: 'server-sha256' as const }])),
      };
      if (type !== 'hot') parent = id;
      // The archive holds every backup but the newest 10; the others all of them.
      for (const name of names.filter((n) => n !== 'oss-hangzhou' || i < 990)) {
        await stores.get(name)!.put(`${type}/${id}.manifest.json`, bufferBody(serializeManifest(manifest)));
      }
    }
    const big = await openEngine(
      resolveConfig(
        {
          source: { database: 'db.sqlite3' },
          destinations: names.map((name) => ({ name, url: name })),
          retention: { full: '365d', incremental: '365d', hot: '365d' },
        },
        join(root, 'stowage.config.json'),
      ),
      { wrappers: [(_adapter, name) => stores.get(name)!] },
    );
    let server: Server | undefined;
    try {
      // The server's share alone, in this process: CPU and wall time (this machine's other tenants inflate wall time).
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      const dashboard = await buildDashboard(big);
      const html = renderDashboard(dashboard, { served: true });
      const serverWallMs = performance.now() - t0;
      const { user, system } = process.cpuUsage(cpu);
      // End to end: the browser asks, the server reads the catalog and renders, the browser parses, lays out and runs the page.
      server = await serveDashboard(big, { listen: '127.0.0.1:0' });
      const page = await browser.newPage();
      const cdp = await browser.newCDPSession(page);
      await cdp.send('Performance.enable');
      const asked = performance.now();
      await page.goto(serverUrl(server), { waitUntil: 'load' });
      const endToEndMs = performance.now() - asked;
      const navigation = (await page.evaluate(
        `(() => { const n = performance.getEntriesByType('navigation')[0]; return { server: n.responseStart - n.requestStart, browser: n.loadEventEnd - n.responseEnd }; })()`,
      )) as { server: number; browser: number };
      const metrics = new Map((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
      const timings = {
        endToEndMs: Math.round(endToEndMs),
        serverMs: Math.round(navigation.server),
        browserMs: Math.round(navigation.browser),
        browserMainThreadMs: Math.round((metrics.get('TaskDuration') ?? 0) * 1000),
        modelAndHtmlCpuMs: Math.round((user + system) / 1000),
        modelAndHtmlWallMs: Math.round(serverWallMs),
        htmlBytes: html.length,
        loadAverage: Number(loadavg()[0]!.toFixed(1)),
      };
      console.log(`status page, 1,000 backups × 4 destinations: ${JSON.stringify(timings)}`);
      const shownCells = await page.locator('#matrix td[data-state]').count();
      const counts = (await page.locator('[data-count-state]').allTextContents()).map((text) => Number(/(\d+)$/.exec(text)![1]));
      for (let i = 0; i < 1000 / MATRIX_PAGE_ROWS - 1; i++) await page.click('#matrix-older');
      const lastPage = {
        shown: await page.locator('#matrix-shown').textContent(),
        rows: await page.locator('#matrix tbody tr').count(),
        oldest: await page.locator('#matrix tbody tr').last().getAttribute('data-backup'),
      };
      await page.check('#matrix-problems');
      const problemRows = await page.locator('#matrix tbody tr').count();
      await page.screenshot({ path: join(ARTIFACTS, 'thousand.png') });
      await page.close();
      // Correctness only: timings are printed, never asserted (this machine's load swings them many times over).
      expect(dashboard.backups).toHaveLength(1000);
      expect(dashboard.replicas.filter((c) => c.state === 'missing')).toHaveLength(10);
      expect(shownCells).toBe(MATRIX_PAGE_ROWS * 4);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(4000);
      expect(lastPage).toEqual({ shown: `backups ${1000 - MATRIX_PAGE_ROWS + 1}–1000 of 1000`, rows: MATRIX_PAGE_ROWS, oldest: dashboard.backups[0]!.id });
      expect(problemRows).toBe(10);
    } finally {
      server?.closeAllConnections(); // the browser keeps its connections alive
      await new Promise((done) => (server ? server.close(done) : done(undefined)));
      await big.close();
      await rm(root, { recursive: true, force: true });
    }
  }, 300_000);
});
