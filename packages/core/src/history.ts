/*
 * What this host recorded about its backups, read back from the audit log (every committed backup,
 * every replica sync repaired, every removal cleanup set out to do) and the state folder (the newest
 * backup's cached page hashes). Verify compares it with what the destinations hold, so that a backup
 * that vanished from every destination is reported instead of silently missing from the list.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { appendAudit, AUDIT_FILE, type AuditRecord } from './audit.js';
import type { Catalog } from './catalog.js';
import type { Engine } from './engine.js';
import { manifestKey, typeOfId } from './layout.js';

export interface RecordedBackup {
  /** Destinations it should still be at: committed there (by backup or sync) and not removed by cleanup since. */
  destinations: Set<string>;
  /** Where the record came from, for messages: `audit log, 2024-01-01T02:00:03Z` or `state folder`. */
  recordedIn: string;
}

export interface BackupHistory {
  backups: Map<string, RecordedBackup>;
  /** `destination:id` pairs cleanup set out to remove (possibly interrupted before it finished). */
  removedByCleanup: Set<string>;
}

const REMOVAL = 'cleanup-remove';

/** Records, before anything is deleted, that cleanup removes backup `id` from `destination`. */
export async function recordRemoval(engine: Pick<Engine, 'logDir' | 'now'>, destination: string, id: string): Promise<void> {
  await appendAudit(engine.logDir, { operation: REMOVAL, backupId: id, outcome: 'started', durationMs: 0, detail: `destination=${destination}` }, engine.now());
}

/** Where this host's history is kept, and the destinations a backup committed without naming them went to. */
export type HistorySource = Pick<Engine, 'destinations' | 'logDir' | 'config'>;

export async function readHistory(engine: HistorySource): Promise<BackupHistory> {
  const history: BackupHistory = { backups: new Map(), removedByCleanup: new Set() };
  const every = engine.destinations.map((d) => d.name);
  const expect = (id: string, destinations: readonly string[], recordedIn: string) => {
    const recorded = history.backups.get(id) ?? { destinations: new Set<string>(), recordedIn };
    for (const name of destinations) recorded.destinations.add(name);
    history.backups.set(id, recorded);
  };
  const text = await readFile(join(engine.logDir, AUDIT_FILE), 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const record = parseRecord(line);
    if (!record) continue;
    const at = `audit log, ${record.time}`;
    if (record.operation.startsWith('backup-') && record.backupId && record.outcome !== 'failed') {
      const committed = /(?:^| )committed=(\S+)/.exec(record.detail ?? '')?.[1];
      expect(record.backupId, committed && committed !== '-' ? committed.split(',') : every, at);
    } else if (record.operation === 'sync') {
      for (const action of (record.detail ?? '').split(',')) {
        const [destination, id, outcome] = action.split(':');
        if (destination && id && outcome === 'repaired') expect(id, [destination], at);
      }
    } else if (record.operation === REMOVAL && record.backupId) {
      const destination = /^destination=(.+)$/.exec(record.detail ?? '')?.[1];
      if (!destination) continue;
      history.removedByCleanup.add(`${destination}:${record.backupId}`);
      history.backups.get(record.backupId)?.destinations.delete(destination);
    }
  }
  // The newest backup's page hashes are cached after it was committed: a record the audit log cannot lose.
  const cached = await readdir(join(engine.config.stateDir, 'cache')).catch(() => [] as string[]);
  for (const name of cached) {
    const id = name.endsWith('.pagehash') ? name.slice(0, -'.pagehash'.length) : undefined;
    if (id && typeOfId(id) && !history.backups.has(id)) expect(id, every, 'state folder');
  }
  return history;
}

function parseRecord(line: string): AuditRecord | undefined {
  try {
    const record = JSON.parse(line) as AuditRecord;
    return typeof record.operation === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

export interface VanishedBackup {
  id: string;
  /** Where this host recorded it as committed (and cleanup did not remove it). */
  expectedAt: string[];
  recordedIn: string;
}

/**
 * Backups this host recorded as committed at some of the catalog's destinations, of which none holds
 * any manifest file for it (readable or not). Empty while a destination cannot be listed.
 */
export function vanishedBackups(history: BackupHistory, catalog: Catalog, destinations: readonly string[]): VanishedBackup[] {
  if (catalog.unlisted.length) return [];
  const present = new Set([...catalog.entries.map((e) => e.manifest.id), ...catalog.damaged.map((d) => d.id)]);
  const vanished: VanishedBackup[] = [];
  for (const [id, recorded] of history.backups) {
    const expectedAt = destinations.filter((name) => recorded.destinations.has(name));
    if (expectedAt.length && !present.has(id)) vanished.push({ id, expectedAt, recordedIn: recorded.recordedIn });
  }
  return vanished;
}

/** One line on a vanished backup, naming its manifest and where it was. */
export const describeVanished = (v: VanishedBackup) =>
  `${manifestKey(typeOfId(v.id)!, v.id)}: this host recorded ${v.id} as committed at ${v.expectedAt.join(', ')} (${v.recordedIn}), but none of them holds it any more`;
