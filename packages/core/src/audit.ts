/*
 * The audit log: append-only JSON lines, one per operation, each carrying the SHA-256 of the
 * previous line and a hash of its own content, so that an edited, deleted, reordered or truncated
 * record is found by `stowage audit verify`. It never holds a secret: commands take none on their
 * command line, and details are the operation's one-line summary.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { appendPrivate } from './private-fs.js';

export const AUDIT_FILE = 'audit.jsonl';
const GENESIS = '0'.repeat(64);

export interface AuditRecord {
  seq: number;
  time: string;
  host: string;
  user: string;
  pid: number;
  command: string;
  operation: string;
  backupId?: string;
  outcome: string;
  bytes?: number;
  durationMs: number;
  detail?: string;
  /** `hash` of the previous record (zeros for the first). */
  prev: string;
  /** SHA-256 of this record's JSON without `hash`. */
  hash: string;
}

export type AuditEntry = Pick<AuditRecord, 'operation' | 'outcome' | 'durationMs'> & Partial<Pick<AuditRecord, 'backupId' | 'bytes' | 'detail'>>;

const hashOf = (record: Omit<AuditRecord, 'hash'>) => createHash('sha256').update(JSON.stringify(record)).digest('hex');

/** Appends one record, chained to the last one in the file. */
export async function appendAudit(logDir: string, entry: AuditEntry, now = new Date()): Promise<void> {
  const path = join(logDir, AUDIT_FILE);
  const last = await lastRecord(path);
  const body: Omit<AuditRecord, 'hash'> = {
    seq: last ? last.seq + 1 : 1,
    time: now.toISOString(),
    host: hostname(),
    user: safeUser(),
    pid: process.pid,
    command: process.argv.slice(2).join(' '),
    operation: entry.operation,
    ...(entry.backupId === undefined ? {} : { backupId: entry.backupId }),
    outcome: entry.outcome,
    ...(entry.bytes === undefined ? {} : { bytes: entry.bytes }),
    durationMs: Math.round(entry.durationMs),
    ...(entry.detail === undefined ? {} : { detail: entry.detail }),
    prev: last?.hash ?? GENESIS,
  };
  await appendPrivate(path, `${JSON.stringify({ ...body, hash: hashOf(body) })}\n`);
}

export interface AuditVerification {
  ok: boolean;
  records: number;
  /** Where the chain breaks and how, e.g. `line 7: record 7 was edited`. */
  problems: string[];
}

/** Checks every record's hash and its link to the previous one. */
export async function verifyAudit(logDir: string): Promise<AuditVerification> {
  const text = await readFile(join(logDir, AUDIT_FILE), 'utf8').catch(() => '');
  const problems: string[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  else if (lines.length) problems.push(`line ${lines.length}: the last record is cut short (the file was truncated)`);
  let previous: AuditRecord | undefined;
  lines.forEach((line, index) => {
    const at = `line ${index + 1}`;
    let record: AuditRecord;
    try {
      record = JSON.parse(line) as AuditRecord;
    } catch {
      if (index < lines.length - 1 || problems.length === 0) problems.push(`${at}: not a JSON record`);
      return;
    }
    const { hash, ...body } = record;
    if (hashOf(body) !== hash) problems.push(`${at}: record ${record.seq} was edited (its hash does not match its content)`);
    const expectedSeq = previous ? previous.seq + 1 : 1;
    if (record.seq !== expectedSeq) problems.push(`${at}: record ${record.seq} where ${expectedSeq} was expected (a record was deleted or moved)`);
    else if (record.prev !== (previous?.hash ?? GENESIS)) problems.push(`${at}: record ${record.seq} does not follow the record before it (deleted, reordered or edited)`);
    previous = record;
  });
  return { ok: problems.length === 0, records: lines.length, problems };
}

async function lastRecord(path: string): Promise<AuditRecord | undefined> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, 64 * 1024);
    const tail = Buffer.alloc(length);
    await handle.read(tail, 0, length, size - length);
    const line = tail.toString('utf8').trimEnd().split('\n').at(-1);
    return line ? (JSON.parse(line) as AuditRecord) : undefined;
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}
