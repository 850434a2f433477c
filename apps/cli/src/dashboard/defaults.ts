/** Where `stowage serve` listens by default (apart from server.ts: the CLI's option definitions load no server). */
export const DEFAULT_LISTEN = '127.0.0.1:8787';
