/*
 * `stowage serve`: the status page over HTTP, read-only (GET and HEAD only; nothing here can
 * start a restore or change a destination), with its JSON API under /api and the Prometheus
 * metrics at /metrics.
 *
 * Safe by default: it binds to loopback, and then answers only requests addressed to a loopback
 * name (a web page elsewhere cannot reach it through DNS rebinding). Any other address needs a
 * bearer token from `--auth-token-env NAME`, required on every request as `Authorization: Bearer`,
 * or once as `/?token=…`, which sets an HttpOnly cookie and redirects to a URL without the token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { listBackups, status, type Engine } from '@stowage/core';
import { backupSummaries } from '../commands.js';
import { jsonVocabulary } from '../output.js';
import { UsageError } from '../exit-codes.js';
import { renderMetrics } from '../metrics.js';
import { buildDashboard } from './model.js';
import { contentSecurityPolicy, renderDashboard } from './render.js';
import { DEFAULT_LISTEN } from './defaults.js';

/** Shortest token accepted: a guessable token on a network is no protection. */
const MIN_TOKEN_LENGTH = 16;
const COOKIE = 'stowage_token';

export interface ServeOptions {
  /** `HOST:PORT`, default `127.0.0.1:8787`; port 0 picks a free one. */
  listen?: string;
  /** Name of the environment variable holding the bearer token (required beyond loopback). */
  authTokenEnv?: string;
  /** The option names to use in messages (`--listen` for serve, `--http` for the daemon). */
  flag?: string;
}

/** Parses `HOST:PORT` (`[::1]:8787` for IPv6). */
export function parseListen(listen: string, flag: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new UsageError(`${flag}: '${listen}' is not HOST:PORT (e.g. 127.0.0.1:8787)`);
  return { host: (match[1] ?? match[2])!, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '::ffff:127.0.0.1';
}

/** Checks the bind and token before anything listens: a non-loopback bind without a token is refused. */
export function authTokenFor(options: ServeOptions, host: string): string | undefined {
  const flag = options.flag ?? '--listen';
  if (options.authTokenEnv === undefined) {
    if (!isLoopback(host)) {
      throw new UsageError(
        `${flag}: ${host} is not a loopback address; to serve the status page beyond this machine, put a bearer token in an environment variable and pass --auth-token-env NAME`,
      );
    }
    return undefined;
  }
  const token = process.env[options.authTokenEnv];
  if (!token) throw new UsageError(`--auth-token-env: the environment variable ${options.authTokenEnv} is not set or empty`);
  if (token.length < MIN_TOKEN_LENGTH)
    throw new UsageError(
      `--auth-token-env: the token in ${options.authTokenEnv} is shorter than ${MIN_TOKEN_LENGTH} characters; use a long random one (openssl rand -hex 32)`,
    );
  return token;
}

/** Starts the status page server; resolves once it listens. */
export async function serveDashboard(engine: Engine, options: ServeOptions = {}): Promise<Server> {
  const flag = options.flag ?? '--listen';
  const { host, port } = parseListen(options.listen ?? DEFAULT_LISTEN, flag);
  const token = authTokenFor(options, host);
  const routes: Record<string, () => Promise<{ type: string; body: string }>> = {
    '/': async () => ({ type: 'text/html; charset=utf-8', body: renderDashboard(await buildDashboard(engine), { served: true }) }),
    '/api/dashboard': async () => json(await buildDashboard(engine)),
    '/api/status': async () => json(await status(engine)),
    '/api/backups': async () => json({ backups: backupSummaries(await listBackups(engine)) }),
    '/metrics': async () => ({ type: 'text/plain; version=0.0.4; charset=utf-8', body: await renderMetrics(engine) }),
  };
  const server = createServer((request, response) => {
    handle(request, response, routes, token).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`${(error as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new UsageError(`${flag}: ${host}:${port} is already in use; pick another port`)
          : error.code === 'EADDRNOTAVAIL'
            ? new UsageError(`${flag}: ${host} is not an address of this machine`)
            : error,
      ),
    );
    server.listen(port, host, resolve);
  });
  return server;
}

/** `http://127.0.0.1:8787/` (`http://[::1]:8787/`): where a listening server answers. */
export function serverUrl(server: Server): string {
  const { address, port } = server.address() as { address: string; port: number };
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}/`;
}

/** An API answer: the same data and field names as the `result` of the CLI's --json envelope. */
const json = (value: unknown) => ({ type: 'application/json; charset=utf-8', body: `${JSON.stringify(jsonVocabulary(value), null, 2)}\n` });

async function handle(
  request: IncomingMessage,
  response: ServerResponse,
  routes: Record<string, () => Promise<{ type: string; body: string }>>,
  token: string | undefined,
): Promise<void> {
  const headers = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' };
  const url = new URL(request.url ?? '/', 'http://stowage.invalid');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { ...headers, allow: 'GET, HEAD' }).end('the status page is read-only\n');
    return;
  }
  if (token === undefined) {
    const hostHeader = request.headers.host ?? '';
    const name = hostHeader.startsWith('[') ? hostHeader.slice(1, hostHeader.indexOf(']')) : hostHeader.split(':')[0]!;
    if (!isLoopback(name)) {
      response.writeHead(421, headers).end('this status page answers only on a loopback address\n');
      return;
    }
  } else {
    const offered = url.searchParams.get('token');
    if (offered !== null && sameSecret(offered, token)) {
      response
        .writeHead(303, { ...headers, location: url.pathname, 'set-cookie': `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/` })
        .end();
      return;
    }
    if (!sameSecret(presentedToken(request) ?? '', token)) {
      response
        .writeHead(401, { ...headers, 'www-authenticate': 'Bearer realm="stowage"' })
        .end('a bearer token is required (Authorization: Bearer …, or open /?token=… once)\n');
      return;
    }
  }
  const route = routes[url.pathname];
  if (!route) {
    response.writeHead(404, headers).end(
      `no such page; see / or ${Object.keys(routes)
        .filter((r) => r !== '/')
        .join(', ')}\n`,
    );
    return;
  }
  const { type, body } = await route();
  const security = type.startsWith('text/html') ? { 'content-security-policy': contentSecurityPolicy(true) } : {};
  response.writeHead(200, { ...headers, ...security, 'content-type': type, 'content-length': Buffer.byteLength(body) });
  response.end(request.method === 'HEAD' ? undefined : body);
}

function presentedToken(request: IncomingMessage): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  if (bearer) return bearer[1];
  const cookie = (request.headers.cookie ?? '').split(/;\s*/).find((c) => c.startsWith(`${COOKIE}=`));
  if (cookie === undefined) return undefined;
  try {
    return decodeURIComponent(cookie.slice(COOKIE.length + 1));
  } catch {
    return undefined;
  }
}

/** Compares in constant time (hashes first, so lengths leak nothing either). */
function sameSecret(a: string, b: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(a), digest(b));
}
