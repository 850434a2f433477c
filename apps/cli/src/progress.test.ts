import { describe, expect, it } from 'vitest';
import { ProgressRenderer, progressLine } from './progress.js';

/** A terminal that records what is drawn: the text after the last line erase. */
function fakeTty(columns = 100) {
  const writes: string[] = [];
  return {
    stream: { columns, write: (text: string) => writes.push(text) },
    writes,
    /** What the terminal shows now. */
    shown: () => writes.join('').split('\r\x1b[2K').at(-1)!,
  };
}

describe('the progress line on a terminal', () => {
  it('draws the first event at once, then shows phase, bytes, rate and ETA', () => {
    let now = 0;
    const tty = fakeTty();
    const bar = new ProgressRenderer(tty.stream, () => now, 200, 0);
    bar.update({ phase: 'snapshot', done: 0 });
    expect(tty.shown()).toBe('snapshot  …  0s');
    bar.update({ phase: 'upload', done: 0, total: 8 * 1024 * 1024 });
    now = 2000;
    bar.update({ phase: 'upload', done: 2 * 1024 * 1024, total: 8 * 1024 * 1024 });
    // 2 MiB in 2 s: 1 MiB/s, 6 MiB left: 6 s.
    expect(tty.shown()).toBe('upload    [#####...............]  25%  2.0 MiB / 8.0 MiB  1.0 MiB/s  ETA 6s');
  });

  it('redraws at most every interval, but always the last byte', () => {
    let now = 0;
    const tty = fakeTty();
    const bar = new ProgressRenderer(tty.stream, () => now, 200, 0);
    bar.update({ phase: 'restore', done: 0, total: 1000 });
    const drawn = tty.writes.length;
    now = 50;
    bar.update({ phase: 'restore', done: 10, total: 1000 });
    expect(tty.writes.length).toBe(drawn);
    now = 100;
    bar.update({ phase: 'restore', done: 1000, total: 1000 });
    expect(tty.shown()).toMatch(/^restore {3}\[#{20}\] 100% {2}1000 B \/ 1000 B {2}9\.8 KiB\/s$/);
  });

  it('cuts the line to the terminal width and erases it on clear', () => {
    const tty = fakeTty(30);
    const bar = new ProgressRenderer(tty.stream, () => 0, 200, 0);
    bar.update({ phase: 'download', done: 5, total: 10 });
    expect(tty.shown()).toHaveLength(29);
    bar.clear();
    expect(tty.writes.at(-1)).toBe('\r\x1b[2K');
    const count = tty.writes.length;
    bar.clear(); // nothing drawn: nothing to erase
    expect(tty.writes.length).toBe(count);
  });

  it('ticks the elapsed time of a long phase without events', async () => {
    let now = 0;
    const tty = fakeTty();
    const bar = new ProgressRenderer(tty.stream, () => now, 200, 20);
    bar.update({ phase: 'encode', done: 0 });
    now = 3000;
    await new Promise((done) => setTimeout(done, 60));
    expect(tty.shown()).toBe('encode    …  3s');
    bar.clear();
    const count = tty.writes.length;
    await new Promise((done) => setTimeout(done, 60));
    expect(tty.writes.length).toBe(count); // the ticker stopped
  });

  it('formats minutes and hours of ETA', () => {
    expect(progressLine({ phase: 'upload', done: 1, total: 3601 }, 1000)).toMatch(/ETA 1h00m$/);
    expect(progressLine({ phase: 'upload', done: 1, total: 91 }, 1000)).toMatch(/ETA 1m30s$/);
  });

  it('counts a thaw in artifacts made readable, not bytes', () => {
    expect(progressLine({ phase: 'thaw', done: 1, total: 4 }, 65_000)).toBe('thaw      [#####...............]  25%  1 of 4 readable  1m05s');
  });
});
