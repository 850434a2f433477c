import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { systemErrorCode } from '@stowage/errors';
import { FileSetError, FileSetErrorCode } from './errors.js';
import type { DirEntry, ScannedFileEntry, SetIndexOf } from './fileset-index.js';

/** Bytes per read; memory stays a few chunks whatever the file sizes. */
export const CHUNK_BYTES = 1024 * 1024;

/** Where an entry of a set lives under `baseDir`. */
export function entryLocation(baseDir: string, set: SetIndexOf<ScannedFileEntry>, path: string): string {
  return set.kind === 'folder' ? join(baseDir, set.path, path) : join(baseDir, path);
}

/** True for the errors that mean "it is not there (any more)". */
export function isGone(error: unknown): boolean {
  const code = systemErrorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** `stowage.files.unreadable` for a system error met while reading `path` of `set`. */
export function unreadable(set: string, path: string, cause: unknown): FileSetError {
  return new FileSetError(
    FileSetErrorCode.Unreadable,
    `File set "${set}": cannot read "${path}" (${systemErrorCode(cause) ?? String(cause)}); fix its permissions or exclude it`,
    { context: { set, path }, cause },
  );
}

/**
 * Opens a file to read. Entries found by walking a folder are opened without following a final
 * symlink (one swapped in since the scan fails with ELOOP); files a config lists are followed.
 */
export function openFile(location: string, followLink: boolean): Promise<FileHandle> {
  return open(location, constants.O_RDONLY | (followLink ? 0 : (constants.O_NOFOLLOW ?? 0)));
}

/**
 * The first `size` bytes of an open file in chunks; ends early if the file is shorter now. The
 * next chunk is read while the consumer works on the current one (hashing and disk overlap).
 */
export async function* readChunks(file: FileHandle, size: number): AsyncGenerator<Buffer> {
  const readAt = async (position: number): Promise<Buffer> => {
    const buffer = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, size - position));
    const { bytesRead } = await file.read(buffer, 0, buffer.length, position);
    return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
  };
  let position = 0;
  let next = size > 0 ? readAt(0) : undefined;
  try {
    while (next !== undefined) {
      const chunk = await next;
      if (chunk.length === 0) return;
      position += chunk.length;
      next = position < size ? readAt(position) : undefined;
      yield chunk;
    }
  } finally {
    // A consumer that stops early must not leave a read running on a file it is about to close.
    await next?.catch(() => undefined);
  }
}

/** The stat fields a folder entry records. */
export function dirEntry(path: string, stats: Stats): DirEntry {
  return { path, type: 'dir', mode: stats.mode & 0o7777, mtimeMs: Math.round(stats.mtimeMs) };
}

/** The stat fields a file entry records; `sha256` is filled in by whoever reads the content. */
export function fileEntry(path: string, stats: Stats, sha256: string | undefined): ScannedFileEntry {
  return {
    path,
    type: 'file',
    mode: stats.mode & 0o7777,
    mtimeMs: Math.round(stats.mtimeMs),
    size: stats.size,
    sha256,
    ctimeMs: stats.ctimeMs,
  };
}
