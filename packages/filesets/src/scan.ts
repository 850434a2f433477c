/*
 * Scanning walks each set without ever following a symlink inside it (so a link loop cannot hang
 * it, and nothing outside the set is read); only the configured paths themselves (a set's folder,
 * a listed file) are followed, because the user named them. File contents are not hashed here:
 * the archive writer hashes what it stores. Given the parent index, an unchanged file (same size,
 * mode, mtime and ctime) inherits the parent's hash; one whose ctime alone moved is hashed to tell.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { lstat, readdir, readlink, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { systemErrorCode } from '@stowage/errors';
import picomatch from 'picomatch';
import { z } from 'zod';
import { fileSetsConfigSchema, type FileListSetConfig, type FileSetsConfig, type FolderSetConfig } from './config.js';
import { FileSetError, FileSetErrorCode } from './errors.js';
import { dirEntry, fileEntry, isGone, openFile, readChunks, unreadable } from './file-io.js';
import { comparableEntries, type DirEntry, type FileSetIndex, type ScannedFileEntry, type SetIndexOf, type SymlinkEntry } from './fileset-index.js';
import { byPath, linkEscapes } from './paths.js';
import type { FileSetWarning } from './warnings.js';

/** Options of `scanFileSets`. */
export interface ScanOptions {
  /** The folder the config's paths are relative to (usually the config file's folder). */
  baseDir: string;
  /** The index of the backup the next archive will be an incremental of; omit for a full or hot backup. */
  parent?: FileSetIndex | undefined;
}

/** What `scanFileSets` found: the input of `writeFileSetArchive`. */
export interface FileSetScan {
  /** Absolute base folder. */
  baseDir: string;
  parent: FileSetIndex | undefined;
  /** Each set's entries sorted by path; a file's `sha256` is set only when carried over from the parent. */
  sets: Record<string, SetIndexOf<ScannedFileEntry>>;
  warnings: FileSetWarning[];
}

type ScannedEntry = ScannedFileEntry | DirEntry | SymlinkEntry;

/** lstat calls in flight while listing one folder. */
const PARALLEL_STATS = 32;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Lists every set of `config` (the `source.files` section) under `options.baseDir`. Throws
 * `stowage.files.path_missing` when a set's folder or a listed file does not exist,
 * `stowage.files.wrong_type` when it is not a folder / regular file, `stowage.files.unreadable`
 * on a permission error; entries that vanish mid-scan, sockets and devices, undecodable names and
 * symlinks leading outside their set are skipped with a warning.
 */
export async function scanFileSets(config: FileSetsConfig, options: ScanOptions): Promise<FileSetScan> {
  const parsed = fileSetsConfigSchema.safeParse(config);
  if (!parsed.success) {
    throw new FileSetError(FileSetErrorCode.InvalidConfig, `Invalid file-set config: ${z.prettifyError(parsed.error)}`);
  }
  const scan: FileSetScan = { baseDir: resolve(options.baseDir), parent: options.parent, sets: {}, warnings: [] };
  for (const name of Object.keys(parsed.data).sort()) {
    const set = parsed.data[name] as FolderSetConfig | FileListSetConfig;
    scan.sets[name] = 'files' in set ? await scanFileList(scan, name, set) : await scanFolder(scan, name, set);
  }
  return scan;
}

/** A configured path, followed if it is a symlink. */
async function statConfigured(set: string, path: string, location: string): Promise<Stats> {
  try {
    return await stat(location);
  } catch (error) {
    if (!isGone(error)) throw unreadable(set, path, error);
    throw new FileSetError(FileSetErrorCode.PathMissing, `File set "${set}": "${path}" does not exist (looked at ${location})`, {
      context: { set, path, location },
      cause: error,
    });
  }
}

function wrongType(set: string, path: string, expected: string): FileSetError {
  return new FileSetError(FileSetErrorCode.WrongType, `File set "${set}": "${path}" is not ${expected}`, { context: { set, path } });
}

/**
 * A scanned file, with the parent's content hash when it is known to still hold: size, mode and
 * mtime match, and either ctime matches too or a fresh hash of the file equals the parent's.
 */
async function scanFile(
  set: string,
  path: string,
  stats: Stats,
  previous: ScannedEntry | undefined,
  location: string,
  followLink: boolean,
): Promise<ScannedFileEntry> {
  const current = fileEntry(path, stats, undefined);
  if (previous?.type !== 'file' || previous.sha256 === undefined) return current;
  if (previous.size !== current.size || previous.mode !== current.mode || previous.mtimeMs !== current.mtimeMs) return current;
  if (previous.ctimeMs === current.ctimeMs) return { ...current, sha256: previous.sha256 };
  try {
    const file = await openFile(location, followLink);
    try {
      const hash = createHash('sha256');
      for await (const chunk of readChunks(file, current.size)) hash.update(chunk);
      return hash.digest('hex') === previous.sha256 ? { ...current, sha256: previous.sha256 } : current;
    } finally {
      await file.close();
    }
  } catch (error) {
    // Gone or swapped for a symlink since the lstat: the archive writer will find out and report it.
    if (isGone(error) || systemErrorCode(error) === 'ELOOP') return current;
    throw unreadable(set, path, error);
  }
}

/** gitignore-like: a glob without '/' matches an entry's name at any depth, one with '/' its whole relative path. */
function globMatcher(globs: readonly string[] | undefined): ((path: string) => boolean) | undefined {
  if (globs === undefined) return undefined;
  const byName = picomatch(
    globs.filter((glob) => !glob.includes('/')),
    { dot: true },
  );
  const byPath = picomatch(
    globs.filter((glob) => glob.includes('/')),
    { dot: true },
  );
  return (path) => byName(basename(path)) || byPath(path);
}

async function scanFolder(scan: FileSetScan, name: string, config: FolderSetConfig): Promise<SetIndexOf<ScannedFileEntry>> {
  const root = join(scan.baseDir, config.path);
  const rootStats = await statConfigured(name, config.path, root);
  if (!rootStats.isDirectory()) throw wrongType(name, config.path, 'a folder');
  const set: SetIndexOf<ScannedFileEntry> = { kind: 'folder', path: config.path, entries: [] };
  const previous = comparableEntries(scan.parent?.sets[name], set);
  const include = globMatcher(config.include);
  const exclude = globMatcher(config.exclude);
  const found = new Map<string, ScannedEntry>([['.', dirEntry('.', rootStats)]]);
  const warnings: FileSetWarning[] = [];
  const warn = (code: FileSetWarning['code'], path: string, message: string): void => {
    warnings.push({ code, set: name, path, message: `File set "${name}": "${path}" ${message}` });
  };

  const visit = async (path: string, pending: string[]): Promise<void> => {
    if (exclude?.(path) === true) return;
    const location = join(root, path);
    try {
      const stats = await lstat(location);
      if (stats.isDirectory()) {
        found.set(path, dirEntry(path, stats));
        pending.push(path);
      } else if (include?.(path) === false) {
        return;
      } else if (stats.isFile()) {
        found.set(path, await scanFile(name, path, stats, previous.get(path), location, false));
      } else if (stats.isSymbolicLink()) {
        found.set(path, { path, type: 'symlink', mtimeMs: Math.round(stats.mtimeMs), linkTarget: await readlink(location) });
      } else {
        warn('unsupported_type', path, 'is a socket, FIFO or device; it is not backed up');
      }
    } catch (error) {
      if (!isGone(error)) throw error instanceof FileSetError ? error : unreadable(name, path, error);
      warn('vanished', path, 'vanished during the scan; it is left out');
    }
  };

  const pending = ['.'];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    let names: Buffer[];
    try {
      names = await readdir(join(root, dir), { encoding: 'buffer' });
    } catch (error) {
      if (!isGone(error) || dir === '.') throw unreadable(name, dir, error);
      found.delete(dir);
      warn('vanished', dir, 'vanished during the scan; it is left out');
      continue;
    }
    const paths: string[] = [];
    for (const raw of names) {
      let entryName: string;
      try {
        entryName = strictUtf8.decode(raw);
      } catch {
        warn('unsupported_name', join(dir, raw.toString('latin1')), 'is not a valid UTF-8 name; it is not backed up');
        continue;
      }
      const path = dir === '.' ? entryName : `${dir}/${entryName}`;
      if (entryName.includes('\\')) warn('unsupported_name', path, 'contains a backslash; it is not backed up');
      else paths.push(path);
    }
    for (let i = 0; i < paths.length; i += PARALLEL_STATS) {
      await Promise.all(paths.slice(i, i + PARALLEL_STATS).map((path) => visit(path, pending)));
    }
  }

  const entries = [...found.values()].sort(byPath);
  const links = new Map(entries.flatMap((entry) => (entry.type === 'symlink' ? [[entry.path, entry.linkTarget] as const] : [])));
  set.entries = entries.filter((entry) => {
    if (entry.type !== 'symlink' || !linkEscapes(entry.path, entry.linkTarget, links)) return true;
    warn('link_escapes', entry.path, `is a symlink to "${entry.linkTarget}", outside the set; it is not backed up`);
    return false;
  });
  scan.warnings.push(...warnings.sort(byPath));
  return set;
}

async function scanFileList(scan: FileSetScan, name: string, config: FileListSetConfig): Promise<SetIndexOf<ScannedFileEntry>> {
  const set: SetIndexOf<ScannedFileEntry> = { kind: 'files', entries: [] };
  const previous = comparableEntries(scan.parent?.sets[name], set);
  const entries: ScannedFileEntry[] = [];
  for (const path of config.files) {
    const location = join(scan.baseDir, path);
    const stats = await statConfigured(name, path, location);
    if (!stats.isFile()) throw wrongType(name, path, 'a regular file');
    entries.push(await scanFile(name, path, stats, previous.get(path), location, true));
  }
  set.entries = entries.sort(byPath);
  return set;
}
