import { describeThawTimes, runArchive, thawStatus, type Engine, type ThawRequest } from '@stowage/core';
import type { ThawTier } from '@stowage/storage';
import { ExitCode, UsageError } from './exit-codes.js';
import { waitMs } from './commands.js';
import { formatBytes, type Output } from './output.js';

/** The thaw options of `restore`, `verify` and `drill`: `--thaw [--tier T] [--days N] [--poll D]`, and `--wait [D]`. */
export interface ThawFlags {
  thaw?: boolean | undefined;
  tier?: ThawTier | undefined;
  days?: string | undefined;
  poll?: string | undefined;
}

/**
 * The thaw a command asked for, or undefined without `--thaw`. `wait` is the global `--wait`:
 * bare, wait for the thaws as long as they take; with a duration, at most that long.
 */
export function thawRequestOf(flags: ThawFlags, wait: string | true | undefined): ThawRequest | undefined {
  if (!flags.thaw) {
    if (flags.tier !== undefined || flags.days !== undefined || flags.poll !== undefined) throw new UsageError('--tier, --days and --poll go with --thaw');
    if (wait === true) throw new UsageError('--wait without a duration waits for thaws: add --thaw (or give the lock wait a duration, e.g. --wait 10m)');
    return undefined;
  }
  const days = Number(flags.days ?? '7');
  if (!Number.isSafeInteger(days) || days < 1) throw new UsageError(`--days: '${flags.days}' is not a whole number of days (1 or more)`);
  const pollMs = flags.poll === undefined ? 60_000 : waitMs(flags.poll);
  if (pollMs <= 0) throw new UsageError('--poll must be longer than 0 s');
  return {
    tier: flags.tier ?? 'standard',
    days,
    wait: wait !== undefined,
    pollMs,
    ...(typeof wait === 'string' && { timeoutMs: waitMs(wait) }),
  };
}

/** `stowage archive run`: move backups past their destination's `archive.after` to its archive class. */
export async function runArchiveRun(engine: Engine, out: Output, options: { dryRun?: boolean; asOf?: Date }): Promise<ExitCode> {
  const result = await runArchive(engine, options);
  out.result({ ok: result.failures.length === 0, ...result, skipped: engine.unavailable });
  const verb = result.dryRun ? 'would move' : 'moved';
  for (const m of result.moved) out.say(`${verb} ${m.destination}: ${m.key} (${formatBytes(m.bytes)}) to ${m.storageClass}`);
  for (const h of result.held) out.say(`kept hot at ${h.destination}: ${h.backupId} (${h.why})`);
  const bytes = result.moved.reduce((sum, m) => sum + m.bytes, 0);
  out.say(
    `${verb} ${result.moved.length} artifact(s), ${formatBytes(bytes)}, to archive storage${result.dryRun ? '' : ', each checked by the checksum its destination reports for the copy'}`,
  );
  for (const f of result.failures) out.warn(`archive of ${f.key ?? 'backups'} at ${f.destination} failed: ${f.message}`);
  return result.failures.length === 0 ? ExitCode.Ok : ExitCode.Failed;
}

/** `stowage thaw status <backup>`: per artifact a restore reads, archived, thawing or readable. */
export async function runThawStatus(engine: Engine, out: Output, reference: string, from?: string): Promise<ExitCode> {
  const status = await thawStatus(engine, reference, from);
  const waiting = status.artifacts.filter((a) => a.state !== 'readable');
  out.result({ ok: true, ...status, readable: waiting.length === 0 });
  for (const a of status.artifacts) {
    const until = a.thawExpires ? ` until ${a.thawExpires}` : '';
    out.say(`${a.state.padEnd(9)} ${a.key} at ${a.destination}${a.storageClass ? ` (${a.storageClass})` : ''}${until}`);
  }
  if (waiting.length === 0) out.say(`${status.backupId} can be restored now (chain: ${status.chain.join(' → ')})`);
  else {
    out.say(
      `${status.backupId}: ${waiting.length} of ${status.artifacts.length} artifact(s) not readable yet; expected thaw time: ${describeThawTimes(status.expectedThawMs)}`,
    );
    if (waiting.some((a) => a.state === 'archived')) out.say(`  to thaw and restore: stowage restore ${status.backupId} --thaw --tier standard --wait`);
  }
  return ExitCode.Ok;
}
