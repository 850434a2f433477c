/*
 * Prometheus metrics, computed from what the engine knows (committed backups, the last verify and
 * drill, firing alerts) each time they are collected: for `stowage metrics --textfile` (node
 * exporter's textfile collector) and `stowage daemon --metrics-listen HOST:PORT`.
 */
import { createServer, type Server } from 'node:http';
import { rename, writeFile } from 'node:fs/promises';
import { Gauge, Registry } from 'prom-client';
import { catalogOf, durationMs, listEachDestination, status, type Engine } from '@stowage/core';
import { UsageError } from './exit-codes.js';

/** A registry of Stowage's gauges and the function that refreshes them from the engine. */
export function metricsRegistry(engine: Engine): { registry: Registry; refresh: () => Promise<void> } {
  const registry = new Registry();
  const gauge = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers: [registry] });
  const lastSuccess = gauge('stowage_last_success_timestamp_seconds', 'Creation time of the newest committed backup, per type', ['type']);
  const lastSize = gauge('stowage_last_backup_bytes', 'Bytes stored by the newest backup of each type (per destination copy)', ['type']);
  const bytesAt = gauge('stowage_destination_bytes', 'Bytes of committed backups stored at each destination', ['destination']);
  const bytesByClass = gauge(
    'stowage_destination_storage_class_bytes',
    'Bytes of committed backups at each destination per storage class (default: not archived)',
    ['destination', 'storage_class'],
  );
  const oldestWithoutThaw = gauge(
    'stowage_oldest_restorable_without_thaw_timestamp_seconds',
    'Creation time of the oldest backup restorable without a thaw of archived objects',
  );
  const newestAt = gauge('stowage_destination_newest_backup_timestamp_seconds', 'Creation time of the newest backup each destination holds', ['destination']);
  const reachable = gauge('stowage_destination_up', '1 when the destination could be listed', ['destination']);
  const rpoAge = gauge('stowage_rpo_age_seconds', 'Age of the newest full or incremental backup');
  const rpoTarget = gauge('stowage_rpo_target_seconds', 'The RPO target');
  const healthy = gauge('stowage_healthy', '1 when stowage status is healthy');
  const problems = gauge('stowage_problems', 'Problems stowage status reports (each would fire an alert)');
  const verified = gauge('stowage_replica_verified', '1 when the newest backup is committed and verified at the destination', ['destination']);
  const firing = gauge('stowage_alerts_firing', 'Alerts firing now, by key', ['alert']);

  const refresh = async () => {
    // One catalog per refresh: status, sizes and per-destination bytes read each manifest once.
    const catalog = catalogOf(engine);
    const s = await status(engine, await listEachDestination(engine, catalog));
    for (const [type, t] of Object.entries(s.types)) if (t.createdAt) lastSuccess.set({ type }, Date.parse(t.createdAt) / 1000);
    const all = await catalog.list();
    for (const entry of all)
      lastSize.set(
        { type: entry.manifest.type },
        entry.manifest.artifacts.reduce((sum, a) => sum + a.size, 0),
      );
    const newest = all.at(-1);
    for (const destination of engine.destinations)
      verified.set({ destination: destination.name }, newest?.destinations.includes(destination.name) && newest.manifest.replicas[destination.name] ? 1 : 0);
    for (const d of s.destinations) {
      reachable.set({ destination: d.name }, d.reachable ? 1 : 0);
      if (d.ageMs !== null) newestAt.set({ destination: d.name }, (Date.now() - d.ageMs) / 1000);
      const held = await catalog.list(engine.destinations.filter((x) => x.name === d.name));
      bytesAt.set(
        { destination: d.name },
        held.reduce((sum, e) => sum + e.manifest.artifacts.reduce((n, a) => n + a.size, 0), 0),
      );
      for (const [storageClass, bytes] of Object.entries(d.bytesByClass)) bytesByClass.set({ destination: d.name, storage_class: storageClass }, bytes);
    }
    if (s.oldestWithoutThaw) oldestWithoutThaw.set(Date.parse(s.oldestWithoutThaw.createdAt) / 1000);
    if (s.rpo.ageMs !== null) rpoAge.set(s.rpo.ageMs / 1000);
    else rpoAge.set(Number.POSITIVE_INFINITY);
    rpoTarget.set(durationMs(s.targets.rpo) / 1000);
    // Verify and drill gauges exist only once one has run: a 0 would read as a failure.
    if (s.lastVerify) gauge('stowage_last_verify_ok', '1 when the last verify found every replica intact').set(s.lastVerify.ok ? 1 : 0);
    if (s.lastDrill) {
      gauge('stowage_last_drill_rto_seconds', 'Time to a usable database in the last drill').set(s.lastDrill.rtoMs / 1000);
      gauge('stowage_last_drill_ok', '1 when the last drill passed').set(s.lastDrill.ok ? 1 : 0);
    }
    healthy.set(s.healthy ? 1 : 0);
    problems.set(s.problems.length);
    for (const alert of await engine.alerts.firing()) firing.set({ alert: alert.key }, 1);
  };
  return { registry, refresh };
}

/** The metrics in Prometheus text format, freshly collected. */
export async function renderMetrics(engine: Engine): Promise<string> {
  const { registry, refresh } = metricsRegistry(engine);
  await refresh();
  return registry.metrics();
}

/** Writes the metrics atomically for node_exporter's textfile collector. */
export async function writeMetricsFile(engine: Engine, path: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, await renderMetrics(engine), { mode: 0o644 });
  await rename(temp, path);
}

/** Serves `/metrics` on `host:port`; a port in use is a clear usage error. */
export async function serveMetrics(engine: Engine, listen: string): Promise<Server> {
  const match = /^(.+):(\d+)$/.exec(listen);
  if (!match) throw new UsageError(`--metrics-listen: '${listen}' is not HOST:PORT (e.g. 127.0.0.1:9464)`);
  const server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end('see /metrics\n');
      return;
    }
    renderMetrics(engine).then(
      (text) => response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text),
      (error: unknown) => response.writeHead(500).end(`${(error as Error).message}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new UsageError(`--metrics-listen: ${listen} is already in use; pick another port`) : error),
    );
    server.listen(Number(match[2]), match[1], resolve);
  });
  return server;
}
