/*
 * zstd decoding, on a thread of its own. Decoding is most of what a restore's calling thread
 * would do (~2 s per GiB, beside ~1 s of hashing and the writes); on another thread it runs beside
 * the rest. One thread serves every decoding stream of the process (a chain restore decodes dozens
 * of artifacts one after the other; a thread costs ~0.15 s to start), each with its own context, and
 * keeps the process alive only while a stream is open. `stopDecodeThread` ends it before long work
 * that decodes nothing, which then runs without its memory (~14 MiB).
 *
 * Flow: the stream copies each input chunk to the thread, in pieces of at most `INPUT_BYTES` (at
 * most `INPUTS_IN_FLIGHT` unanswered before it takes the next chunk);
 * the thread decodes into output buffers it transfers back, at most `OUTPUT_CREDIT` unread at a
 * time — the stream grants one more for each chunk its reader takes, so a few KiB that expand to
 * GiBs are decoded only as fast as they are read. A recycling reader's chunks are transferred back
 * to be decoded into again. Every way input can be bad (not zstd, corrupt, checksum mismatch,
 * truncated, empty) ends in one typed error (`decodeError`).
 */
import { createRequire } from 'node:module';
import { Transform, type TransformCallback } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { decodeError } from './errors.js';

/** Decoded chunks the thread may send before the reader takes one. */
const OUTPUT_CREDIT = 8;
/**
 * Input chunks sent and not yet decoded, at most (compressed bytes: 512 KiB, about 2 MiB decoded).
 * Enough that the thread keeps decoding while the calling thread is busy with a chunk of its own
 * (decrypting, hashing or writing one takes about a millisecond): with 2, the thread waited for
 * input, and an encrypted restore of the 1 GiB fixture took 3.8 s instead of 3.2.
 */
const INPUTS_IN_FLIGHT = 8;
/**
 * Output buffers handed back and kept by the thread for reuse, at most (8 MiB): more than a reader
 * keeps in flight (a restore's image writes hold ~2 MiB), so a recycling reader never makes it allocate.
 */
const THREAD_MAX_FREE = 64;
/** Bytes of an input buffer: a file stream's chunk; a larger chunk is sent in pieces. */
const INPUT_BYTES = 64 << 10;
/** Input buffers kept for reuse, at most: those in flight and a chunk's worth more. */
const MAX_SPARE_INPUTS = 16;

/*
 * The thread. A context released by a stream that ended cleanly is kept for the next one: a
 * context's window (MiBs) is malloc'd on its first frame and freed only when the context is
 * garbage-collected, and a fresh window for each of a chain's dozens of artifacts fragmented the C
 * heap (a 24-link chain of the 256 MiB fixture peaked at ~145 MiB against ~119 MiB reusing one).
 * Inline (eval) source, so that it needs no file of its own next to the bundled CLI;
 * it loads zstd-napi's binding from the path it is given, through `import()`, which works whether
 * eval code runs as CommonJS or as an ES module. Messages: from the stream `open`, `input`,
 * `credit`, `end`, `close` (by stream id) and `free` (buffers handed back); to it `output`,
 * `consumed` (an input chunk is decoded), `ended` and `error`.
 */
const WORKER_SOURCE = `
(async () => {
  const { parentPort, workerData } = await import('node:worker_threads');
  const { createRequire } = await import('node:module');
  const binding = createRequire(workerData.binding)(workerData.binding);
  const OUT_SIZE = binding.dStreamOutSize();
  const free = [];
  const streams = new Map();
  let spare;
  const release = (stream, reuse) => {
    streams.delete(stream.id);
    if (reuse && !spare) (spare = stream.dctx).reset(binding.ResetDirective.sessionOnly);
  };
  const fail = (stream, reason) => {
    release(stream, false);
    parentPort.postMessage({ id: stream.id, op: 'error', reason });
  };
  const pump = (stream) => {
    while (stream.queue.length > 0 && stream.credit > 0) {
      let input = stream.queue[0];
      const output = free.pop() ?? Buffer.allocUnsafeSlow(OUT_SIZE);
      let remaining, produced, consumed;
      try {
        [remaining, produced, consumed] = stream.dctx.decompressStream(output, input);
      } catch (error) {
        return fail(stream, error instanceof Error ? error.message : String(error));
      }
      input = stream.queue[0] = input.subarray(consumed);
      stream.inFrame = remaining !== 0;
      if (produced === 0) free.push(output);
      else {
        stream.credit--;
        parentPort.postMessage({ id: stream.id, op: 'output', buffer: output.buffer, length: produced }, [output.buffer]);
      }
      if (input.length === 0 && (produced < OUT_SIZE || remaining === 0)) {
        const { buffer } = stream.queue.shift();
        parentPort.postMessage({ id: stream.id, op: 'consumed', buffer }, [buffer]);
      }
    }
    if (stream.queue.length > 0 || !stream.ending) return;
    if (!stream.sawInput) return fail(stream, 'the input is empty');
    if (stream.inFrame) return fail(stream, 'the input ends in the middle of a frame');
    release(stream, true);
    parentPort.postMessage({ id: stream.id, op: 'ended' });
  };
  parentPort.on('message', (message) => {
    if (message.op === 'free') {
      for (const buffer of message.buffers) if (free.length < ${THREAD_MAX_FREE}) free.push(Buffer.from(buffer));
      return;
    }
    if (message.op === 'open') {
      const dctx = spare ?? new binding.DCtx();
      spare = undefined;
      streams.set(message.id, { id: message.id, dctx, queue: [], credit: ${OUTPUT_CREDIT}, sawInput: false, inFrame: false, ending: false });
      return;
    }
    const stream = streams.get(message.id);
    if (!stream) return; // failed or closed: what was in flight is dropped
    if (message.op === 'close') return release(stream, false);
    if (message.op === 'input') {
      const input = Buffer.from(message.buffer, 0, message.length);
      if (input.length > 0) stream.sawInput = true;
      stream.queue.push(input);
    } else if (message.op === 'credit') stream.credit += message.count;
    else if (message.op === 'end') stream.ending = true;
    pump(stream);
  });
})();
`;

type FromThread =
  | { id: number; op: 'output'; buffer: ArrayBuffer; length: number }
  | { id: number; op: 'consumed'; buffer: ArrayBuffer }
  | { id: number; op: 'ended' }
  | { id: number; op: 'error'; reason: string };

/** The process's decoding thread, started with its first stream and kept while any is open. */
class DecodeThread {
  static #current: DecodeThread | undefined;
  readonly #worker: Worker;
  readonly #streams = new Map<number, DecompressStream>();
  /** Input buffers the thread gave back. */
  readonly #inputs: ArrayBuffer[] = [];
  #nextId = 0;
  /** Set by `stopDecodeThread`: the thread ends once its last stream has. */
  #stopping = false;

  private constructor() {
    const binding = createRequire(import.meta.url).resolve('zstd-napi/binding.js');
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { binding } });
    this.#worker.on('message', (message: FromThread) => this.#streams.get(message.id)?.fromThread(message));
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', (code) => this.#fail(new Error(`the zstd decoding thread stopped (exit code ${code}); run the command again`)));
    this.#worker.unref(); // after the listeners: adding a 'message' listener refs it again
  }

  static get(): DecodeThread {
    DecodeThread.#current ??= new DecodeThread();
    return DecodeThread.#current;
  }

  open(stream: DecompressStream): number {
    const id = this.#nextId++;
    if (this.#streams.size === 0) this.#worker.ref();
    this.#streams.set(id, stream);
    this.#worker.postMessage({ op: 'open', id });
    return id;
  }

  send(message: object, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(message, transfer);
  }

  /** An `INPUT_BYTES` buffer to copy input into (one the thread gave back, if any). */
  inputBuffer(): ArrayBuffer {
    return this.#inputs.pop() ?? new ArrayBuffer(INPUT_BYTES);
  }

  /** Keeps `buffer`, an input the thread has decoded, for the next input. */
  inputDone(buffer: ArrayBuffer): void {
    if (this.#inputs.length < MAX_SPARE_INPUTS) this.#inputs.push(buffer);
  }

  /** Forgets stream `id` (the thread has dropped it, or is told to). */
  close(id: number, tellThread: boolean): void {
    if (!this.#streams.delete(id)) return;
    if (tellThread) this.#worker.postMessage({ op: 'close', id });
    if (this.#streams.size > 0) return;
    this.#worker.unref();
    if (this.#stopping) void this.#worker.terminate();
  }

  /** Ends the thread once no stream is open (at once, awaited, when none is); the next stream starts another. */
  static async stop(): Promise<void> {
    const thread = DecodeThread.#current;
    if (!thread) return;
    DecodeThread.#current = undefined;
    thread.#stopping = true;
    if (thread.#streams.size === 0) await thread.#worker.terminate();
  }

  /** The thread died: its open streams fail with `error`, and the next stream starts another thread. */
  #fail(error: Error): void {
    if (DecodeThread.#current === this) DecodeThread.#current = undefined;
    const open = [...this.#streams.values()];
    this.#streams.clear();
    for (const stream of open) stream.destroy(error);
  }
}

/**
 * A stream whose last reader may hand its chunks back to be filled again, instead of leaving
 * them to the garbage collector.
 */
export interface Recycling {
  /**
   * Hands back `chunk`, the very Buffer the stream pushed, once nothing reads it any more (what
   * hashes it has taken it, its write has completed): its memory is decoded into again. A chunk
   * handed back twice, a piece or a copy of one, or any other Buffer is ignored.
   */
  recycle(chunk: Buffer): void;
}

class DecompressStream extends Transform implements Recycling {
  /**
   * The thread and this stream's id there, taken on the first write or the end: a stream never
   * written to holds nothing of it, and one written to late gets a thread that is still running.
   */
  #link: { thread: DecodeThread; id: number } | undefined;
  /** The chunks pushed and not handed back, with the buffer each is the start of. */
  readonly #pushed = new WeakMap<Buffer, ArrayBuffer>();
  #inFlight = 0;
  /** The write callback held back until the thread has decoded an input chunk. */
  #waitingInput: TransformCallback | undefined;
  #waitingEnd: TransformCallback | undefined;
  /** Credit not yet granted: chunks pushed while the reader was full. */
  #owed = 0;
  /** Set by `_read`; a reader may call it from inside `push`, before `push` returns false. */
  #readRequested = false;
  #closed = false;

  get #opened(): { thread: DecodeThread; id: number } {
    if (!this.#link) {
      const thread = DecodeThread.get();
      this.#link = { thread, id: thread.open(this) };
    }
    return this.#link;
  }

  /** Sends `message` about this stream (opened) to its thread. */
  #send(message: object, transfer: ArrayBuffer[] = []): void {
    const { thread, id } = this.#opened;
    thread.send({ ...message, id }, transfer);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // The chunk's memory is the caller's: copies are transferred, in pieces of the thread's buffers.
    for (let at = 0; at < chunk.length || at === 0; at += INPUT_BYTES) {
      const piece = chunk.subarray(at, at + INPUT_BYTES);
      const buffer = this.#opened.thread.inputBuffer();
      new Uint8Array(buffer).set(piece);
      this.#send({ op: 'input', buffer, length: piece.length }, [buffer]);
      this.#inFlight++;
    }
    if (this.#inFlight < INPUTS_IN_FLIGHT) callback();
    else this.#waitingInput = callback;
  }

  override _flush(callback: TransformCallback): void {
    this.#waitingEnd = callback;
    this.#send({ op: 'end' });
  }

  override _read(size: number): void {
    this.#readRequested = true;
    if (this.#owed > 0 && !this.#closed) this.#send({ op: 'credit', count: this.#owed });
    this.#owed = 0;
    super._read(size);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#close(true);
    callback(error);
  }

  recycle(chunk: Buffer): void {
    const buffer = this.#pushed.get(chunk);
    if (buffer === undefined) return;
    this.#pushed.delete(chunk);
    this.#link?.thread.send({ op: 'free', buffers: [buffer] }, [buffer]);
  }

  /** A message of the thread about this stream. */
  fromThread(message: FromThread): void {
    switch (message.op) {
      case 'output': {
        const chunk = Buffer.from(message.buffer, 0, message.length);
        this.#pushed.set(chunk, message.buffer);
        this.#readRequested = false;
        if (this.push(chunk) || this.#readRequested) this.#send({ op: 'credit', count: 1 });
        else this.#owed++;
        return;
      }
      case 'consumed': {
        this.#link!.thread.inputDone(message.buffer); // a message comes only for an opened stream
        if (--this.#inFlight >= INPUTS_IN_FLIGHT) return;
        const callback = this.#waitingInput;
        this.#waitingInput = undefined;
        callback?.();
        return;
      }
      case 'ended': {
        this.#close(false);
        this.#waitingEnd?.();
        return;
      }
      case 'error': {
        this.#close(false);
        const error = decodeError(new Error(message.reason));
        const callback = this.#waitingEnd ?? this.#waitingInput;
        this.#waitingEnd = this.#waitingInput = undefined;
        if (callback) callback(error);
        else this.destroy(error);
      }
    }
  }

  #close(tellThread: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#link?.thread.close(this.#link.id, tellThread);
  }
}

/**
 * Starts the decoding thread ahead of its first stream: it takes ~0.1 s to come up, which a caller
 * can spend on other work. An idle thread does not keep the process alive.
 */
export function startDecodeThread(): void {
  DecodeThread.get();
}

/**
 * Ends the decoding thread once its open streams have ended (at once when none is), so that long
 * work that follows (a restore's `integrity_check`) runs without its memory; the next stream
 * starts another thread.
 */
export function stopDecodeThread(): Promise<void> {
  return DecodeThread.stop();
}

/**
 * A Transform that decompresses zstd data (one or more frames, from us or from `zstd`) on the
 * process's decoding thread. Bad input of any kind fails the stream with
 * `stowage.compression.corrupt` (zstd's reason in the message); as with decryption, output
 * written before the failure must be discarded. A reader that recycles the chunks (`Recycling`)
 * keeps the thread decoding into the same few buffers.
 */
export function createDecompressStream(): Transform & Recycling {
  return new DecompressStream();
}
