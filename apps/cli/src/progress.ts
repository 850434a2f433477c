import type { ProgressEvent } from '@stowage/core';
import { formatBytes } from './format.js';

/** Where the bar is drawn: stderr, or a fake terminal in tests. */
export interface ProgressStream {
  write(text: string): unknown;
  columns?: number;
}

/**
 * A one-line progress display on a terminal: the phase, the bytes done (of the total when known),
 * the rate over the phase so far and, with a total, the time left. Drawn from the first event and
 * then at most every `intervalMs`, so a run shows what it does from its first second.
 */
export class ProgressRenderer {
  #event: ProgressEvent | undefined;
  #phase: string | undefined;
  #phaseStart = 0;
  #lastDraw = Number.NEGATIVE_INFINITY;
  #drawn = false;
  #ticker: ReturnType<typeof setInterval> | undefined;

  /** `tickMs`: how often the line is redrawn without news (the elapsed time of a long phase); 0: never. */
  constructor(
    readonly stream: ProgressStream,
    readonly now: () => number = Date.now,
    readonly intervalMs = 200,
    readonly tickMs = 1000,
  ) {}

  update(event: ProgressEvent): void {
    const now = this.now();
    this.#event = event;
    if (event.phase !== this.#phase) {
      this.#phase = event.phase;
      this.#phaseStart = now;
    } else if (now - this.#lastDraw < this.intervalMs && event.done !== event.total) return;
    this.#draw(now);
    if (this.tickMs > 0 && !this.#ticker) this.#ticker = setInterval(() => this.#event && this.#draw(this.now()), this.tickMs).unref();
  }

  #draw(now: number): void {
    this.#lastDraw = now;
    const line = progressLine(this.#event!, now - this.#phaseStart);
    const width = (this.stream.columns ?? 80) - 1;
    this.stream.write(`\r\x1b[2K${line.length > width ? line.slice(0, width) : line}`);
    this.#drawn = true;
  }

  /** Erases the bar (before a line of text, and at the end); the next event draws it again. */
  clear(): void {
    clearInterval(this.#ticker);
    this.#ticker = undefined;
    this.#event = undefined;
    if (this.#drawn) this.stream.write('\r\x1b[2K');
    this.#drawn = false;
  }
}

/** `upload    [######........]  42%  12.3 MiB / 29.1 MiB  4.1 MiB/s  ETA 5s`; without a total, the bytes and rate. */
export function progressLine(event: ProgressEvent, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (event.done / elapsedMs) * 1000 : 0;
  const speed = rate > 0 ? `  ${formatBytes(rate)}/s` : '';
  if (!event.total) return `${event.phase.padEnd(9)} ${event.done > 0 ? `${formatBytes(event.done)}${speed}` : '…'}  ${formatSeconds(elapsedMs)}`;
  const fraction = Math.min(1, event.done / event.total);
  const width = 20;
  const filled = Math.round(fraction * width);
  const bar = `${event.phase.padEnd(9)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
  // A thaw counts archived artifacts that became readable, not bytes.
  if (event.phase === 'thaw') return `${bar}  ${event.done} of ${event.total} readable  ${formatSeconds(elapsedMs)}`;
  const eta = rate > 0 && fraction < 1 ? `  ETA ${formatSeconds(((event.total - event.done) / rate) * 1000)}` : '';
  return `${bar}  ${formatBytes(event.done)} / ${formatBytes(event.total)}${speed}${eta}`;
}

function formatSeconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
