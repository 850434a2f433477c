/**
 * The one error base of Stowage. Every error a Stowage package throws on purpose is a
 * `StowageError`: a stable machine-readable `code` (`stowage.<area>.<what>`), a human `message`
 * that says what went wrong and what to do, a `context` object with the facts (never a secret),
 * and the underlying `cause` when there is one. Callers branch on `code`, never on the message.
 */
const BRAND = Symbol.for('@stowage/errors.StowageError');

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

  // biome-ignore-start lint/complexity/noThisInStatic: `this` is the subclass `instanceof` asks about
  /**
   * `instanceof` also accepts an error made by another copy of this class — the bundled CLI loading
   * a custom adapter that throws `StorageError` from its own `@stowage/storage` — when it carries the
   * shared brand and a class of the same name is on its prototype chain (bundles keep class names).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (typeof value !== 'object' || value === null || !(BRAND in value)) return false;
    for (let proto: unknown = Object.getPrototypeOf(value); proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto)) {
      if ((proto as { constructor?: { name?: string } }).constructor?.name === this.name) return true;
    }
    return false;
  }
  // biome-ignore-end lint/complexity/noThisInStatic: end of Symbol.hasInstance

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

/** Marks StowageErrors across copies of this package (see `StowageError[Symbol.hasInstance]`). */
Object.defineProperty(StowageError.prototype, BRAND, { value: true });

/** True when `error` is a StowageError, optionally with one of the given codes. */
export function isStowageError(error: unknown, ...codes: string[]): error is StowageError {
  return error instanceof StowageError && (codes.length === 0 || codes.includes(error.code));
}

/** The Node.js system error code (`ENOENT`, `ENOSPC`, …) of an error, if it has one. */
export function systemErrorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
