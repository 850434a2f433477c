/*
 * The file-set index: what every set held at one point in time. It is written into each archive
 * (its last member) and returned to the caller, who stores it beside the backup; the next
 * incremental diffs against it, so no local state is needed. Deletions are implicit: an entry of
 * the parent that the index lacks was deleted. FORMAT.md documents version 1.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { fileSetNameSchema } from './config.js';
import { FileSetError, FileSetErrorCode } from './errors.js';
import { findOverlap, linkEscapes, parentOf, unsafePathReason } from './paths.js';

export const INDEX_FORMAT = 'stowage.fileset-index';
export const INDEX_VERSION = 1;
/** Name of the index member inside an archive; always the archive's last member. */
export const INDEX_MEMBER = '.stowage/fileset-index.json';

/** A regular file. `mtimeMs` is whole milliseconds; `ctimeMs` only detects change and is never restored. */
export interface FileEntry {
  path: string;
  type: 'file';
  mode: number;
  mtimeMs: number;
  size: number;
  sha256: string;
  ctimeMs: number;
}

/** A folder; the root of a folder set is the entry with path `.`. */
export interface DirEntry {
  path: string;
  type: 'dir';
  mode: number;
  mtimeMs: number;
}

/** A symlink, stored as a link (never followed). `linkTarget` is exactly what readlink gave. */
export interface SymlinkEntry {
  path: string;
  type: 'symlink';
  mtimeMs: number;
  linkTarget: string;
}

/** A file as scanned: its `sha256` is known only when carried over unchanged from the parent. */
export interface ScannedFileEntry extends Omit<FileEntry, 'sha256'> {
  sha256: string | undefined;
}

/**
 * One set: a folder (entries relative to `path`, which is relative to the base folder) or a file
 * list (entries relative to the base folder, files only).
 */
export type SetIndexOf<F extends ScannedFileEntry> =
  | { kind: 'folder'; path: string; entries: Array<F | DirEntry | SymlinkEntry> }
  | { kind: 'files'; entries: F[] };

export type SetIndex = SetIndexOf<FileEntry>;
export type FileSetEntry = SetIndex['entries'][number];

/** The index of one point in time (format version 1). */
export interface FileSetIndex {
  format: typeof INDEX_FORMAT;
  version: typeof INDEX_VERSION;
  /** Random id of this index; an incremental's `parentId` is its parent's `id`. */
  id: string;
  parentId: string | null;
  createdAt: string;
  sets: Record<string, SetIndex>;
}

/** Anything shaped like an index: a `FileSetIndex` or a scan. */
export interface IndexLike {
  sets: Record<string, SetIndexOf<ScannedFileEntry>>;
}

const mode = z.number().int().min(0).max(0o7777);
const time = z.number().finite();
const fileEntrySchema = z
  .object({
    path: z.string(),
    type: z.literal('file'),
    mode,
    mtimeMs: time,
    size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    ctimeMs: time,
  })
  .strict();
const entrySchema = z.discriminatedUnion('type', [
  fileEntrySchema,
  z.object({ path: z.string(), type: z.literal('dir'), mode, mtimeMs: time }).strict(),
  z.object({ path: z.string(), type: z.literal('symlink'), mtimeMs: time, linkTarget: z.string().min(1) }).strict(),
]);
const indexSchema = z
  .object({
    format: z.literal(INDEX_FORMAT),
    version: z.literal(INDEX_VERSION),
    id: z.string().min(1),
    parentId: z.string().min(1).nullable(),
    createdAt: z.string(),
    sets: z.record(
      fileSetNameSchema,
      z.discriminatedUnion('kind', [
        z.object({ kind: z.literal('folder'), path: z.string(), entries: z.array(entrySchema) }).strict(),
        z.object({ kind: z.literal('files'), entries: z.array(fileEntrySchema) }).strict(),
      ]),
    ),
  })
  .strict();

/** The bytes of an index as stored (compact JSON) and their SHA-256, which a manifest can pin. */
export function serializeFileSetIndex(index: FileSetIndex): { bytes: Buffer; sha256: string } {
  const bytes = Buffer.from(JSON.stringify(index), 'utf8');
  return { bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Parses and checks an index read from a backup. Throws `stowage.files.corrupt` when it is not a
 * version-1 index, and `stowage.files.unsafe_path` when a path or symlink could escape its set.
 */
export function parseFileSetIndex(bytes: Uint8Array | string): FileSetIndex {
  let json: unknown;
  try {
    json = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (cause) {
    throw new FileSetError(FileSetErrorCode.Corrupt, 'The file-set index is not valid JSON', { cause });
  }
  const parsed = indexSchema.safeParse(json);
  if (!parsed.success) {
    throw new FileSetError(FileSetErrorCode.Corrupt, `Not a version-${INDEX_VERSION} file-set index: ${z.prettifyError(parsed.error)}`);
  }
  const index = parsed.data as FileSetIndex;
  checkIndexPaths(index);
  return index;
}

function unsafe(set: string, path: string, why: string): FileSetError {
  return new FileSetError(FileSetErrorCode.UnsafePath, `File set "${set}": refusing "${path}" because ${why}`, { context: { set, path } });
}

/** Every path is canonical, sets do not overlap, folder entries hang under folders, links stay inside. */
function checkIndexPaths(index: FileSetIndex): void {
  const claims: string[] = [];
  for (const [name, set] of Object.entries(index.sets)) {
    if (set.kind === 'folder') {
      const rootReason = unsafePathReason(set.path);
      if (rootReason !== undefined) throw unsafe(name, set.path, rootReason);
      claims.push(set.path);
    }
    const types = new Map<string, FileSetEntry['type']>();
    const links = new Map<string, string>();
    for (const entry of set.entries) {
      if (types.has(entry.path)) throw unsafe(name, entry.path, 'it is listed twice');
      types.set(entry.path, entry.type);
      if (entry.type === 'symlink') links.set(entry.path, entry.linkTarget);
    }
    for (const entry of set.entries) {
      if (set.kind === 'folder' && entry.path === '.') {
        if (entry.type !== 'dir') throw unsafe(name, entry.path, 'the root of a folder set must be a folder');
        continue;
      }
      const reason = unsafePathReason(entry.path);
      if (reason !== undefined) throw unsafe(name, entry.path, reason);
      if (set.kind === 'files') {
        claims.push(entry.path);
      } else if (types.get(parentOf(entry.path)) !== 'dir') {
        throw unsafe(name, entry.path, 'its parent is not a folder of the set');
      }
      if (entry.type === 'symlink' && linkEscapes(entry.path, entry.linkTarget, links)) {
        throw unsafe(name, entry.path, `its link target "${entry.linkTarget}" leads outside the set`);
      }
    }
    if (set.kind === 'folder' && types.get('.') !== 'dir') throw unsafe(name, '.', 'the folder set has no root entry');
  }
  const overlap = findOverlap(claims);
  if (overlap !== undefined) {
    throw new FileSetError(FileSetErrorCode.UnsafePath, `File sets overlap at "${overlap[1]}"`, { context: { path: overlap[1] } });
  }
}

/** One entry in a diff. */
export interface DiffItem {
  set: string;
  path: string;
  type: FileSetEntry['type'];
}

/** What changed between two points in time, per entry (folders included). */
export interface FileSetDiff {
  added: DiffItem[];
  changed: DiffItem[];
  deleted: DiffItem[];
}

/** A set can be diffed against its parent's version only when kind and folder are the same. */
function comparable(parentSet: SetIndexOf<ScannedFileEntry>, set: SetIndexOf<ScannedFileEntry>): boolean {
  return parentSet.kind === set.kind && (parentSet.kind === 'files' || (set.kind === 'folder' && parentSet.path === set.path));
}

/**
 * The parent's entries of `set` by path, when they are comparable. A set whose kind or folder
 * changed starts afresh: everything is new.
 */
export function comparableEntries<F extends ScannedFileEntry>(
  parentSet: SetIndexOf<F> | undefined,
  set: SetIndexOf<ScannedFileEntry>,
): Map<string, F | DirEntry | SymlinkEntry> {
  const usable = parentSet !== undefined && comparable(parentSet, set);
  return new Map(usable ? parentSet.entries.map((entry) => [entry.path, entry]) : []);
}

/** True when `current` reproduces `previous` exactly: same type, metadata and (for files) content. */
export function sameEntry(previous: ScannedFileEntry | DirEntry | SymlinkEntry, current: ScannedFileEntry | DirEntry | SymlinkEntry): boolean {
  switch (current.type) {
    case 'file':
      return (
        previous.type === 'file' &&
        current.sha256 !== undefined &&
        previous.sha256 === current.sha256 &&
        previous.size === current.size &&
        previous.mode === current.mode &&
        previous.mtimeMs === current.mtimeMs
      );
    case 'dir':
      return previous.type === 'dir' && previous.mode === current.mode && previous.mtimeMs === current.mtimeMs;
    case 'symlink':
      return previous.type === 'symlink' && previous.linkTarget === current.linkTarget && previous.mtimeMs === current.mtimeMs;
  }
}

/** Entries added, changed and deleted from `parent` (none: everything is added) to `current`. */
export function diffIndexes(parent: IndexLike | undefined, current: IndexLike): FileSetDiff {
  const diff: FileSetDiff = { added: [], changed: [], deleted: [] };
  const names = new Set([...Object.keys(parent?.sets ?? {}), ...Object.keys(current.sets)]);
  for (const set of [...names].sort()) {
    const before = parent?.sets[set];
    const after = current.sets[set];
    const previous = new Map((before?.entries ?? []).map((entry) => [entry.path, entry]));
    if (before !== undefined && after !== undefined && !comparable(before, after)) {
      for (const gone of before.entries) diff.deleted.push({ set, path: gone.path, type: gone.type });
      previous.clear();
    }
    for (const entry of after?.entries ?? []) {
      const old = previous.get(entry.path);
      const item = { set, path: entry.path, type: entry.type };
      if (old === undefined) diff.added.push(item);
      else if (!sameEntry(old, entry)) diff.changed.push(item);
      previous.delete(entry.path);
    }
    for (const gone of previous.values()) diff.deleted.push({ set, path: gone.path, type: gone.type });
  }
  return diff;
}

/** Counts and bytes of one set. */
export interface SetSummary {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

/** Counts and total file bytes of a set, e.g. for a manifest or a restore report. */
export function summarizeSet(set: SetIndexOf<ScannedFileEntry>): SetSummary {
  const summary: SetSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  for (const entry of set.entries) {
    if (entry.type === 'file') {
      summary.files += 1;
      summary.bytes += entry.size;
    } else if (entry.type === 'dir') summary.dirs += 1;
    else summary.symlinks += 1;
  }
  return summary;
}
