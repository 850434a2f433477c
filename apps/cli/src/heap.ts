/*
 * Two process-wide V8 settings for the program's streaming passes, made before its modules load.
 * Only the program makes them, not the libraries a host may load.
 *
 * Young generation. V8 allocates new objects there, and under a pass's allocation rate it grows
 * to its maximum (32 MiB on Node 20 and 22, 64 MiB on Node 24), all of it resident. That maximum
 * can only be set on node's command line (`--max-semi-space-size`), which a bin started through
 * `#!/usr/bin/env node` cannot pass everywhere (BusyBox's env has no `-S`); the growth factor,
 * though, is read each time the young generation would grow, so a factor of 1 keeps it at its
 * initial 2 MiB. On the 1 GiB fixture this took the peak RSS from 129 to 114–126 MiB for an
 * encrypted full backup, from 129 to 118 for an incremental and from 120 to 114 for a restore
 * (3–4 alternating pairs each), at the same speed: the passes collect it every few MiB streamed
 * anyway (`withBoundedGarbage`).
 *
 * Old generation. After each full collection V8 sets the next one's limit to the live heap times
 * a factor it derives from how fast JavaScript allocated, and the ArrayBuffers allocated since
 * count against that limit. A pass allocates little JavaScript and many buffers, so the factor
 * could come out near its floor: with 19 MiB live the limit fell to 30 MiB, and every 11 MiB of
 * buffers started a full collection. Whether it did turned on the moment of one collection: an
 * encrypted restore of a full + 24 incrementals ran 32–66 full collections in 11 of 15 runs
 * (6.4–7.7 s, 120–131 MiB) and 2–3 in the others (5.7–6.0 s, but 135–151 MiB). With a fixed
 * factor of 2 it ran 7–9 in every run, 0.7–1.6 s faster than the same code without in alternating
 * runs, and peaked at 126–141 MiB (up to 10 MiB more). Full backups, incrementals and the
 * other restores ran 1–5 (full backups up to 20 before), at the same speed and at most 3 MiB more.
 */
import { setFlagsFromString } from 'node:v8';

/** Keeps V8's young generation at 2 MiB and grows its old-generation limit by a fixed factor of 2; the bins call it before they load the program. */
export function tuneHeapForStreaming(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--heap-growing-percent=100');
}
