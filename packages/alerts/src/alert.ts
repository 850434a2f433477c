import type { AnomalyFinding } from './anomaly.js';

export type Severity = 'critical' | 'warning';

/** One condition worth telling someone about: what happened, where, since when, and where to look. */
export interface Alert {
  /** Identity for grouping and recovery, e.g. `rpo-breached` or `backup-failed:full` (see `alertKey`). */
  key: string;
  severity: Severity;
  /** One line: what happened. */
  title: string;
  /** The facts: error messages, problems, numbers. */
  details: string;
  /** Host, config, destination. */
  where: string;
  /** When the condition started (a later raise of a firing key keeps the earliest). */
  since: Date;
  /** The command to look further, e.g. `stowage status`. */
  command: string;
}

/** The conditions the engine raises; a key is the kind, or `kind:subject` (backup type, lock name). */
export type AlertKind =
  | 'backup-failed'
  | 'backup-degraded'
  | 'cleanup-failed'
  | 'rpo-breached'
  | 'verify-failed'
  | 'drill-failed'
  | 'rto-exceeded'
  | 'size-anomaly'
  | 'lock-held';

/** The key of an alert: what `Alerter.resolve` takes when the condition clears. */
export function alertKey(kind: AlertKind, subject?: string): string {
  return subject === undefined ? kind : `${kind}:${subject}`;
}

/** Where and since when, for every builder. */
export interface Situation {
  where: string;
  since: Date;
}

const list = (items: readonly string[]) => items.map((item) => `- ${item}`).join('\n');

/**
 * Builders of the alerts the engine raises, with their keys, severities and commands. Every field
 * of the result can be overridden (`{ ...Alerts.rpoBreached(…), command: 'stowage status --config /etc/…' }`).
 */
export const Alerts = {
  /** A backup threw, or committed at fewer than `quorum` destinations. */
  backupFailed: (s: Situation & { type: string; error: string }): Alert => ({
    key: alertKey('backup-failed', s.type),
    severity: 'critical',
    title: `${s.type} backup failed`,
    details: s.error,
    where: s.where,
    since: s.since,
    command: 'stowage status',
  }),
  /** A backup committed at `quorum` destinations but not all. */
  backupDegraded: (s: Situation & { backupId: string; missing: ReadonlyArray<{ destination: string; message: string }> }): Alert => ({
    key: alertKey('backup-degraded'),
    severity: 'warning',
    title: `backup ${s.backupId} is missing at ${s.missing.map((m) => m.destination).join(', ')}`,
    details: list(s.missing.map((m) => `${m.destination}: ${m.message}`)),
    where: s.where,
    since: s.since,
    command: 'stowage sync --dry-run',
  }),
  /** Cleanup threw or could not clean some destinations. */
  cleanupFailed: (s: Situation & { error: string }): Alert => ({
    key: alertKey('cleanup-failed'),
    severity: 'warning',
    title: 'cleanup failed',
    details: s.error,
    where: s.where,
    since: s.since,
    command: 'stowage cleanup --dry-run',
  }),
  /** The newest full or incremental backup is older than the RPO target (`since`: when it crossed it). */
  rpoBreached: (s: Situation & { newest: string | null; age: string; target: string }): Alert => ({
    key: alertKey('rpo-breached'),
    severity: 'critical',
    title: `RPO breached: no backup for ${s.age} (target ${s.target})`,
    details: s.newest === null ? 'there is no full or incremental backup yet' : `the newest backup is ${s.newest}, ${s.age} old`,
    where: s.where,
    since: s.since,
    command: 'stowage status',
  }),
  /** Verify found a missing, damaged or wrongly sized replica. */
  verifyFailed: (s: Situation & { problems: readonly string[] }): Alert => ({
    key: alertKey('verify-failed'),
    severity: 'critical',
    title: `verify found ${s.problems.length} bad replica(s)`,
    details: list(s.problems),
    where: s.where,
    since: s.since,
    command: 'stowage verify --all',
  }),
  /** A restore drill failed its checks. */
  drillFailed: (s: Situation & { backupId: string; destination: string; problems: readonly string[] }): Alert => ({
    key: alertKey('drill-failed'),
    severity: 'critical',
    title: `restore drill of ${s.backupId} from ${s.destination} failed`,
    details: list(s.problems),
    where: s.where,
    since: s.since,
    command: `stowage drill --backup ${s.backupId} --destination ${s.destination}`,
  }),
  /** A drill succeeded but took longer than the RTO target. */
  rtoExceeded: (s: Situation & { backupId: string; took: string; target: string }): Alert => ({
    key: alertKey('rto-exceeded'),
    severity: 'warning',
    title: `restore drill took ${s.took}, over the RTO target ${s.target}`,
    details: `the drill of ${s.backupId} reached a usable database after ${s.took}`,
    where: s.where,
    since: s.since,
    command: 'stowage status',
  }),
  /** `detectAnomalies` found something in a new backup; critical when a finding is. */
  sizeAnomaly: (s: Situation & { type: string; backupId: string; findings: readonly AnomalyFinding[] }): Alert => ({
    key: alertKey('size-anomaly', s.type),
    severity: s.findings.some((f) => f.severity === 'critical') ? 'critical' : 'warning',
    title: `${s.type} backup ${s.backupId} looks unusual: ${s.findings.map((f) => f.metric).join(', ')}`,
    details: list(s.findings.map((f) => f.reason)),
    where: s.where,
    since: s.since,
    command: `stowage list --type ${s.type}`,
  }),
  /** The source lock (`lock: 'source'`) or a destination's lock has been held too long. */
  lockHeld: (s: Situation & { lock: string; holder: string; heldFor: string }): Alert => ({
    key: alertKey('lock-held', s.lock),
    severity: 'warning',
    title: `the ${s.lock === 'source' ? 'source lock' : `lock at destination ${s.lock}`} has been held for ${s.heldFor}`,
    details: `held by ${s.holder}`,
    where: s.where,
    since: s.since,
    command: s.lock === 'source' ? 'stowage unlock --source' : `stowage unlock --destination ${s.lock}`,
  }),
} as const;

/** `ms` as a short human duration: `45 s`, `12 min`, `3.5 h`, `2.0 d`. */
export function formatDuration(ms: number): string {
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  if (ms < 172_800_000) return `${(ms / 3_600_000).toFixed(1)} h`;
  return `${(ms / 86_400_000).toFixed(1)} d`;
}
