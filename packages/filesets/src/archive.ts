/*
 * The archive is produced by one async generator piped into the caller's stream, so memory stays
 * at a chunk or two whatever the file sizes. Each stored file is read exactly once: its header
 * (size, mode, mtime from fstat of the open file) goes out, then its bytes while they are hashed,
 * then a second fstat. If the file changed during the read (size, mtime or ctime moved, or it
 * came up short) the bytes already sent cannot be taken back, so the member is retried: a later
 * member of the same name supersedes it (tar extraction keeps the last one, and Stowage's restore
 * takes only a member whose hash the index records). The index, written last, records only
 * stable reads; a file that never reads stable keeps its parent's entry, or is left out.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { systemErrorCode } from '@stowage/errors';
import { entryLocation, fileEntry, isGone, openFile, readChunks, unreadable } from './file-io.js';
import {
  comparableEntries,
  diffIndexes,
  INDEX_FORMAT,
  INDEX_MEMBER,
  INDEX_VERSION,
  sameEntry,
  serializeFileSetIndex,
  type DirEntry,
  type FileEntry,
  type FileSetEntry,
  type FileSetIndex,
  type ScannedFileEntry,
  type SetIndex,
  type SetIndexOf,
  type SetSummary,
  type SymlinkEntry,
} from './fileset-index.js';
import type { FileSetScan } from './scan.js';
import { END_OF_ARCHIVE, encodeTarHeader, padding, type TarHeader } from './tar.js';
import type { FileSetWarning } from './warnings.js';

/** Progress of the file being stored, reported after each chunk. */
export interface ArchiveProgress {
  set: string;
  path: string;
  /** 1 for the first read of this file, 2 and on for retries after a change during the read. */
  attempt: number;
  fileBytes: number;
  fileSize: number;
  /** Archive bytes produced so far. */
  archiveBytes: number;
}

/** Options of `writeFileSetArchive`. */
export interface ArchiveOptions {
  /** Reads of a file that changes while being read, and the pause between them. Default 3 reads, 100 ms apart. */
  retry?: { attempts?: number; delayMs?: number };
  /** Called after each chunk is read and passed on; awaited, so it can also pace the backup. */
  onProgress?: (progress: ArchiveProgress) => void | Promise<void>;
}

/** What `writeFileSetArchive` produced. */
export interface ArchiveResult {
  /** The index of this point in time; also the archive's last member. */
  index: FileSetIndex;
  /** The index as stored in the archive, and its SHA-256: keep both with the backup. */
  indexBytes: Buffer;
  indexSha256: string;
  /** Bytes written to the output (the uncompressed tar). */
  archiveBytes: number;
  /** Entries whose content or metadata the archive carries (files counted once however often read). */
  stored: SetSummary;
  /** Entry counts against the parent (all `added` for a full archive). */
  diff: { added: number; changed: number; deleted: number };
  /** The scan's warnings and the archive run's (`vanished`, `unstable`). */
  warnings: FileSetWarning[];
}

/**
 * Writes one tar archive of `scan` to `output` and ends it (like `stream.pipeline`, which also
 * destroys `output` on failure). Without `scan.parent` every entry is stored; with it, only
 * entries added or changed since the parent, deletions being implicit in the index. Files that
 * vanish are left out, files that keep changing are retried and then reported `unstable` (see
 * `FileSetWarning`); neither fails the run.
 */
export async function writeFileSetArchive(scan: FileSetScan, output: Writable, options: ArchiveOptions = {}): Promise<ArchiveResult> {
  const writer = new ArchiveWriter(scan, options);
  await pipeline(writer.chunks(), output);
  return writer.result();
}

type ParentEntry = FileEntry | DirEntry | SymlinkEntry;

class ArchiveWriter {
  private archiveBytes = 0;
  private readonly stored: SetSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  private readonly warnings: FileSetWarning[];
  private written: { index: FileSetIndex; bytes: Buffer; sha256: string } | undefined;

  constructor(
    private readonly scan: FileSetScan,
    private readonly options: ArchiveOptions,
  ) {
    this.warnings = [...scan.warnings];
  }

  result(): ArchiveResult {
    if (this.written === undefined) throw new Error('the archive was not completed');
    const { index, bytes, sha256 } = this.written;
    const diff = diffIndexes(this.scan.parent, index);
    return {
      index,
      indexBytes: bytes,
      indexSha256: sha256,
      archiveBytes: this.archiveBytes,
      stored: this.stored,
      diff: { added: diff.added.length, changed: diff.changed.length, deleted: diff.deleted.length },
      warnings: this.warnings,
    };
  }

  private out(bytes: Buffer): Buffer {
    this.archiveBytes += bytes.length;
    return bytes;
  }

  async *chunks(): AsyncGenerator<Buffer> {
    const sets: Record<string, SetIndex> = {};
    for (const [name, set] of Object.entries(this.scan.sets)) {
      const previous = comparableEntries(this.scan.parent?.sets[name], set);
      const entries: FileSetEntry[] = [];
      for (const entry of set.entries) {
        const before = previous.get(entry.path);
        const unchanged = before !== undefined && sameEntry(before, entry);
        if (entry.type === 'file') {
          const recorded = unchanged && entry.sha256 !== undefined ? { ...entry, sha256: entry.sha256 } : yield* this.storeFile(name, set, entry, before);
          if (recorded !== undefined) entries.push(recorded);
          continue;
        }
        if (!unchanged) {
          yield this.out(encodeTarHeader(memberHeader(name, entry)));
          if (entry.type === 'dir') this.stored.dirs += 1;
          else this.stored.symlinks += 1;
        }
        entries.push(entry);
      }
      sets[name] =
        set.kind === 'folder'
          ? { kind: 'folder', path: set.path, entries }
          : { kind: 'files', entries: entries.filter((entry): entry is FileEntry => entry.type === 'file') };
    }

    const index: FileSetIndex = {
      format: INDEX_FORMAT,
      version: INDEX_VERSION,
      id: randomUUID(),
      parentId: this.scan.parent?.id ?? null,
      createdAt: new Date().toISOString(),
      sets,
    };
    const { bytes, sha256 } = serializeFileSetIndex(index);
    yield this.out(encodeTarHeader({ name: INDEX_MEMBER, type: 'file', size: bytes.length, mode: 0o600, mtimeMs: Date.parse(index.createdAt) }));
    yield this.out(bytes);
    yield this.out(padding(bytes.length));
    yield this.out(END_OF_ARCHIVE);
    this.written = { index, bytes, sha256 };
  }

  /** Stores one file, retrying reads that were not stable; returns what the index records. */
  private async *storeFile(
    set: string,
    setIndex: SetIndexOf<ScannedFileEntry>,
    entry: ScannedFileEntry,
    previous: ParentEntry | undefined,
  ): AsyncGenerator<Buffer, FileEntry | undefined> {
    const location = entryLocation(this.scan.baseDir, setIndex, entry.path);
    const attempts = Math.max(1, this.options.retry?.attempts ?? 3);
    const delayMs = this.options.retry?.delayMs ?? 100;
    let why = '';
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await delay(delayMs);
      let file: FileHandle;
      try {
        file = await openFile(location, setIndex.kind === 'files');
      } catch (error) {
        if (!isGone(error) && systemErrorCode(error) !== 'ELOOP') throw unreadable(set, entry.path, error);
        this.warnings.push({
          code: 'vanished',
          set,
          path: entry.path,
          message: `File set "${set}": "${entry.path}" vanished before it could be read; it is left out`,
        });
        return undefined;
      }
      try {
        const before = await file.stat();
        if (!before.isFile()) {
          this.warnings.push({
            code: 'vanished',
            set,
            path: entry.path,
            message: `File set "${set}": "${entry.path}" is no longer a regular file; it is left out`,
          });
          return undefined;
        }
        const read = fileEntry(entry.path, before, undefined);
        yield this.out(encodeTarHeader(memberHeader(set, read)));
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of readChunks(file, read.size)) {
          hash.update(chunk);
          bytes += chunk.length;
          yield this.out(chunk);
          await this.options.onProgress?.({ set, path: entry.path, attempt, fileBytes: bytes, fileSize: read.size, archiveBytes: this.archiveBytes });
        }
        if (bytes < read.size) yield this.out(Buffer.alloc(read.size - bytes));
        yield this.out(padding(read.size));
        why = changedDuringRead(before, await file.stat(), bytes) ?? '';
        if (why === '') {
          this.stored.files += 1;
          this.stored.bytes += read.size;
          return { ...read, sha256: hash.digest('hex') };
        }
      } catch (error) {
        throw systemErrorCode(error) === undefined ? error : unreadable(set, entry.path, error);
      } finally {
        await file.close();
      }
    }
    const kept = previous?.type === 'file' ? previous : undefined;
    this.warnings.push({
      code: 'unstable',
      set,
      path: entry.path,
      keptPrevious: kept !== undefined,
      message:
        `File set "${set}": "${entry.path}" kept changing while being read (${why}, ${attempts} attempts); ` +
        (kept !== undefined ? "this backup keeps the previous backup's version" : 'it is left out of this backup'),
    });
    return kept;
  }
}

/** Why a read of a file is not a consistent copy, or `undefined` when it is. */
function changedDuringRead(before: Stats, after: Stats, bytesRead: number): string | undefined {
  if (bytesRead < before.size) return `it shrank to ${bytesRead} of ${before.size} bytes`;
  if (after.size !== before.size) return `its size went from ${before.size} to ${after.size} bytes`;
  if (after.mtimeMs !== before.mtimeMs || after.ctimeMs !== before.ctimeMs) return 'it was modified';
  return undefined;
}

/** The tar header of an entry: `<set>/<path>`, the root of a folder set being `<set>/`. */
function memberHeader(set: string, entry: ScannedFileEntry | DirEntry | SymlinkEntry): TarHeader {
  const name = entry.path === '.' ? `${set}/` : `${set}/${entry.path}`;
  switch (entry.type) {
    case 'file':
      return { name, type: 'file', size: entry.size, mode: entry.mode, mtimeMs: entry.mtimeMs };
    case 'dir':
      return { name: name.endsWith('/') ? name : `${name}/`, type: 'directory', size: 0, mode: entry.mode, mtimeMs: entry.mtimeMs };
    case 'symlink':
      return { name, type: 'symlink', size: 0, mode: 0o777, mtimeMs: entry.mtimeMs, linkname: entry.linkTarget };
  }
}
