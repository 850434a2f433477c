import { createServer } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backup, drill, openEngine, resolveConfig, verify, type Engine } from '@stowage/core';
import { createGreaterWmsDatabase } from '@stowage/fixtures';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveMetrics, writeMetricsFile } from './metrics.js';

let dir: string;
let engine: Engine;

/** Prometheus text format → { 'name{labels}': value }. */
function parse(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^(\S+)\s+(\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    out[match[1]!] = Number(match[2]);
  }
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-metrics-'));
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'));
  engine = await openEngine(
    resolveConfig({ source: { database: 'db.sqlite3' }, destinations: [{ name: 'local', url: 'backups' }] }, join(dir, 'stowage.config.json')),
  );
  await backup(engine, { type: 'full' });
  await verify(engine, { all: true });
  await drill(engine);
});
afterAll(async () => {
  await engine?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('Prometheus metrics', () => {
  it('are scraped over HTTP and parse: last success, bytes per destination, RPO age, verify, drill RTO, health', async () => {
    const server = await serveMetrics(engine, `127.0.0.1:${await freePort()}`);
    try {
      const { port } = server.address() as { port: number };
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      const samples = parse(await response.text());
      expect(samples['stowage_last_success_timestamp_seconds{type="full"}']).toBeGreaterThan(Date.now() / 1000 - 120);
      expect(samples['stowage_destination_bytes{destination="local"}']).toBeGreaterThan(100_000);
      expect(samples['stowage_destination_up{destination="local"}']).toBe(1);
      expect(samples['stowage_replica_verified{destination="local"}']).toBe(1);
      expect(samples.stowage_rpo_age_seconds).toBeLessThan(120);
      expect(samples.stowage_last_verify_ok).toBe(1);
      expect(samples.stowage_last_drill_ok).toBe(1);
      expect(samples.stowage_last_drill_rto_seconds).toBeGreaterThan(0);
      expect(samples.stowage_healthy).toBe(1);
      expect((await fetch(`http://127.0.0.1:${port}/other`)).status).toBe(404);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('write a textfile for node_exporter, and refuse a port in use with a clear error', async () => {
    const path = join(dir, 'stowage.prom');
    await writeMetricsFile(engine, path);
    expect(parse(await readFile(path, 'utf8')).stowage_healthy).toBe(1);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      await expect(serveMetrics(engine, `127.0.0.1:${port}`)).rejects.toThrow(`--metrics-listen: 127.0.0.1:${port} is already in use; pick another port`);
    } finally {
      blocker.close();
    }
  });
});

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
