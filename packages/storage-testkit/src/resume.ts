import { expect } from 'vitest';

/**
 * The first byte a resuming GET asked for, from its `Range: bytes=<from>-[end]` header; fails the
 * test unless the range has that form and ends at `end` (open when `end` is not given).
 *
 * A download cut mid-stream resumes from the bytes the client was handed, which can be fewer than
 * the server wrote before the cut (a response destroyed on a closed connection drops what it still
 * buffered); tests of resuming compare against this, never against the cut's offset.
 */
export function resumedFrom(range: string | undefined, end?: number): number {
  const match = /^bytes=(\d+)-(\d*)$/.exec(range ?? '');
  expect(match, `a resuming range, not ${range}`).not.toBeNull();
  expect(match![2]).toBe(end === undefined ? '' : String(end));
  return Number(match![1]);
}
