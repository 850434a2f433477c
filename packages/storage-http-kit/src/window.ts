/**
 * The parts of one multipart upload in flight: at most `size` at once; the first failure aborts
 * `controller` (stopping the others and the body) and is the error every later call throws.
 */
export class PartWindow {
  readonly #running = new Set<Promise<void>>();
  #failure: { error: unknown } | undefined;

  constructor(
    readonly size: number,
    readonly controller: AbortController,
  ) {}

  /** Waits for room, then starts `upload`; throws the first failure once there is one. */
  async add(upload: () => Promise<void>): Promise<void> {
    while (this.#running.size >= this.size) await Promise.race(this.#running);
    this.#throwIfFailed();
    const task: Promise<void> = upload()
      .catch((error: unknown) => {
        this.#failure ??= { error };
        this.controller.abort(error);
      })
      .finally(() => this.#running.delete(task));
    this.#running.add(task);
  }

  /** Waits for every part in flight; throws the first failure. */
  async drain(): Promise<void> {
    await Promise.all(this.#running);
    this.#throwIfFailed();
  }

  /**
   * After any error: aborts what is in flight and waits for it to settle. Returns the error to
   * report — the first part's failure when there was one (the others, and the body's, only echo it).
   */
  async stop(error: unknown): Promise<unknown> {
    const reason = this.#failure ? this.#failure.error : error;
    this.controller.abort(reason);
    await Promise.allSettled([...this.#running]);
    return reason;
  }

  #throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }
}
