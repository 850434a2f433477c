import { once } from 'node:events';
import { writeFile, rename } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Engine } from '@stowage/core';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { Output } from '../output.js';
import { buildDashboard } from './model.js';
import { renderDashboard } from './render.js';
import { serveDashboard, serverUrl, type ServeOptions } from './server.js';

/** `stowage serve`: the status page until SIGINT or SIGTERM. */
export async function runServe(engine: Engine, out: Output, options: ServeOptions): Promise<ExitCode> {
  const server = await serveDashboard(engine, options);
  const url = serverUrl(server);
  out.say(`status page at ${url} (read-only${options.authTokenEnv ? `, bearer token from $${options.authTokenEnv}` : ', this machine only'}); Ctrl-C stops it`);
  out.result({ url });
  out.finish(ExitCode.Ok); // the envelope now, while the page serves
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
  try {
    await once(stop.signal, 'abort');
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  }
  return ExitCode.Ok;
}

/** `stowage report --html FILE`: the status page as one self-contained file (mode 600); `--json`: its data. */
export async function runReport(engine: Engine, out: Output, options: { html?: string }): Promise<ExitCode> {
  if (!options.html && !out.options.json) throw new UsageError('give --html FILE (a self-contained page) or --json (its data)');
  const dashboard = await buildDashboard(engine);
  if (options.html) {
    const path = resolve(options.html);
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, renderDashboard(dashboard, { served: false }), { mode: 0o600 });
    await rename(temp, path);
    out.say(
      `wrote ${path}: ${dashboard.status.healthy ? 'healthy' : 'UNHEALTHY'}, ${dashboard.backups.length} backup(s) at ${dashboard.destinations.length} destination(s)`,
    );
  }
  out.result(dashboard);
  return ExitCode.Ok;
}
