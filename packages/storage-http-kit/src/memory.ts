import type { PartReader } from './parts.js';
import type { PartWindow } from './window.js';

const MiB = 1024 * 1024;

/**
 * Bytes of upload parts held in memory at once by all the puts of a process. A backup stores to
 * several destinations in parallel, each put reading its own parts (S3 16 MiB, OSS 8 MiB, several
 * in flight): without a shared bound, memory grew with the number of destinations. A hold larger
 * than the limit is granted alone, so every put gets at least one part; waiters are served in order.
 */
export class PartMemory {
  #held = 0;
  readonly #waiting: Array<{ bytes: number; grant: () => void }> = [];

  constructor(readonly limit: number) {}

  /** Bytes held now. */
  get held(): number {
    return this.#held;
  }

  /** Waits until `bytes` fit, then holds them; the returned function gives them back (once; later calls do nothing). */
  async hold(bytes: number): Promise<() => void> {
    const amount = Math.min(bytes, this.limit);
    if (this.#waiting.length > 0 || this.#held + amount > this.limit) {
      await new Promise<void>((grant) => this.#waiting.push({ bytes: amount, grant }));
    } else {
      this.#held += amount;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#held -= amount;
      this.#grantWaiting();
    };
  }

  /** Runs `work` while holding `bytes` (as `hold`), giving them back however it ends. */
  async holding<T>(bytes: number, work: () => Promise<T>): Promise<T> {
    const release = await this.hold(bytes);
    try {
      return await work();
    } finally {
      release();
    }
  }

  #grantWaiting(): void {
    while (this.#waiting.length > 0 && this.#held + this.#waiting[0]!.bytes <= this.limit) {
      const next = this.#waiting.shift()!;
      this.#held += next.bytes;
      next.grant();
    }
  }
}

/** What every adapter built on this kit shares: 64 MiB of parts (four S3 parts of 16 MiB, eight OSS parts of 8 MiB). */
export const PART_MEMORY = new PartMemory(64 * MiB);

/**
 * Reads `reader`'s parts one at a time and starts `upload` for each through `window` (numbered
 * from 1), holding `memory` for each part from before it is read until its upload settles (when
 * the part's buffer goes back to `reader` to be read into again: `upload` must not keep it); then
 * waits for the uploads in flight. Throws the first failure (the window's, or the body's).
 */
export async function uploadParts(
  reader: PartReader,
  window: PartWindow,
  upload: (data: Buffer, partNumber: number) => Promise<void>,
  memory: PartMemory = PART_MEMORY,
): Promise<void> {
  for (let partNumber = 1; ; partNumber++) {
    const release = await memory.hold(reader.partSize);
    let started = false;
    try {
      const data = await reader.nextPart();
      if (!data) break;
      await window.add(() =>
        upload(data, partNumber).finally(() => {
          reader.recycle(data);
          release();
        }),
      );
      started = true;
    } finally {
      if (!started) release();
    }
  }
  await window.drain();
}
