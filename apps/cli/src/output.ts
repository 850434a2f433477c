import { isStowageError } from '@stowage/errors';
import { UsageError } from './exit-codes.js';
import { nativeModuleFailure } from './native.js';
import { ProgressRenderer } from './progress.js';
import type { ProgressEvent } from '@stowage/core';

export { formatBytes, formatDuration } from './format.js';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
}

/**
 * What every command prints on stdout with `--json`, and nothing else: `ok` (the exit code is 0),
 * `command` (e.g. `backup`, `key generate`, `db_restore`), the command's `result` (null when it
 * failed before having one), the `warnings` it also wrote to stderr, and `error` (null, or the
 * stable code and the one-line message).
 */
export interface JsonEnvelope {
  ok: boolean;
  command: string;
  result: unknown;
  warnings: string[];
  error: { code: string; message: string } | null;
}

/**
 * Where a command's words go. Human text on stdout (unless --quiet); with --json, one envelope on
 * stdout when the command ends (`finish`) and everything else on stderr. Warnings, errors and the
 * progress bar (a terminal only) always go to stderr.
 */
export class Output {
  readonly #progress: ProgressRenderer | undefined;
  #result: unknown = null;
  readonly #warnings: string[] = [];
  #error: JsonEnvelope['error'] = null;
  #finished = false;

  /** `program` prefixes messages (`stowage: error: …`); `command` names the envelope's command. */
  constructor(
    readonly options: OutputOptions,
    readonly program: string,
    readonly command: string = program,
  ) {
    this.#progress = !options.json && !options.quiet && process.stderr.isTTY ? new ProgressRenderer(process.stderr) : undefined;
  }

  /** A line for people; suppressed by --quiet, on stderr with --json. */
  say(line = ''): void {
    if (this.options.quiet) return;
    this.#progress?.clear();
    (this.options.json ? process.stderr : process.stdout).write(`${line}\n`);
  }

  /** The command's result, the envelope's `result` with --json. */
  result(value: unknown): void {
    this.#result = value;
  }

  /** A line for people on stderr, beside a document on stdout; suppressed by --quiet. */
  note(line: string): void {
    if (this.options.quiet) return;
    this.#progress?.clear();
    process.stderr.write(`${line}\n`);
  }

  warn(message: string): void {
    this.#progress?.clear();
    this.#warnings.push(message);
    process.stderr.write(`${this.program}: warning: ${message}\n`);
  }

  /** Reports the error on stderr (unless `printed`: commander's own) and keeps it for the envelope. */
  error(error: unknown, { printed = false } = {}): void {
    this.#progress?.clear();
    const native = nativeModuleFailure(error);
    const message = native ?? (error instanceof Error ? error.message : String(error));
    if (!printed) process.stderr.write(`${this.program}: error: ${message}\n`);
    const code = native ? 'stowage.runtime.native_module' : isStowageError(error) || error instanceof UsageError ? error.code : 'stowage.unexpected';
    this.#error = { code, message };
  }

  progress = (event: ProgressEvent): void => this.#progress?.update(event);

  /** Ends the output: clears the progress bar and, with --json, prints the envelope (once). */
  finish(exitCode: number): void {
    this.#progress?.clear();
    if (!this.options.json || this.#finished) return;
    this.#finished = true;
    const envelope: JsonEnvelope = {
      ok: exitCode === 0 && this.#error === null,
      command: this.command,
      result: jsonVocabulary(this.#result),
      warnings: this.#warnings,
      error: this.#error,
    };
    process.stdout.write(`${JSON.stringify(envelope, null, 2)}\n`);
  }
}

/** Field names that mean the same across commands: the engine's `backupId` is `id`, `healthy` is `ok`. */
const SAME_NAMES: Readonly<Record<string, string>> = { backupId: 'id', healthy: 'ok' };

/** `value` with the names of `SAME_NAMES` replaced at every depth (where the object does not use the new name already). */
export function jsonVocabulary(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(jsonVocabulary);
  if (value === null || typeof value !== 'object' || ![Object.prototype, null].includes(Object.getPrototypeOf(value))) return value;
  const entries = Object.entries(value);
  return Object.fromEntries(
    entries.map(([key, field]) => [SAME_NAMES[key] !== undefined && !(SAME_NAMES[key]! in value) ? SAME_NAMES[key]! : key, jsonVocabulary(field)]),
  );
}
