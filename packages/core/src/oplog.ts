import { join } from 'node:path';
import { appendAudit } from './audit.js';
import { appendPrivate } from './private-fs.js';

/** One line of `backup.log` / `restore.log`: what happened, to which backup, how it ended. */
export interface OperationRecord {
  operation: string;
  backupId?: string;
  outcome: 'ok' | 'failed' | 'degraded';
  durationMs: number;
  bytes?: number;
  detail?: string;
}

/**
 * A `.catch` handler for a record that must not fail the operation it records (the audit log, the
 * operation logs, state files) but must not vanish either: the failure becomes a warning.
 */
export function warnUnrecorded(warn: (message: string) => void, what: string): (error: unknown) => void {
  return (error) => warn(`could not record ${what}: ${error instanceof Error ? error.message : String(error)}`);
}

/**
 * Appends a human-readable one-liner (and the same facts, chained, to the audit log), e.g.
 * `2024-01-01T02:00:03.120Z backup full_backup_20240101_020000 ok 3.1s 1073741824B destinations=local`.
 * Never pass secrets in `detail`.
 */
export async function logOperation(logDir: string, file: 'backup.log' | 'restore.log', record: OperationRecord, now = new Date()): Promise<void> {
  const parts = [
    now.toISOString(),
    record.operation,
    record.backupId ?? '-',
    record.outcome,
    `${(record.durationMs / 1000).toFixed(1)}s`,
    record.bytes === undefined ? '-' : `${record.bytes}B`,
  ];
  const detail = record.detail?.replace(/\s*\n\s*/g, ' ');
  if (detail) parts.push(detail);
  await appendPrivate(join(logDir, file), `${parts.join(' ')}\n`);
  await appendAudit(logDir, { ...record, ...(detail ? { detail } : {}) }, now);
}
