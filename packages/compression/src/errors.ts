import { StowageError } from '@stowage/errors';

/** Stable codes of compression errors. */
export const CompressionErrorCode = {
  /** The input is not zstd data, or it is corrupt or truncated. */
  Corrupt: 'stowage.compression.corrupt',
  /** Invalid compression options (level, workers). */
  InvalidOptions: 'stowage.compression.invalid_options',
} as const;
export type CompressionErrorCode = (typeof CompressionErrorCode)[keyof typeof CompressionErrorCode];

/** An error of `@stowage/compression`; `code` is one of `CompressionErrorCode`. */
export class CompressionError extends StowageError<CompressionErrorCode> {
  override readonly name: string = 'CompressionError';
}

/**
 * Maps a failure of zstd decoding (not zstd data, corrupt block, checksum mismatch, truncated
 * frame) to `stowage.compression.corrupt`, keeping zstd's reason in the message. A
 * CompressionError is returned as it is.
 */
export function decodeError(error: unknown): CompressionError {
  if (error instanceof CompressionError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new CompressionError(CompressionErrorCode.Corrupt, `the zstd data is corrupt, truncated or not zstd at all (${reason})`, {
    context: { reason },
    cause: error,
  });
}
