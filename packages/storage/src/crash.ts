/*
 * Test-only crash hook. `STOWAGE_CRASH_AT=<step>` (or `<step>@<n>` for its n-th pass) makes the
 * process SIGKILL itself right after that commit step, so the crash matrix
 * (apps/cli/src/crash-matrix.test.ts) can prove that a kill at any step loses nothing and leaves
 * nothing behind that the next command does not repair. Without the variable it does nothing.
 */

/** Every commit step with a crash point, in the order an operation meets them. */
export const CRASH_POINTS = [
  'lock.source-taken',
  'lock.destination-taken',
  'local.copied',
  'local.temp-written',
  'local.linked',
  'local.renamed',
  'backup.database-reading',
  'backup.snapshot-staged',
  'backup.snapshot-removed',
  'backup.artifacts-stored',
  'backup.manifest-written',
  'backup.cache-written',
  'cleanup.manifest-deleted',
  'cleanup.artifacts-deleted',
  'sync.artifact-copied',
  'sync.manifest-written',
  'restore.image-flushed',
  'restore.temp-written',
  'restore.files-staged',
  'restore.journal-written',
  'restore.set-moved-aside',
  'restore.set-moved-in',
  'restore.db-linked-aside',
  'restore.sidecars-unlinked',
  'restore.db-renamed-in',
  'restore.metadata-applied',
  'restore.journal-removed',
  'archive.artifact-copied',
  'thaw.requested',
  'lifecycle.written',
  'lock.destination-released',
  'lock.source-released',
] as const;
export type CrashPointName = (typeof CRASH_POINTS)[number];

const passes = new Map<string, number>();

/** SIGKILLs this process when `STOWAGE_CRASH_AT` names this step (and, with `@n`, this is its n-th pass). */
export function crashPoint(step: CrashPointName): void {
  const wanted = process.env.STOWAGE_CRASH_AT;
  if (!wanted?.startsWith(step)) return;
  const [name, nth = '1'] = wanted.split('@');
  if (name !== step) return;
  const pass = (passes.get(step) ?? 0) + 1;
  passes.set(step, pass);
  if (pass === Number(nth)) process.kill(process.pid, 'SIGKILL');
}
