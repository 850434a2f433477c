import { isStowageError } from '@stowage/errors';

/** Exit codes of every Stowage command. */
export const ExitCode = {
  Ok: 0,
  /** The operation failed (nothing was changed that should not have been). */
  Failed: 1,
  /** Usage or configuration error: fix the command line or the config. */
  Usage: 2,
  /** Succeeded but degraded: some destination is missing its replica (replication). */
  Degraded: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** Usage errors raised by the CLI itself (a flag not available yet, a conflicting option). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'stowage.usage.invalid';
}

export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof UsageError) return ExitCode.Usage;
  if (
    isStowageError(error) &&
    (error.code.startsWith('stowage.config.') ||
      error.code.startsWith('stowage.usage.') ||
      error.code === 'stowage.storage.invalid_config' ||
      error.code === 'stowage.storage.unknown_scheme' ||
      error.code === 'stowage.source.not_found')
  ) {
    return ExitCode.Usage;
  }
  return ExitCode.Failed;
}
