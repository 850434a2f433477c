import { Readable } from 'node:stream';
import type { RetryOptions } from '@stowage/storage';
import { isNetworkError } from './network.js';

/** Options of `resumableGet`. */
export interface ResumableGetOptions {
  /** The key being read, for `onRetry`. */
  key: string;
  /** Bytes the first response announced; a body that ends short of them counts as cut. Unknown: any end is the end. */
  length?: number | undefined;
  /**
   * Re-issues the GET for the bytes after the first `received` ones (a Range from there, with
   * If-Match on the first response's ETag so a replaced object is never spliced on). What it
   * throws is passed on as it is (the adapter maps a failed precondition to `object_changed`).
   */
  openAt: (received: number) => Promise<Readable>;
  /** Resumes at most (default 3); a cut after the last one fails the output. */
  maxResumes?: number;
  /** Called before each resume (operation `get`, no delay, `resumeAt` the bytes received), e.g. to log it. */
  onRetry?: RetryOptions['onRetry'] | undefined;
  /** Maps what broke the body (a network error, or a cut-short error it made) onto the error the output fails with. */
  toError: (error: unknown) => Error;
}

/**
 * One output stream over a response body that, when the body breaks with a network error (or
 * ends short of `length`) after N bytes, continues from a new GET of the bytes after N, at most
 * `maxResumes` times. Any other error of the body fails the output at once. Destroying the output
 * destroys the body being read.
 */
export function resumableGet(first: Readable, options: ResumableGetOptions): Readable {
  const { key, length, openAt, onRetry, toError } = options;
  const maxResumes = Math.max(0, options.maxResumes ?? 3);
  let source = first;
  let stopped = false;
  async function* chunks(): AsyncGenerator<Buffer> {
    let received = 0;
    try {
      for (let resumes = 0; ; resumes++) {
        let cut: unknown;
        try {
          for await (const chunk of source) {
            received += (chunk as Buffer).length;
            yield chunk as Buffer;
          }
          if (length === undefined || received >= length) return;
          cut = Object.assign(new Error(`the connection ended after ${received} of ${length} bytes`), { code: 'ECONNRESET' });
        } catch (error) {
          if (stopped) return;
          if (!isNetworkError(error)) throw toError(error);
          cut = error;
        }
        source.destroy();
        if (resumes >= maxResumes) throw toError(cut);
        onRetry?.({ operation: 'get', key, attempt: resumes + 1, delayMs: 0, error: cut, resumeAt: received });
        source = await openAt(received);
        if (stopped) return;
      }
    } finally {
      source.destroy();
    }
  }
  const output = Readable.from(chunks(), { objectMode: false });
  // The generator may be waiting on the body, where it cannot be returned from: break the body first.
  const destroy = output._destroy.bind(output);
  output._destroy = (error, callback) => {
    stopped = true;
    source.destroy();
    destroy(error, callback);
  };
  return output;
}
