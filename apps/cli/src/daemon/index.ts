/** `stowage daemon`: the scheduler, jobs under locks, recovery on start, the daemon lock, its HTTP servers, the command. */
export { runDaemon, type DaemonCommandOptions } from './command.js';
export { runJob, type JobRunOptions } from './jobs.js';
export { acquireDaemonLock, type DaemonLock } from './lock.js';
export { recover } from './recovery.js';
export { Daemon, missedOnStart, nextRuns, type Clock, type DaemonOptions, type NewestBackups } from './scheduler.js';
