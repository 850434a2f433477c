import { localStamp } from './private-fs.js';

/*
 * Names and places at every destination, as the seed document lays them out:
 *   full/full_backup_YYYYMMDD_HHMMSS.sqlite3   incremental/inc_backup_…   hot/hot_backup_…
 * each beside `<id>.manifest.json` (the commit marker) and `<id>.pagehash`.
 */
export const BACKUP_TYPES = ['full', 'incremental', 'hot'] as const;
export type BackupType = (typeof BACKUP_TYPES)[number];

export const FOLDERS: Record<BackupType, string> = { full: 'full', incremental: 'incremental', hot: 'hot' };
const PREFIXES: Record<BackupType, string> = { full: 'full_backup', incremental: 'inc_backup', hot: 'hot_backup' };
const ID_PATTERN = /^(full|inc|hot)_backup_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})(?:_(\d+))?$/;

/** `full_backup_20240101_020000` for a backup taken at `time` (local time, as `date +%Y%m%d_%H%M%S`); `_N` when taken. */
export function backupId(type: BackupType, time: Date, sequence = 0): string {
  return `${PREFIXES[type]}_${localStamp(time)}${sequence > 0 ? `_${sequence}` : ''}`;
}

/** The backup type an id names, or undefined when it is not a backup id. */
export function typeOfId(id: string): BackupType | undefined {
  const match = ID_PATTERN.exec(id);
  if (!match) return undefined;
  return match[1] === 'inc' ? 'incremental' : (match[1] as BackupType);
}

/**
 * Orders backup ids (of any types) by when they were taken: by their time stamp, then by their
 * `_N` suffix as a number, so `…_020000_2` comes before `…_020000_10` (a string comparison puts it after).
 */
export function compareIds(a: string, b: string): number {
  const [stampA = '', suffixA = 0] = splitStamp(a);
  const [stampB = '', suffixB = 0] = splitStamp(b);
  return stampA < stampB ? -1 : stampA > stampB ? 1 : suffixA - suffixB;
}

function splitStamp(id: string): [string, number] {
  const match = /_(\d{8}_\d{6})(?:_(\d+))?$/.exec(id);
  return match ? [match[1]!, Number(match[2] ?? 0)] : [id, 0];
}

/**
 * The backup id in a user's reference: an id, an artifact or manifest file name, or a path such
 * as `backups/full/full_backup_20240101_020000.sqlite3`. Undefined when none is recognisable.
 */
export function idFromReference(reference: string): string | undefined {
  const base = reference.split(/[\\/]/).pop() ?? '';
  const match = /^((?:full|inc|hot)_backup_\d{8}_\d{6}(?:_\d+)?)(?:\.|$)/.exec(base);
  return match?.[1];
}

export const manifestKey = (type: BackupType, id: string) => `${FOLDERS[type]}/${id}.manifest.json`;
/** The database artifact: a whole image (`.sqlite3`), or a page delta (`.delta`) for incrementals. */
export const databaseKey = (type: BackupType, id: string) => `${FOLDERS[type]}/${id}.${type === 'incremental' ? 'delta' : 'sqlite3'}`;
export const pageHashKey = (type: BackupType, id: string) => `${FOLDERS[type]}/${id}.pagehash`;
export const filesKey = (type: BackupType, id: string) => `${FOLDERS[type]}/${id}.files.tar`;
export const filesIndexKey = (type: BackupType, id: string) => `${FOLDERS[type]}/${id}.files-index.json`;
export const MANIFEST_SUFFIX = '.manifest.json';
