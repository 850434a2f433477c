/*
 * The audit log: append-only JSON lines, one per operation, each carrying the SHA-256 of the
 * previous line and a hash of its own content, so that an edited, deleted, reordered or truncated
 * record is found by `stowage audit verify`. Its head (seq and hash) is recorded in every backup
 * manifest and the log is copied to every destination, so that removing its tail or rewriting it
 * on this host is found against what left the host. It never holds a secret: commands take none on their
 * command line, and details are the operation's one-line summary.
 */
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { isObjectNotFound } from '@stowage/storage';
import { listBackups, readObjectBytes } from './catalog.js';
import type { Destination } from './destination.js';
import { readJsonLines } from './json-lines.js';
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

/** Every record of the audit log, oldest first, unchecked (a damaged line is skipped; `verifyAudit` reports it). */
export const readAuditRecords = (logDir: string) => readJsonLines<AuditRecord>(join(logDir, AUDIT_FILE));

export interface AuditVerification {
  ok: boolean;
  records: number;
  /** Where the chain breaks and how, e.g. `line 7: record 7 was edited`. */
  problems: string[];
}

/** Checks every record's hash and its link to the previous one. */
export async function verifyAudit(logDir: string): Promise<AuditVerification> {
  const chain = checkChain(await readFile(join(logDir, AUDIT_FILE), 'utf8').catch(() => ''));
  return { ok: chain.problems.length === 0, records: chain.lines, problems: chain.problems };
}

/** An audit log's text checked: its lines, the records that parse, and where its chain breaks. */
function checkChain(text: string): { lines: number; records: AuditRecord[]; problems: string[] } {
  const problems: string[] = [];
  const records: AuditRecord[] = [];
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
    else if (record.prev !== (previous?.hash ?? GENESIS))
      problems.push(`${at}: record ${record.seq} does not follow the record before it (deleted, reordered or edited)`);
    previous = record;
    records.push(record);
  });
  return { lines: lines.length, records, problems };
}

/** Where this host's audit log is copied at each destination. */
export const auditCopyKey = (host = hostname()) => `audit/${host.replace(/[^A-Za-z0-9._-]/g, '_')}.audit.jsonl`;

/** The last record of the audit log (seq and hash), for a manifest to anchor it off-host. */
export async function auditHead(logDir: string): Promise<{ seq: number; hash: string } | undefined> {
  const last = await lastRecord(join(logDir, AUDIT_FILE));
  return last && { seq: last.seq, hash: last.hash };
}

export interface AuditTrailVerification extends AuditVerification {
  /** How many of this host's manifests recorded an audit head, and how many destination copies were read. */
  anchors: { manifests: number; copies: number };
}

/**
 * `audit verify`: the local log's own chain, then the log against what left this host — the
 * audit head each of this host's manifests recorded at commit (a log ending before it lost its
 * tail; a record differing from it was rewritten), and the copy at each destination
 * (`auditCopyKey`): damaged (its own chain breaks), differing from the local log, holding records
 * the local log lacks, ending before the head a manifest there recorded, or missing where this
 * host's backups are. A destination that cannot be read is a warning.
 */
export async function verifyAuditTrail(engine: {
  readonly logDir: string;
  readonly destinations: readonly Destination[];
  warn(message: string): void;
}): Promise<AuditTrailVerification> {
  const local = checkChain(await readFile(join(engine.logDir, AUDIT_FILE), 'utf8').catch(() => ''));
  const problems = [...local.problems];
  const bySeq = new Map(local.records.map((r) => [r.seq, r]));
  const last = local.records.at(-1)?.seq ?? 0;
  const ours = (await listBackups(engine)).filter((e) => e.manifest.host === hostname());
  const anchored = ours.filter((e) => e.manifest.audit).sort((a, b) => a.manifest.audit!.seq - b.manifest.audit!.seq);
  const newest = anchored.at(-1)?.manifest;
  if (newest && newest.audit!.seq > last) {
    problems.push(
      `the log ends at record ${last}, but backup ${newest.id} recorded record ${newest.audit!.seq} as its head at commit: the records after ${last} were removed`,
    );
  }
  const rewritten = new Set<number>();
  for (const { manifest } of anchored) {
    const { seq, hash } = manifest.audit!;
    const record = bySeq.get(seq);
    if (record && record.hash !== hash && !rewritten.has(seq)) {
      rewritten.add(seq);
      problems.push(`record ${seq} differs from the one backup ${manifest.id} recorded at commit: the log was rewritten`);
    }
  }
  let copies = 0;
  const key = auditCopyKey();
  for (const destination of engine.destinations) {
    const here = ours.filter((e) => e.destinations.includes(destination.name));
    let text: string;
    try {
      text = (await readObjectBytes(destination, key)).toString('utf8');
    } catch (error) {
      if (!isObjectNotFound(error)) engine.warn(`cannot read the audit copy ${key} at ${destination.name}: ${(error as Error).message}`);
      else if (here.length) problems.push(`the audit copy ${key} is missing at ${destination.name}, which holds ${here.length} backup(s) of this host`);
      continue;
    }
    copies++;
    const copy = checkChain(text);
    problems.push(...copy.problems.map((p) => `the audit copy at ${destination.name} is damaged: ${p}`));
    const differing = copy.records.find((r) => bySeq.has(r.seq) && bySeq.get(r.seq)!.hash !== r.hash);
    if (differing) problems.push(`record ${differing.seq} differs between the local log and the copy at ${destination.name}`);
    const copyLast = copy.records.at(-1)?.seq ?? 0;
    if (copyLast > last)
      problems.push(`the local log ends at record ${last}, but the copy at ${destination.name} holds records up to ${copyLast}: the local log lost its tail`);
    const newestHere = anchored.filter((e) => e.destinations.includes(destination.name)).at(-1)?.manifest;
    if (newestHere && copyLast < newestHere.audit!.seq) {
      problems.push(
        `the audit copy at ${destination.name} ends at record ${copyLast}, but backup ${newestHere.id} there recorded record ${newestHere.audit!.seq}: the copy was truncated or replaced by an older one`,
      );
    }
  }
  return { ok: problems.length === 0, records: local.lines, problems, anchors: { manifests: anchored.length, copies } };
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
