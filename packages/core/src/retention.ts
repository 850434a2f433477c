/*
 * Retention planning: which backups a destination keeps and which may go. A backup is kept when it
 * is younger than its type's `maxAge` or among the `keepLast` newest of its type; every link that
 * a kept incremental replays is kept too; the newest backup of each type is never deleted, so a
 * stopped schedule cannot age a destination down to nothing; and a backup whose manifest cannot be
 * read keeps everything it might replay (its parent is written in the manifest that cannot be read).
 */
import { z } from 'zod';
import { byRecency, type CatalogEntry } from './catalog.js';
import { compareIds, typeOfId } from './layout.js';
import { BACKUP_TYPES, type BackupType } from './manifest.js';

export const durationSchema = z.string().regex(/^\d+[mhdw]$/, 'expected a duration such as 30m, 36h, 30d or 4w');

/** A retention rule: a duration string (`30d`), or `{ maxAge?, keepLast? }`. */
export const retentionRuleSchema = z.union([
  durationSchema,
  z
    .object({
      maxAge: durationSchema.optional().describe('Keep backups younger than this'),
      keepLast: z.number().int().min(1).optional().describe('Keep at least this many of the newest backups of the type'),
    })
    .strict()
    .refine((rule) => rule.maxAge !== undefined || rule.keepLast !== undefined, 'give maxAge, keepLast or both'),
]);
export type RetentionRule = z.infer<typeof retentionRuleSchema>;
export type RetentionPolicy = Record<BackupType, RetentionRule>;

export const DEFAULT_RETENTION: RetentionPolicy = { full: '30d', incremental: '7d', hot: '3d' };

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

export function durationMs(duration: string): number {
  const unit = duration.at(-1) as keyof typeof UNIT_MS;
  return Number(duration.slice(0, -1)) * UNIT_MS[unit];
}

export interface RetentionDecision {
  entry: CatalogEntry;
  keep: boolean;
  why: string;
}

/**
 * Decides, for the backups at one destination, which to keep under `policy` as of `asOf`.
 * `unreadable`: ids of backups whose manifest exists there but cannot be read.
 */
export function planRetention(entries: readonly CatalogEntry[], policy: RetentionPolicy, asOf: Date, unreadable: readonly string[] = []): RetentionDecision[] {
  const sorted = [...entries].sort(byRecency);
  const why = new Map<string, string>();
  for (const type of BACKUP_TYPES) {
    const rule = policy[type];
    const { maxAge, keepLast } = typeof rule === 'string' ? { maxAge: rule, keepLast: undefined } : rule;
    const ofType = sorted.filter((e) => e.manifest.type === type);
    ofType.forEach((entry, index) => {
      const age = asOf.getTime() - Date.parse(entry.manifest.createdAt);
      if (maxAge !== undefined && age <= durationMs(maxAge)) why.set(entry.manifest.id, `younger than ${maxAge}`);
      else if (keepLast !== undefined && index >= ofType.length - keepLast) why.set(entry.manifest.id, `one of the newest ${keepLast}`);
    });
  }
  for (const type of BACKUP_TYPES) {
    const newest = sorted.findLast((e) => e.manifest.type === type);
    if (newest && !why.has(newest.manifest.id)) why.set(newest.manifest.id, `the newest ${type} backup is always kept`);
  }
  // An unreadable incremental may replay any full or incremental back to the newest full before it.
  for (const id of unreadable.filter((u) => typeOfId(u) === 'incremental')) {
    const before = sorted.filter((e) => e.manifest.type !== 'hot' && compareIds(e.manifest.id, id) <= 0);
    const full = before.findLastIndex((e) => e.manifest.type === 'full');
    for (const entry of before.slice(Math.max(0, full)))
      if (!why.has(entry.manifest.id)) why.set(entry.manifest.id, `possibly needed by ${id}, whose manifest cannot be read`);
  }
  // Keep every link a kept incremental replays, newest first so that chains are followed to the end.
  const byId = new Map(sorted.map((e) => [e.manifest.id, e]));
  for (const entry of [...sorted].reverse()) {
    if (!why.has(entry.manifest.id)) continue;
    for (let parent = entry.manifest.parent; parent !== null; ) {
      if (!why.has(parent)) why.set(parent, `needed by ${entry.manifest.id}`);
      parent = byId.get(parent)?.manifest.parent ?? null;
    }
  }
  return sorted.map((entry) => {
    const reason = why.get(entry.manifest.id);
    return { entry, keep: reason !== undefined, why: reason ?? 'past its retention' };
  });
}
