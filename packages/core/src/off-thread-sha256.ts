/*
 * SHA-256 of a byte stream computed in a worker thread, so the thread that produces the bytes
 * (a restore decrypting and decompressing) does not also spend ~1 s per GiB hashing them. The
 * bytes are copied into a shared ring of fixed size; the worker hashes them in place and frees
 * the room. Nothing is allocated per chunk on either side (no messages, no garbage): the two
 * threads meet on counters in shared memory (Atomics), so memory stays flat whatever the size.
 */
import { Worker } from 'node:worker_threads';

/** Bytes of the ring by default: the worker hashes several times faster than a restore decodes, so it stays nearly empty. */
const RING_BYTES = 1 << 20;
/** Slots of the shared counters. */
const HEAD = 0; // bytes put in the ring, ever
const TAIL = 1; // bytes hashed, ever
const SEQ = 2; // bumped on every publish and on close: what the worker waits on
const CLOSED = 3;

/** `Atomics.waitAsync` (Node ≥ 16; TypeScript's lib has it from es2024 on). */
const waitAsync = (Atomics as unknown as { waitAsync(array: BigInt64Array, index: number, value: bigint): { async: boolean; value: unknown } }).waitAsync;

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const hash = require('node:crypto').createHash('sha256');
const counters = new BigInt64Array(workerData.counters);
const ring = new Uint8Array(workerData.ring);
const size = BigInt(ring.length);
let hashed = 0n;
for (;;) {
  const seq = Atomics.load(counters, ${SEQ});
  const head = Atomics.load(counters, ${HEAD});
  while (hashed < head) {
    const at = Number(hashed % size);
    const n = Math.min(Number(head - hashed), ring.length - at);
    hash.update(ring.subarray(at, at + n));
    hashed += BigInt(n);
    Atomics.store(counters, ${TAIL}, hashed);
    Atomics.notify(counters, ${TAIL});
  }
  if (Atomics.load(counters, ${CLOSED}) === 1n && hashed === Atomics.load(counters, ${HEAD})) break;
  Atomics.wait(counters, ${SEQ}, seq);
}
parentPort.postMessage(hash.digest('hex'));
`;

/**
 * A SHA-256 fed with `update` (awaited: it waits while the ring is full) and read once with
 * `digest`. `close` stops the worker early (after a failure); `digest` does too. Until then the
 * worker keeps the process alive (a wait on the ring or for the digest holds no other handle):
 * the owner must end it with one of the two.
 */
export class OffThreadSha256 {
  readonly #counters: BigInt64Array;
  readonly #ring: Uint8Array;
  readonly #worker: Worker;
  readonly #result: Promise<string>;
  /** Rejects when the worker fails or ends before the digest; never resolves. */
  readonly #failed: Promise<never>;
  #head = 0n;

  constructor(ringBytes = RING_BYTES) {
    this.#counters = new BigInt64Array(new SharedArrayBuffer(4 * 8));
    this.#ring = new Uint8Array(new SharedArrayBuffer(ringBytes));
    // A small heap: the worker allocates nothing per chunk.
    this.#worker = new Worker(WORKER, {
      eval: true,
      workerData: { counters: this.#counters.buffer, ring: this.#ring.buffer },
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 8 },
    });
    this.#failed = new Promise((_, reject) => {
      this.#worker.once('error', reject);
      this.#worker.once('exit', (code) => reject(new Error(`the hashing thread exited (${code}) before the digest`)));
    });
    this.#failed.catch(() => undefined); // also read by whoever waits on the worker
    this.#result = Promise.race([new Promise<string>((resolve) => this.#worker.once('message', resolve)), this.#failed]);
    this.#result.catch(() => undefined); // read by digest(); a close() never reads it
  }

  /** Copies `bytes` into the ring for hashing; resolves once they are all in (`bytes` may be reused then). */
  async update(bytes: Uint8Array): Promise<void> {
    const size = this.#ring.length;
    for (let at = 0; at < bytes.length; ) {
      const free = size - Number(this.#head - Atomics.load(this.#counters, TAIL));
      if (free === 0) {
        await this.#roomOrFailure();
        continue;
      }
      const offset = Number(this.#head % BigInt(size));
      const n = Math.min(free, bytes.length - at, size - offset);
      this.#ring.set(bytes.subarray(at, at + n), offset);
      at += n;
      this.#head += BigInt(n);
      this.#publish();
    }
  }

  /** The hex SHA-256 of everything `update` was given; the worker then ends. */
  async digest(): Promise<string> {
    Atomics.store(this.#counters, CLOSED, 1n);
    this.#publish();
    try {
      return await this.#result;
    } finally {
      await this.close();
    }
  }

  /** Stops the worker (idempotent). */
  async close(): Promise<void> {
    await this.#worker.terminate();
  }

  #publish(): void {
    Atomics.store(this.#counters, HEAD, this.#head);
    Atomics.add(this.#counters, SEQ, 1n);
    Atomics.notify(this.#counters, SEQ);
  }

  /** Resolves when the worker has hashed something since the ring was seen full; rejects when it failed. */
  async #roomOrFailure(): Promise<void> {
    const tail = Atomics.load(this.#counters, TAIL);
    if (this.#head - tail < BigInt(this.#ring.length)) return;
    const wait = waitAsync(this.#counters, TAIL, tail);
    if (wait.async) await Promise.race([wait.value, this.#failed]);
  }
}
