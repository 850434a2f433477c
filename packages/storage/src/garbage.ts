/*
 * Bounds the dead buffers a streaming pass leaves behind. Every chunk read, compressed, encrypted
 * or downloaded is a fresh ArrayBuffer, dead once the next stage has it; V8 frees them only in a
 * garbage collection, and starts a young-generation one for them only once ~32 MiB of young
 * ArrayBuffers have piled up (twice its 16 MiB semi-space), a full one at +64 MiB of external
 * memory. Measured on the 1 GiB fixture, that was 30–45 MiB of a backup's or restore's peak RSS
 * holding nothing. A small young generation bounds it too (the CLI's bins keep it at 2 MiB), but
 * that is a process-wide choice for the program, not a library, to make; and a timer that samples
 * memory starves while a pass keeps the event loop busy. So the hashing streams every byte of a
 * pass goes through report what they see (`streamed`), and every `PACE` bytes a young-generation
 * collection runs: a scavenge of a small young generation costs well under a millisecond.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes streamed between two collections. */
const PACE = 4 << 20;
/**
 * ArrayBuffers that survive young collections (promoted while queued) growing by this much: a full
 * collection. With the CLI's 2 MiB young generation more of them are promoted. An encrypted 1 GiB
 * full backup peaked at 122–129 MiB in 8 of 12 runs at 48 MiB (the others at 112–114), at 112–114
 * in 11 of 12 at 16 (one at 127), at the same speed; at 8 a restore ran full collections back to
 * back (+12 % CPU, +8 MiB).
 */
const FULL_BUDGET = 16 << 20;

type Collect = (options: { type: 'minor' | 'major' }) => void;

let collect: Collect | null | undefined;
let passes = 0;
let since = 0;
let floor = 0;

/** `gc()`, exposed in a fresh context, or null where the runtime refuses (the pass then runs unpaced). */
function collector(): Collect | null {
  if (collect !== undefined) return collect;
  try {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Collect;
  } catch {
    collect = null;
  }
  return collect;
}

/**
 * Runs `pass` (a backup, a restore: anything streaming many MiB) with the dead buffers it leaves
 * collected as it goes, so that its memory stays flat whatever the size. Passes may nest or overlap.
 */
export async function withBoundedGarbage<T>(pass: () => Promise<T>): Promise<T> {
  if (passes++ === 0 && collector()) {
    since = 0;
    floor = process.memoryUsage().arrayBuffers;
  }
  try {
    return await pass();
  } finally {
    passes--;
  }
}

/** Counts `bytes` that went through a stream of a pass; collects when `PACE` bytes have. Free outside a pass. */
export function streamed(bytes: number): void {
  if (passes === 0 || !collect || (since += bytes) < PACE) return;
  since = 0;
  collect({ type: 'minor' });
  const left = process.memoryUsage().arrayBuffers;
  if (left - floor < FULL_BUDGET) return;
  collect({ type: 'major' });
  floor = process.memoryUsage().arrayBuffers;
}
