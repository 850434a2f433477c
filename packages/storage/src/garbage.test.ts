import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { digestStream } from './body.js';
import { withBoundedGarbage } from './garbage.js';

const MiB = 1 << 20;

/** `total` bytes as fresh 1 MiB buffers (each dead once hashed), and the most ArrayBuffer memory seen above the start. */
async function streamFresh(total: number): Promise<{ sha256: string; peakMiB: number }> {
  const block = randomBytes(MiB);
  const base = process.memoryUsage().arrayBuffers;
  let peak = 0;
  let sent = 0;
  const source = new Readable({
    read() {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      if (sent >= total) return void this.push(null);
      sent += MiB;
      this.push(Buffer.from(block));
    },
  });
  const { sha256 } = await digestStream(source);
  return { sha256, peakMiB: peak / MiB };
}

describe('withBoundedGarbage', () => {
  it('keeps the dead buffers of a 256 MiB pass under 20 MiB (unpaced, V8 lets ~50 MiB pile up here)', async () => {
    const { peakMiB } = await withBoundedGarbage(() => streamFresh(256 * MiB));
    expect(peakMiB).toBeLessThan(20);
  }, 60_000);

  it('returns what the pass returns and passes its failure on; a later pass is paced again', async () => {
    const failure = new Error('destination down');
    await expect(withBoundedGarbage(() => Promise.reject(failure))).rejects.toBe(failure);
    await expect(withBoundedGarbage(async () => 42)).resolves.toBe(42);
    const { peakMiB } = await withBoundedGarbage(() => withBoundedGarbage(() => streamFresh(64 * MiB)));
    expect(peakMiB).toBeLessThan(20);
  }, 60_000);
});
