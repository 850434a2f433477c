import type { Server } from 'node:http';
import type { Engine } from '@stowage/core';
import { serveDashboard, serverUrl } from '../dashboard/server.js';
import { serveMetrics } from '../metrics.js';

export interface DaemonHttpOptions {
  /** `--metrics-listen HOST:PORT`: Prometheus metrics at /metrics. */
  metricsListen?: string;
  /** `--http HOST:PORT`: the status page, its JSON API and /metrics. */
  http?: string;
  /** `--auth-token-env NAME`: the status page's bearer token (needed for an address beyond loopback). */
  authTokenEnv?: string;
}

/**
 * Starts the daemon's HTTP servers (each logged with the address it listens on, so port 0 shows
 * the port picked) and returns the function that closes them.
 */
export async function startDaemonHttp(engine: Engine, options: DaemonHttpOptions, log: (message: string) => void): Promise<() => Promise<void>> {
  const servers: Server[] = [];
  const close = async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  };
  try {
    if (options.metricsListen) {
      servers.push(await serveMetrics(engine, options.metricsListen));
      log(`metrics at ${serverUrl(servers.at(-1)!)}metrics`);
    }
    if (options.http) {
      servers.push(
        await serveDashboard(engine, { listen: options.http, flag: '--http', ...(options.authTokenEnv ? { authTokenEnv: options.authTokenEnv } : {}) }),
      );
      log(`status page at ${serverUrl(servers.at(-1)!)}`);
    }
  } catch (error) {
    await close();
    throw error;
  }
  return close;
}
