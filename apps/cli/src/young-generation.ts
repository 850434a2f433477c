/*
 * V8 allocates new objects in its young generation, which under a streaming pass's allocation rate
 * grows to its maximum (32 MiB on Node 20 and 22, 64 MiB on Node 24), all of it resident. That
 * maximum can only be set on node's command line (`--max-semi-space-size`), which a bin started
 * through `#!/usr/bin/env node` cannot pass everywhere (BusyBox's env has no `-S`); the growth
 * factor, though, is read each time the young generation would grow, so a factor of 1 stops it
 * growing. Set before the program's modules are loaded, it took the peak RSS on the 1 GiB fixture
 * here from 129 to 114–126 MiB for an encrypted full backup (112–114 once full collections came
 * sooner: garbage.ts), from 129 to 118 for an incremental and from 120 to 114 for a restore (3–4
 * alternating pairs each), at the same speed: the passes collect it every few MiB streamed anyway
 * (`withBoundedGarbage`). A process-wide setting: the program makes it, not the libraries a host
 * may load.
 */
import { setFlagsFromString } from 'node:v8';

/** Keeps V8's young generation at its initial 2 MiB for the rest of the process; the bins call it before they load the program. */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
