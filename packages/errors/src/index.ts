/**
 * The one error base of Stowage. Every error a Stowage package throws on purpose is a
 * `StowageError`: a stable machine-readable `code` (`stowage.<area>.<what>`), a human `message`
 * that says what went wrong and what to do, a `context` object with the facts (never a secret),
 * and the underlying `cause` when there is one. Callers branch on `code`, never on the message.
 */
export interface StowageErrorOptions {
  context?: Record<string, unknown>;
  cause?: unknown;
}

/**
 * A package's error class narrows the codes: `class CryptoError extends StowageError<CryptoErrorCode>`,
 * with nothing else to write but its `name`.
 */
export class StowageError<Code extends string = string> extends Error {
  override readonly name: string = 'StowageError';
  readonly code: Code;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: Code, message: string, options: StowageErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.context = Object.freeze({ ...options.context });
  }

  toJSON(): { code: string; message: string; context: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, context: this.context };
  }
}

/** True when `error` is a StowageError, optionally with one of the given codes. */
export function isStowageError(error: unknown, ...codes: string[]): error is StowageError {
  return error instanceof StowageError && (codes.length === 0 || codes.includes(error.code));
}

/** The Node.js system error code (`ENOENT`, `ENOSPC`, …) of an error, if it has one. */
export function systemErrorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
