import { Duplex, type Readable, type Writable } from 'node:stream';

/**
 * A Duplex whose writable side feeds `input` and whose readable side is `output`, with
 * backpressure both ways. Unlike `Duplex.from({ readable, writable })`, a plain `destroy()`
 * (no error) does not emit an AbortError that would crash a process without an error listener.
 */
export class BridgeDuplex extends Duplex {
  readonly #input: Writable;
  readonly #output: Readable;

  constructor(input: Writable, output: Readable) {
    super();
    this.#input = input;
    this.#output = output;
    output.pause();
    output.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) output.pause();
    });
    output.on('end', () => this.push(null));
    output.on('error', (error) => this.destroy(error));
    input.on('error', (error) => this.destroy(error));
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // A copy: `input` completes the write once the chunk is queued, long before openpgp.js
    // reads it, and a writer may reuse its buffer as soon as the write has completed.
    this.#input.write(Buffer.from(chunk), encoding, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#input.end(callback);
  }

  override _read(): void {
    this.#output.resume();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#input.destroy();
    this.#output.destroy();
    callback(error);
  }
}
