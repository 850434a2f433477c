import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ORPHAN_CRASHED, removeOrphans, type Engine } from '@stowage/core';
import { releaseLocks } from '../commands.js';
import { takeJobLocks, type JobRunOptions } from './jobs.js';

/**
 * Clears what a daemon or command killed mid-run left behind. Under the exclusive locks (no
 * backup, cleanup, sync, restore or drill runs meanwhile; locks of a dead pid are taken over):
 * the staging folder and drill scratch folders are emptied, and at each destination whose lock is
 * exclusive, the orphans `cleanup` would remove are deleted at once, however young (core's
 * `removeOrphans`): an artifact of a backup committed nowhere, or what an interrupted removal
 * left. (Elsewhere `stowage cleanup` removes them once an hour old.)
 */
export async function recover(engine: Engine, options: JobRunOptions): Promise<void> {
  const log = (message: string) => options.log(`recovery: ${message}`);
  const { held, engine: usable } = await takeJobLocks(engine, 'recovery', { ...options, log });
  try {
    const { stagingDir, config } = usable;
    const staged = (await readdir(stagingDir).catch(() => [] as string[])).map((name) => join(stagingDir, name));
    const scratch = (await readdir(config.stateDir)).filter((name) => name.startsWith('drill-')).map((name) => join(config.stateDir, name));
    await Promise.all([...staged, ...scratch].map((path) => rm(path, { recursive: true, force: true })));
    const exclusive = usable.destinations.filter((d) => held.some((lock) => lock.kind === 'destination' && lock.name === d.name && lock.exclusive));
    const orphans = await removeOrphans(usable, exclusive);
    if (staged.length + scratch.length) log(`removed ${staged.length} staging and ${scratch.length} scratch leftover(s) of an interrupted run`);
    const named = (items: typeof orphans) => items.map((o) => `${o.destination}:${o.what}`).join(', ');
    const crashed = orphans.filter((o) => o.why === ORPHAN_CRASHED);
    const unremoved = orphans.filter((o) => o.why !== ORPHAN_CRASHED);
    if (crashed.length) log(`deleted ${crashed.length} artifact(s) of an interrupted backup that was never committed: ${named(crashed)}`);
    if (unremoved.length) log(`deleted ${unremoved.length} object(s) left by an interrupted removal: ${named(unremoved)}`);
  } finally {
    await releaseLocks(held, log);
  }
}
