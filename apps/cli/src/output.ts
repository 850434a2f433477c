import { isStowageError } from '@stowage/errors';
import { UsageError } from './exit-codes.js';
import { nativeModuleFailure } from './native.js';
import type { ProgressEvent } from '@stowage/core';

export interface OutputOptions {
  json: boolean;
  quiet: boolean;
}

/**
 * Where a command's words go. Human text on stdout (unless --quiet); with --json, one JSON document
 * on stdout and everything else on stderr. Warnings and errors always go to stderr.
 */
export class Output {
  readonly #progress: ProgressBar | undefined;

  constructor(
    readonly options: OutputOptions,
    readonly program: string,
  ) {
    this.#progress = !options.json && !options.quiet && process.stderr.isTTY ? new ProgressBar() : undefined;
  }

  /** A line for people; suppressed by --quiet and --json. */
  say(line = ''): void {
    if (this.options.quiet) return;
    this.#progress?.clear();
    (this.options.json ? process.stderr : process.stdout).write(`${line}\n`);
  }

  /** The machine-readable result (only with --json). */
  result(value: unknown): void {
    if (this.options.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  warn(message: string): void {
    this.#progress?.clear();
    process.stderr.write(`${this.program}: warning: ${message}\n`);
  }

  error(error: unknown): void {
    this.#progress?.clear();
    const native = nativeModuleFailure(error);
    const message = native ?? (error instanceof Error ? error.message : String(error));
    process.stderr.write(`${this.program}: error: ${message}\n`);
    if (this.options.json) {
      const code = native ? 'stowage.runtime.native_module' : isStowageError(error) || error instanceof UsageError ? error.code : 'stowage.unexpected';
      process.stdout.write(`${JSON.stringify({ ok: false, error: { code, message } }, null, 2)}\n`);
    }
  }

  progress = (event: ProgressEvent): void => this.#progress?.update(event);

  done(): void {
    this.#progress?.clear();
  }
}

/** A one-line progress bar on a TTY, shown only for work that takes longer than a second. */
class ProgressBar {
  readonly #started = Date.now();
  #drawn = false;
  #lastDraw = 0;

  update(event: ProgressEvent): void {
    const now = Date.now();
    if (now - this.#started < 1000 || now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const width = 30;
    let text = `${event.phase}…`;
    if (event.total) {
      const fraction = Math.min(1, event.done / event.total);
      const filled = Math.round(fraction * width);
      text = `${event.phase.padEnd(9)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${event.phase === 'thaw' ? `${event.done} of ${event.total} readable` : formatBytes(event.done)}`;
    }
    process.stderr.write(`\r\x1b[2K${text}`);
    this.#drawn = true;
  }

  clear(): void {
    if (this.#drawn) process.stderr.write('\r\x1b[2K');
    this.#drawn = false;
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
