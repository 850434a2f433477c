import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { OffThreadSha256 } from './off-thread-sha256.js';

describe('OffThreadSha256', () => {
  it('hashes what it is given, in order, through a ring much smaller than the input (wrapping, waiting for room)', async () => {
    const hasher = new OffThreadSha256(4096);
    const expected = createHash('sha256');
    for (let i = 0; i < 300; i++) {
      const chunk = randomBytes(1 + ((i * 7919) % 9000)); // 1 byte to over two rings
      expected.update(chunk);
      await hasher.update(chunk);
      chunk.fill(0); // the caller may reuse its buffer once update resolved
    }
    expect(await hasher.digest()).toBe(expected.digest('hex'));
  });

  it('of nothing, the SHA-256 of the empty string; a hasher closed early leaves no thread behind', async () => {
    expect(await new OffThreadSha256().digest()).toBe(createHash('sha256').digest('hex'));
    const closed = new OffThreadSha256(1024);
    await closed.update(randomBytes(512));
    await closed.close();
    await expect(closed.digest()).rejects.toThrow(/exited/);
  });
});
