import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Sha256Here, Sha256Thread, type Sha256Slots } from './sha256-thread.js';

const implementations: Array<[string, (slotCount: number, slotBytes: number) => Sha256Slots]> = [
  ['on another thread', (count, bytes) => new Sha256Thread(count, bytes)],
  ['on the calling thread', (count, bytes) => new Sha256Here(count, bytes)],
];

describe.each(implementations)('a SHA-256 through slots, %s', (_, create) => {
  it('equals the SHA-256 of the bytes passed through its slots, in order, whatever their lengths', async () => {
    const data = randomBytes(3 * 65536 + 123);
    const sha = create(2, 65536);
    try {
      const free = [Promise.resolve(), Promise.resolve()];
      for (let at = 0, n = 0; at < data.length; n++) {
        const slot = n % 2;
        await free[slot];
        const length = Math.min(1 + ((n * 40_000) % 65536), data.length - at);
        sha.slots[slot]!.set(data.subarray(at, at + length));
        free[slot] = sha.update(slot, length);
        at += length;
      }
      expect(await sha.digest()).toBe(createHash('sha256').update(data).digest('hex'));
    } finally {
      await sha.close();
    }
  });
});

describe('a SHA-256 on another thread', () => {
  it('starts over after reset, and after a digest', async () => {
    const sha = new Sha256Thread(1, 8);
    try {
      sha.slots[0]!.write('discard');
      await sha.update(0, 7);
      await sha.reset();
      sha.slots[0]!.write('kept');
      await sha.update(0, 4);
      expect(await sha.digest()).toBe(createHash('sha256').update('kept').digest('hex'));
      await sha.reset();
      expect(await sha.digest()).toBe(createHash('sha256').digest('hex'));
    } finally {
      await sha.close();
    }
  });

  it('fails what is asked of it once closed, and what was waiting when it closed', async () => {
    const sha = new Sha256Thread(1, 16);
    const waiting = sha.update(0, 16);
    await sha.close();
    await expect(waiting).rejects.toThrow(/closed/);
    await expect(sha.update(0, 16)).rejects.toThrow(/closed/);
    await expect(sha.digest()).rejects.toThrow(/closed/);
  });

  it('works in a process started with --input-type=module (the worker inherits it: its code then runs as an ES module)', async () => {
    const module = fileURLToPath(new URL('./sha256-thread.ts', import.meta.url));
    const script = `import { Sha256Thread } from ${JSON.stringify(module)};
      const sha = new Sha256Thread(1, 8);
      sha.slots[0].write('stowage');
      await sha.update(0, 7);
      console.log(await sha.digest());
      await sha.close();`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
    expect(stdout.trim()).toBe(createHash('sha256').update('stowage').digest('hex'));
  }, 60_000);
});
