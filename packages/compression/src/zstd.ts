/*
 * zstd compression on zstd-napi's native contexts: zstd-napi's CompressStream with the content
 * checksum on (as the `zstd` CLI does), so decoding detects corrupt data. With `workers` > 0 zstd
 * compresses in its own threads and the calling thread only hands over buffers, which leaves it
 * free for the next stage (encryption) of a backup pipeline. Decompression runs on a thread of
 * its own (zstd-thread.ts).
 */
import type { Transform } from 'node:stream';
import { CompressStream } from 'zstd-napi';
import { CompressionError, CompressionErrorCode } from './errors.js';

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
