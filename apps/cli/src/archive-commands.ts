import { applyLifecycle, describeThawTimes, lifecycleRulesOf, runArchive, thawStatus, type Engine, type ThawRequest } from '@stowage/core';
import type { LifecycleRule, ThawTier } from '@stowage/storage';
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
  out.result({ ...result, skipped: engine.unavailable });
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
  out.result({ ...status, readable: waiting.length === 0 });
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

/** The caveat of every lifecycle rule, printed with them. */
const LIFECYCLE_CAVEAT =
  'a bucket lifecycle rule ages each object on its own: it cannot keep a chain together the way `stowage archive run` does ' +
  '(a full can go cold while incrementals replaying it are hot), and it also moves the manifests and page-hash lists ' +
  'in the folder, which `archive run` keeps hot (S3 skips objects under 128 KiB by default; OSS does not)';

/**
 * The destinations `destinations lifecycle` works on, each with the rules its archive policy stands
 * for. With `withoutPolicy` (apply), also every cloud-bucket destination without a policy, with no
 * rules: applying them removes the rules a deleted policy left behind.
 */
function lifecycleTargets(engine: Engine, only: string | undefined, withoutPolicy = false) {
  const specs = engine.config.destinations.filter((d) => (only === undefined ? d.archive !== undefined || withoutPolicy : d.name === only));
  if (only !== undefined && specs.length === 0) throw new UsageError(`no destination named '${only}' (see the config's destinations)`);
  if (only !== undefined && specs[0]!.archive === undefined && !withoutPolicy)
    throw new UsageError(`destination '${only}' has no archive policy: add "archive": { "after": …, "storageClass": … } to it first`);
  return specs.flatMap((spec) => {
    const destination = engine.destinations.find((d) => d.name === spec.name);
    if (!destination) throw new UsageError(`destination '${spec.name}' is not available for this run`);
    const { lifecycle } = destination.adapter;
    if (!lifecycle) {
      // A folder without a policy has no rules to remove either.
      if (spec.archive === undefined && only === undefined) return [];
      if (spec.archive === undefined) throw new UsageError(`destination '${only}' has no archive policy (and, a folder, no lifecycle rules to remove)`);
      throw new UsageError(
        `bucket lifecycle rules are a cloud-bucket feature (S3, OSS); '${spec.name}' (${destination.adapter.description}) has none: use stowage archive run`,
      );
    }
    return [
      {
        name: spec.name,
        description: destination.adapter.description,
        lifecycle,
        policy: spec.archive !== undefined,
        rules: spec.archive ? lifecycleRulesOf(spec.archive) : [],
      },
    ];
  });
}

const describeRule = (r: LifecycleRule) => `${r.prefix} → ${r.storageClass} after ${r.days} d`;
const sameRules = (a: readonly LifecycleRule[], b: readonly LifecycleRule[]) =>
  a.length === b.length && a.every((r) => b.some((s) => s.prefix === r.prefix && s.days === r.days && s.storageClass === r.storageClass));

/**
 * `stowage destinations lifecycle print`: per destination with an archive policy, the lifecycle
 * configuration its provider takes (stdout), the destination and the caveat on stderr.
 */
export async function runLifecyclePrint(engine: Engine, out: Output, options: { destination?: string }): Promise<ExitCode> {
  const targets = lifecycleTargets(engine, options.destination);
  const printed = targets.map((t) => ({ destination: t.name, description: t.description, rules: t.rules, ...t.lifecycle.document(t.rules) }));
  out.result({ destinations: printed, caveat: LIFECYCLE_CAVEAT });
  if (printed.length === 0) out.note('no destination has an archive policy: nothing to print');
  for (const p of printed) {
    out.note(
      `# ${p.destination} (${p.description}): ${p.format === 'json' ? 'aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration' : 'OSS PutBucketLifecycle body'}`,
    );
    out.say(p.text.trimEnd());
  }
  if (printed.length > 0) out.warn(LIFECYCLE_CAVEAT);
  return ExitCode.Ok;
}

/**
 * `stowage destinations lifecycle apply`: writes each destination's rules (replacing only
 * Stowage's own for its prefix, see `isOwnLifecycleRule`) under the bucket's lifecycle lock, then
 * reads them back to confirm. A cloud destination without an archive policy that still has
 * Stowage rules (its policy was deleted) has them removed; the bucket's other rules are kept.
 */
export async function runLifecycleApply(
  engine: Engine,
  out: Output,
  options: { destination?: string; yes?: boolean; waitMs?: number; command?: string },
): Promise<ExitCode> {
  const targets = [];
  for (const t of lifecycleTargets(engine, options.destination, true)) {
    // Without a policy only leftovers are written: a bucket with none is not touched.
    if (t.policy || (await t.lifecycle.get()).length > 0) targets.push(t);
  }
  if (targets.length > 0 && !options.yes) {
    throw new UsageError(`apply replaces Stowage's lifecycle rules at ${targets.map((t) => t.name).join(', ')} (other rules are kept): add --yes`);
  }
  const applied = [];
  for (const t of targets) {
    const readBack = await applyLifecycle(engine, t.name, t.rules, {
      ...(options.waitMs !== undefined && { waitMs: options.waitMs }),
      ...(options.command !== undefined && { command: options.command }),
    });
    applied.push({ destination: t.name, description: t.description, rules: t.rules, readBack, confirmed: sameRules(t.rules, readBack) });
  }
  const ok = applied.every((a) => a.confirmed);
  out.result({ destinations: applied, caveat: LIFECYCLE_CAVEAT });
  if (applied.length === 0) out.say('no destination has an archive policy or Stowage rules left over: nothing to apply');
  for (const a of applied) {
    out.say(`${a.destination} (${a.description}): ${a.rules.map(describeRule).join('; ') || "no archive policy: Stowage's rules removed"}`);
    out.say(
      a.confirmed
        ? '  read back: the bucket has exactly these Stowage rules'
        : `  read back DIFFERENT rules: ${a.readBack.map(describeRule).join('; ') || 'none'}`,
    );
  }
  if (applied.length > 0) out.warn(LIFECYCLE_CAVEAT);
  return ok ? ExitCode.Ok : ExitCode.Failed;
}
