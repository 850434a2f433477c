import { systemErrorCode } from '@stowage/errors';

/**
 * Node.js error codes of a connection that failed or broke (refused, reset, timed out, name not
 * resolved, network down, a response body cut short): worth retrying, whatever the store.
 */
export const NETWORK_ERROR_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** Whether `error` (by its `code`, not its class) is a connection that failed or broke. */
export function isNetworkError(error: unknown): boolean {
  const code = systemErrorCode(error);
  return code !== undefined && NETWORK_ERROR_CODES.has(code);
}
