import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';

/*
 * The worker: hashes the slot it is told to, in the order it is told, and says when it is done
 * with it. Inline (eval) source, so that it needs no file of its own next to the bundled CLI. It
 * imports dynamically: eval code runs as CommonJS or, when the process was started with
 * `--input-type=module` (inherited by workers), as an ES module, and `import()` works in both.
 * Messages sent before the listener is attached wait in the port.
 */
const WORKER_SOURCE = `
(async () => {
  const { parentPort, workerData } = await import('node:worker_threads');
  const { createHash } = await import('node:crypto');
  const slots = workerData.map((shared) => Buffer.from(shared));
  let hash = createHash('sha256');
  parentPort.on('message', ({ slot, length }) => {
    if (slot === -1) return parentPort.postMessage(hash.digest('hex'));
    if (slot === -2) return parentPort.postMessage((hash = createHash('sha256')) && slot);
    hash.update(slots[slot].subarray(0, length));
    parentPort.postMessage(slot);
  });
})();
`;

/**
 * A SHA-256 over bytes passed through `slots`: the caller fills a slot, calls `update`, and must
 * not refill that slot before the promise `update` returned has resolved; `digest` once, last.
 */
export interface Sha256Slots {
  readonly slots: Buffer[];
  /** Hashes the first `length` bytes of `slots[slot]` next; resolves once the slot may be refilled. */
  update(slot: number, length: number): Promise<void>;
  /** The SHA-256 (hex) of everything passed to `update`. */
  digest(): Promise<string>;
  /** Releases what it holds (whether or not the digest was taken). */
  close(): Promise<void>;
}

/**
 * `Sha256Slots` hashed on the calling thread, during `update`: for a caller whose other threads
 * keep both cores busy anyway (a full backup's compression), where another thread would only add
 * its memory.
 */
export class Sha256Here implements Sha256Slots {
  readonly slots: Buffer[];
  readonly #hash: Hash = createHash('sha256');

  constructor(slotCount: number, slotBytes: number) {
    this.slots = Array.from({ length: slotCount }, () => Buffer.allocUnsafe(slotBytes));
  }

  update(slot: number, length: number): Promise<void> {
    this.#hash.update(this.slots[slot]!.subarray(0, length));
    return Promise.resolve();
  }

  digest(): Promise<string> {
    return Promise.resolve(this.#hash.digest('hex'));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A SHA-256 computed on another thread over bytes that pass through shared buffers (`slots`), so
 * that it runs beside the caller's own work on the same bytes (a whole-file SHA-256 is the
 * longest single-threaded step of reading a database). The caller fills a slot, calls `update`,
 * and must not refill that slot before the promise `update` returned has resolved.
 */
export class Sha256Thread implements Sha256Slots {
  /** Shared buffers the caller fills; the worker reads them. */
  readonly slots: Buffer[];
  readonly #worker: Worker;
  readonly #online: Promise<void>;
  /** Waiters for the worker's answers, which come in the order of the requests. */
  readonly #waiting: Array<{ resolve: (answer: unknown) => void; reject: (error: Error) => void }> = [];
  #failed: Error | undefined;

  constructor(slotCount: number, slotBytes: number) {
    const shared = Array.from({ length: slotCount }, () => new SharedArrayBuffer(slotBytes));
    this.slots = shared.map((buffer) => Buffer.from(buffer));
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: shared });
    this.#online = new Promise((resolve, reject) => this.#worker.once('online', resolve).once('error', reject));
    this.#online.catch(() => undefined); // reported by whatever asks next
    this.#worker.on('message', (answer: unknown) => this.#waiting.shift()?.resolve(answer));
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', (code) => this.#fail(new Error(`the SHA-256 thread stopped (exit code ${code})`)));
  }

  /** Resolves once the thread runs (it starts in the background: work sent before waits for it). */
  ready(): Promise<void> {
    return this.#online;
  }

  /** Hashes the first `length` bytes of `slots[slot]` next; resolves once the slot may be refilled. */
  update(slot: number, length: number): Promise<void> {
    const done = this.#ask({ slot, length }).then(() => undefined);
    // A caller that gave up (an error elsewhere) may never wait for it: its failure is not unhandled.
    done.catch(() => undefined);
    return done;
  }

  /** The SHA-256 (hex) of everything passed to `update`; call once, last. */
  digest(): Promise<string> {
    return this.#ask({ slot: -1, length: 0 }) as Promise<string>;
  }

  /** Starts over: the next `update` is the first byte of another SHA-256 (updates sent before are dropped). */
  reset(): Promise<void> {
    return this.#ask({ slot: -2, length: 0 }).then(() => undefined);
  }

  /** Stops the thread (whether or not the digest was taken). */
  async close(): Promise<void> {
    this.#fail(new Error('the SHA-256 thread was closed'));
    await this.#worker.terminate();
  }

  #ask(request: { slot: number; length: number }): Promise<unknown> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#worker.postMessage(request);
    });
  }

  #fail(error: Error): void {
    this.#failed ??= error;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(this.#failed);
  }
}
