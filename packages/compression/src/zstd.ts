/*
 * zstd streams on zstd-napi's native contexts. Compression uses zstd-napi's CompressStream with
 * the content checksum on (as the `zstd` CLI does), so decoding detects corrupt data. With
 * `workers` > 0 zstd compresses in its own threads and the calling thread only hands over
 * buffers, which leaves it free for the next stage (encryption) of a backup pipeline.
 * Decompression is our own Transform over a DCtx so that every way input can be bad (not zstd,
 * corrupt, checksum mismatch, truncated, empty) ends in one typed error.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { CompressStream } from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { CompressionError, CompressionErrorCode, decodeError } from './errors.js';

/** The default zstd level, the same as the `zstd` CLI's. */
export const DEFAULT_LEVEL = 3;
/**
 * The default number of zstd worker threads: 2. With the rest of a backup's pipeline (hashing,
 * encryption) on the calling thread, one worker leaves the second core partly idle; two take
 * whatever CPU that leaves (docs/benchmarks.md, zstd -3 → encrypt: 193 MiB/s with 1 worker, 264
 * with 2), with the same output.
 */
export const DEFAULT_WORKERS = 2;
/**
 * Input bytes per job when zstd compresses in worker threads. zstd's default at level 3 is 8 MiB
 * (4 windows), and it keeps several jobs' input and output in flight: about 75 MiB of buffers
 * with one worker. 2 MiB jobs hold about 20 MiB; measured on the 256 MiB GreaterWMS fixture,
 * the output grows by 1.4 % (each job starts from an overlap of the previous one, not its whole window).
 */
const JOB_BYTES = 2 << 20;
/**
 * Inputs up to this size are compressed on the calling thread whatever `workers` says: a few
 * jobs gain next to nothing from worker threads, whose buffers (~20 MiB) are only freed when the
 * stream is garbage-collected — while the next stream already holds its own.
 */
const SMALL_INPUT_BYTES = 8 * JOB_BYTES;

/** Options of `createCompressStream`. */
export interface CompressOptions {
  /** zstd level, 1 (fastest) to 19 (smallest); default 3. */
  level?: number;
  /**
   * zstd worker threads; default 2 (`DEFAULT_WORKERS`), so compression runs beside the calling
   * thread. 0 compresses on the calling thread. The output is the same for any number above 0.
   */
  workers?: number;
  /** The input's size in bytes, when known: an input of at most 16 MiB is compressed on the calling thread. */
  inputSize?: number;
}

/**
 * A Transform that compresses into one zstd frame with a content checksum; `zstd -d` reads it.
 * Use it in `stream.pipeline`.
 */
export function createCompressStream(options: CompressOptions = {}): Transform {
  const level = options.level ?? DEFAULT_LEVEL;
  const workers = options.workers ?? DEFAULT_WORKERS;
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw new CompressionError(CompressionErrorCode.InvalidOptions, `zstd level must be an integer from 1 to 19, not ${level}`, { context: { level } });
  }
  if (!Number.isInteger(workers) || workers < 0 || workers > 64) {
    throw new CompressionError(CompressionErrorCode.InvalidOptions, `zstd workers must be an integer from 0 to 64, not ${workers}`, { context: { workers } });
  }
  const { inputSize } = options;
  if (inputSize !== undefined && !(Number.isSafeInteger(inputSize) && inputSize >= 0)) {
    throw new CompressionError(CompressionErrorCode.InvalidOptions, `the input size must be a whole number of bytes, not ${inputSize}`, {
      context: { inputSize },
    });
  }
  const threads = workerThreads(workers, inputSize);
  return new CompressStream({ compressionLevel: level, checksumFlag: true, nbWorkers: threads, ...(threads > 0 ? { jobSize: JOB_BYTES } : {}) });
}

/** The worker threads zstd gets: none for an input known to be small. */
export function workerThreads(workers: number, inputSize: number | undefined): number {
  return inputSize !== undefined && inputSize <= SMALL_INPUT_BYTES ? 0 : workers;
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

/**
 * A Transform that decompresses zstd data (one or more frames, from us or from `zstd`). Bad
 * input of any kind fails the stream with `stowage.compression.corrupt`; as with decryption,
 * output written before the failure must be discarded. A reader that recycles the chunks
 * (`Recycling`) keeps the stream decoding into the same few buffers.
 */
export function createDecompressStream(): Transform & Recycling {
  return new DecompressStream();
}

const OUT_SIZE = binding.dStreamOutSize();
/**
 * Output buffers handed back and kept for reuse, at most (8 MiB): more than a reader keeps in
 * flight (a restore's image writes hold ~2 MiB), so a recycling reader never makes it allocate.
 */
const MAX_FREE = 64;
/** How long a context released by a finished stream is kept for the next one before it is dropped. */
const SPARE_MS = 1000;

/**
 * A decoding context released by a stream that finished its frames, for the next stream. A
 * context's window (MiBs) is malloc'd on its first frame and freed only when the context is
 * garbage-collected; restoring a chain decodes dozens of small artifacts one after the other, and
 * a fresh window for each fragmented the C heap: measured on a 24-link encrypted chain of the
 * 256 MiB fixture, reusing one context took the restore's peak RSS from ~145 MiB to ~119 MiB (medians of 3).
 */
let spare: { dctx: InstanceType<typeof binding.DCtx>; timer: NodeJS.Timeout } | undefined;

function takeContext(): InstanceType<typeof binding.DCtx> {
  const taken = spare;
  if (!taken) return new binding.DCtx();
  spare = undefined;
  clearTimeout(taken.timer);
  return taken.dctx;
}

/** Keeps `dctx` (between frames) for the next stream, for `SPARE_MS`. */
function releaseContext(dctx: InstanceType<typeof binding.DCtx>): void {
  if (spare) return;
  dctx.reset(binding.ResetDirective.sessionOnly);
  const timer = setTimeout(() => {
    if (spare?.dctx === dctx) spare = undefined;
  }, SPARE_MS).unref();
  spare = { dctx, timer };
}

/**
 * Decodes into output buffers of `OUT_SIZE` bytes, one per chunk pushed. Without recycling each is
 * garbage once read: a GiB restored left 8 500 of them to the collector (and 3 500 more, one per
 * input chunk whose last decode produced nothing, before those were kept), whose external-memory
 * accounting then started a full collection every ~12 MiB (50-80 per GiB, issue #14); recycled, a
 * restore decodes into a dozen: 1 full collection, 1.9 CPU-seconds and 15 MiB of peak RSS less on
 * the 1 GiB fixture (zstd-3 + AES).
 */
class DecompressStream extends Transform implements Recycling {
  readonly #dctx = takeContext();
  /** Buffers to decode into: handed back, or never pushed (a decode that produced nothing). */
  readonly #free: Buffer[] = [];
  /** The chunks pushed and not handed back, with the whole buffer each is the start of. */
  readonly #pushed = new WeakMap<Buffer, Buffer>();
  #inFrame = false;
  #sawInput = false;
  /** Input left over when the reader asked us to pause; resumed by `_read`. */
  #paused: { input: Buffer; callback: TransformCallback } | undefined;
  /** Set by `_read`; a reader may call it from inside `push`, before `push` returns false. */
  #readRequested = false;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length > 0) this.#sawInput = true;
    this.#decode(chunk, callback);
  }

  override _read(size: number): void {
    this.#readRequested = true;
    const paused = this.#paused;
    this.#paused = undefined;
    if (paused !== undefined) this.#decode(paused.input, paused.callback);
    // Releases a write callback that Transform held back because the reader was full; without
    // it a resumed decode that pushes nothing would leave the reader waiting forever.
    super._read(size);
  }

  recycle(chunk: Buffer): void {
    const output = this.#pushed.get(chunk);
    if (output === undefined) return;
    this.#pushed.delete(chunk);
    if (this.#free.length < MAX_FREE) this.#free.push(output);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#sawInput) callback(decodeError(new Error('the input is empty')));
    else if (this.#inFrame) callback(decodeError(new Error('the input ends in the middle of a frame')));
    else {
      releaseContext(this.#dctx); // every frame ended: nothing of this stream's is left in it
      callback();
    }
  }

  /**
   * Decodes `input`, honouring backpressure: a few KiB of zstd can expand to GiBs (zeroed
   * pages), so decoding stops whenever the reader is full and resumes in `_read`.
   */
  #decode(input: Buffer, callback: TransformCallback): void {
    try {
      for (;;) {
        // Slow: its own memory, never a slice of Buffer's shared pool.
        const output = this.#free.pop() ?? Buffer.allocUnsafeSlow(OUT_SIZE);
        const [remaining, produced, consumed] = this.#dctx.decompressStream(output, input);
        input = input.subarray(consumed);
        this.#inFrame = remaining !== 0;
        // Done once the input is consumed and the context holds no more output for us.
        const done = input.length === 0 && (produced < output.length || remaining === 0);
        this.#readRequested = false;
        let wantsMore = true;
        if (produced === 0) this.#free.push(output);
        else {
          const chunk = output.subarray(0, produced);
          this.#pushed.set(chunk, output);
          wantsMore = this.push(chunk) || this.#readRequested;
        }
        if (done) break;
        if (!wantsMore) {
          this.#paused = { input, callback };
          return;
        }
      }
    } catch (error) {
      callback(decodeError(error));
      return;
    }
    callback();
  }
}
