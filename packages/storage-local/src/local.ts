import { constants } from 'node:fs';
import { chmod, copyFile, link, mkdir, open, opendir, readdir, rename, rm, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { systemErrorCode } from '@stowage/errors';
import {
  DigestStream,
  StorageError,
  StorageErrorCode,
  abortedError,
  assertBodyMatches,
  assertValidKey,
  assertValidPrefix,
  crashPoint,
  destroyOnAbort,
  digestFile,
  isDeadOwnersTemp,
  isNoSpace,
  objectNotFound,
  ownerToken,
  throwIfAborted,
  type Capabilities,
  type GetOptions,
  type ObjectInfo,
  type PutBody,
  type PutOptions,
  type StorageAdapter,
} from '@stowage/storage';

/*
 * Design: an object is a file at `<root>/<key>`. A put writes a hidden temp file in the target
 * folder (`.<name>.stowage-tmp-<owner token>`: host, pid, start time; see `removeDeadTemporaries`), hashing and counting on the way, checks the body,
 * fsyncs, then makes it visible in one step: rename(2), or link(2) for `ifNoneMatch` since link
 * fails atomically when the name is taken. A body backed by a file (`PutBody.path`) is copied by
 * the kernel instead, or hard-linked when the body lets the put claim it (`PutBody.claimLink`), and
 * checked by reading it back. Folders are 0700 and files 0600
 * whatever the umask.
 */

const FOLDER_MODE = 0o700;
const FILE_MODE = 0o600;
const TEMP_MARKER = '.stowage-tmp-';
const READ_CHUNK_BYTES = 256 * 1024;

/** True for errors meaning "no object here": missing, or a folder where the key expects a file. */
function isNotAnObject(error: unknown): boolean {
  return ['ENOENT', 'ENOTDIR', 'EISDIR'].includes(systemErrorCode(error) ?? '');
}

/** Storage codes for the errno values that have one; any other errno is `unavailable`. */
const ERRNO_CODES: Readonly<Record<string, StorageErrorCode>> = {
  EACCES: StorageErrorCode.PermissionDenied,
  EPERM: StorageErrorCode.PermissionDenied,
  EROFS: StorageErrorCode.PermissionDenied,
  ENOSPC: StorageErrorCode.NoSpace,
  EDQUOT: StorageErrorCode.NoSpace,
  EMFILE: StorageErrorCode.Transient,
  ENFILE: StorageErrorCode.Transient,
  EAGAIN: StorageErrorCode.Transient,
  EBUSY: StorageErrorCode.Transient,
  ENAMETOOLONG: StorageErrorCode.InvalidKey,
  // A key needs a folder where an object is stored, or the other way round ('a' and 'a/b').
  EEXIST: StorageErrorCode.Unsupported,
  ENOTDIR: StorageErrorCode.Unsupported,
  EISDIR: StorageErrorCode.Unsupported,
};

export interface LocalStorageOptions {
  /** Flush each file and its folder to disk before `put` resolves (default true). */
  fsync?: boolean;
}

/** A storage adapter over a local folder; keys map to files below it. */
export class LocalStorage implements StorageAdapter {
  /** The absolute folder objects are stored in; created on the first put. */
  readonly root: string;
  readonly description: string;
  readonly capabilities: Capabilities = {
    serverChecksums: ['sha256'],
    conditionalPut: true,
    rangeReads: true,
    maxParallelism: 8,
  };
  readonly #fsync: boolean;

  constructor(root: string, options: LocalStorageOptions = {}) {
    this.root = resolve(root);
    this.description = pathToFileURL(this.root).href;
    this.#fsync = options.fsync ?? true;
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<ObjectInfo> {
    const path = this.#pathOf(key);
    throwIfAborted(options.signal, key);
    const folder = dirname(path);
    const temp = join(folder, `.${basename(path)}${TEMP_MARKER}${ownerToken()}`);
    try {
      await this.#createFolder(folder);
      const info =
        body.path === undefined ? await this.#writeFile(temp, key, body, options.signal) : await this.#copyFile(body.path, temp, key, body, options.signal);
      crashPoint('local.temp-written');
      if (options.ifNoneMatch) {
        await link(temp, path).catch((error: unknown) => {
          if (systemErrorCode(error) !== 'EEXIST') throw error;
          throw new StorageError(StorageErrorCode.AlreadyExists, `'${key}' already exists at ${this.description}`, {
            context: { key },
          });
        });
        crashPoint('local.linked');
        await unlink(temp);
      } else {
        await rename(temp, path);
        crashPoint('local.renamed');
      }
      if (this.#fsync) await syncFolder(folder);
      return info;
    } catch (error) {
      await rm(temp, { force: true }).catch(() => undefined); // best effort; the first error is the one to report
      const mapped = this.#storageError(error, 'put', key);
      throw isNoSpace(mapped) ? await this.#diskFull(mapped, key, body.size, folder) : mapped;
    }
  }

  /** A full disk, said with the numbers: what the object needed and what the file system has free. */
  async #diskFull(error: StorageError, key: string, needed: number, folder: string): Promise<StorageError> {
    const free = await statfs(folder)
      .catch(() => statfs(this.root))
      .then(
        (fs) => fs.bavail * fs.bsize,
        () => undefined,
      );
    return new StorageError(StorageErrorCode.NoSpace, `disk full at ${this.root}: needed ${needed} bytes for '${key}', free ${free ?? 'unknown'} bytes`, {
      context: { ...error.context, needed, free },
      cause: error.cause,
    });
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const path = this.#pathOf(key);
    throwIfAborted(options.signal, key);
    const { offset = 0, length } = options.range ?? {};
    if (![offset, length ?? 0].every((n) => Number.isSafeInteger(n) && n >= 0)) {
      throw new RangeError(`invalid range { offset: ${offset}, length: ${length} } for '${key}'`);
    }
    const opened = await this.#openObject(path, key, 'get');
    if (!opened) throw objectNotFound(key, this.description);
    const stream = new FileRangeStream(opened.file, offset, length ?? Infinity, (error) => this.#storageError(error, 'get', key));
    return destroyOnAbort(stream, options.signal, key);
  }

  /** Reads the whole file to report its SHA-256 as stored on disk. */
  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo | undefined> {
    const path = this.#pathOf(key);
    throwIfAborted(options.signal, key);
    const opened = await this.#openObject(path, key, 'stat');
    if (!opened) return undefined;
    try {
      const { size, sha256 } = await this.#digestFile(opened.file, key, 'stat', options.signal);
      return { key, size, modified: opened.modified, checksums: { sha256 } };
    } finally {
      await opened.file.close();
    }
  }

  /** Walks only the folders that can hold matching keys; reports no checksums (that needs a read). */
  async *list(prefix: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<ObjectInfo> {
    assertValidPrefix(prefix);
    const cut = prefix.lastIndexOf('/') + 1;
    yield* this.#walk(prefix.slice(0, cut), prefix.slice(cut), options.signal);
  }

  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    const paths = keys.map((key) => this.#pathOf(key));
    for (const [index, path] of paths.entries()) {
      throwIfAborted(options.signal, keys[index]);
      try {
        await unlink(path);
      } catch (error) {
        if (!isNotAnObject(error)) throw this.#storageError(error, 'delete', keys[index]!);
      }
    }
  }

  /** The file of `key`, after checking that the key is valid and not a temp file name. */
  #pathOf(key: string): string {
    assertValidKey(key);
    if (isTempName(key.slice(key.lastIndexOf('/') + 1))) {
      throw new StorageError(StorageErrorCode.InvalidKey, `invalid storage key '${key}': the name is reserved for temporary files`, {
        context: { key },
      });
    }
    return join(this.root, key);
  }

  /** Creates `folder` and its missing parents, each 0700 whatever the umask. */
  async #createFolder(folder: string): Promise<void> {
    const first = await mkdir(folder, { recursive: true, mode: FOLDER_MODE });
    if (first === undefined) return;
    for (let created = folder; ; created = dirname(created)) {
      await chmod(created, FOLDER_MODE);
      if (created === first || created === dirname(created)) return;
    }
  }

  /**
   * Writes the body to a new 0600 file, checks it against the body's size and SHA-256, fsyncs it,
   * then reads the file back and reports the SHA-256 of what it holds: the checksum `put` returns
   * is an independent check of the stored bytes, not an echo of the bytes that were sent.
   */
  async #writeFile(path: string, key: string, body: PutBody, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    const file = await open(path, 'wx+', FILE_MODE);
    try {
      await file.chmod(FILE_MODE);
      const meter = new DigestStream();
      // When writing fails (ENOSPC), pipeline() reports the source's abort instead: keep the write's error.
      let writeError: unknown;
      const write = (chunks: AsyncIterable<Buffer>) => writeAll(file, chunks).catch((error: unknown) => Promise.reject((writeError = error)));
      await pipeline(body.open(), meter, write, { signal }).catch((error: unknown) => Promise.reject(writeError ?? error));
      const sent = { size: meter.size, sha256: meter.digest() };
      assertBodyMatches(key, body, sent);
      if (this.#fsync) await file.sync();
      const { mtime } = await file.stat();
      const stored = await this.#digestFile(file, key, 'put', signal);
      if (stored.size !== sent.size || stored.sha256 !== sent.sha256) {
        throw new StorageError(
          StorageErrorCode.ChecksumMismatch,
          `'${key}' at ${this.description} reads back differently from what was written (${stored.size} of ${sent.size} bytes)`,
          {
            context: { key, sent, stored },
          },
        );
      }
      return { key, size: stored.size, modified: mtime, checksums: { sha256: stored.sha256 } };
    } finally {
      await file.close();
    }
  }

  /**
   * Hard-links the body's file as the new file when the body lets this put claim it and it is on the
   * same file system; copies it in the kernel otherwise (no byte passes through JS). Then makes it
   * 0600 and fsyncs it while reading it back: the bytes stored must be the body's declared size and
   * SHA-256, and that read-back's SHA-256 is what `put` reports. `COPYFILE_EXCL`: without it
   * libuv truncates the new file first, and ext4 then flushes it on close (twice the time).
   */
  async #copyFile(source: string, path: string, key: string, body: PutBody, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    // Any failure to link (another file system, links not supported) leaves the copy to find what is wrong.
    const linked =
      body.claimLink?.() === true &&
      (await link(source, path).then(
        () => true,
        () => false,
      ));
    if (!linked) await copyFile(source, path, constants.COPYFILE_EXCL);
    crashPoint('local.copied');
    const file = await open(path, 'r+');
    try {
      await file.chmod(FILE_MODE);
      throwIfAborted(signal, key);
      const [stored] = await Promise.all([this.#digestFile(file, key, 'put', signal), this.#fsync && file.sync()]);
      assertBodyMatches(key, body, stored);
      const { mtime } = await file.stat();
      return { key, size: stored.size, modified: mtime, checksums: { sha256: stored.sha256 } };
    } finally {
      await file.close();
    }
  }

  /** Size and SHA-256 of an open file's bytes, read from the start (`digestFile`). */
  async #digestFile(file: FileHandle, key: string, operation: string, signal: AbortSignal | undefined): Promise<{ size: number; sha256: string }> {
    try {
      return await digestFile(file, { beforeRead: () => throwIfAborted(signal, key) });
    } catch (error) {
      throw this.#storageError(error, operation, key);
    }
  }

  /** Opens the object's file for reading, or returns undefined when there is no such object. */
  async #openObject(path: string, key: string, operation: string): Promise<{ file: FileHandle; modified: Date } | undefined> {
    let file: FileHandle;
    try {
      file = await open(path, 'r');
    } catch (error) {
      if (isNotAnObject(error)) return undefined;
      throw this.#storageError(error, operation, key);
    }
    const stats = await file.stat().catch(async (error: unknown) => {
      await file.close();
      throw this.#storageError(error, operation, key);
    });
    if (stats.isFile()) return { file, modified: stats.mtime };
    await file.close();
    return undefined;
  }

  /** Objects in folder `folderKey` (`''` or ending in `/`) named `namePrefix…`, and all below such folders. */
  async *#walk(folderKey: string, namePrefix: string, signal: AbortSignal | undefined): AsyncGenerator<ObjectInfo> {
    let folder;
    try {
      folder = await opendir(join(this.root, folderKey));
    } catch (error) {
      if (isNotAnObject(error)) return;
      throw this.#storageError(error, 'list', folderKey);
    }
    for await (const entry of folder) {
      throwIfAborted(signal, folderKey + namePrefix);
      if (!entry.name.startsWith(namePrefix) || isTempName(entry.name)) continue;
      const key = folderKey + entry.name;
      if (entry.isDirectory()) {
        yield* this.#walk(`${key}/`, '', signal);
      } else if (entry.isFile()) {
        const stats = await stat(join(this.root, key)).catch((error: unknown) => {
          if (isNotAnObject(error)) return undefined; // deleted since the folder was read
          throw this.#storageError(error, 'list', key);
        });
        if (stats) yield { key, size: stats.size, modified: stats.mtime, checksums: {} };
      }
    }
  }

  /** Maps a Node.js error onto a StorageError; an error from outside the file system (the body's own) passes as is. */
  #storageError(error: unknown, operation: string, key: string): unknown {
    if (error instanceof StorageError) return error;
    if (error instanceof Error && error.name === 'AbortError') return abortedError(key, error);
    const errno = systemErrorCode(error);
    if (errno === undefined || !/^E[A-Z]+$/.test(errno)) return error;
    return new StorageError(
      ERRNO_CODES[errno] ?? StorageErrorCode.Unavailable,
      `${operation} '${key}' at ${this.description} failed: ${(error as Error).message}`,
      { context: { key, operation, errno }, cause: error },
    );
  }
}

/**
 * Removes the temp files that dead processes left below `root` (a put killed before its rename),
 * never one whose owner may still run. Returns the paths removed.
 */
export async function removeDeadTemporaries(root: string): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(root, { withFileTypes: true, recursive: true }).catch((error: unknown) => {
    if (isNotAnObject(error)) return [];
    throw error;
  });
  for (const entry of entries) {
    if (!entry.isFile() || !isTempName(entry.name) || !isDeadOwnersTemp(entry.name)) continue;
    const path = join(entry.parentPath, entry.name);
    await rm(path, { force: true });
    removed.push(path);
  }
  return removed;
}

function isTempName(name: string): boolean {
  return name.startsWith('.') && name.includes(TEMP_MARKER);
}

async function writeAll(file: FileHandle, chunks: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of chunks) {
    for (let written = 0; written < chunk.length; ) written += (await file.write(chunk, written)).bytesWritten;
  }
}

async function syncFolder(folder: string): Promise<void> {
  if (process.platform === 'win32') return; // folders cannot be opened for fsync there
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The bytes `[offset, offset + length)` of an open file (fewer at its end); closes the file when done. */
class FileRangeStream extends Readable {
  readonly #file: FileHandle;
  readonly #end: number;
  readonly #mapError: (error: unknown) => unknown;
  #position: number;

  constructor(file: FileHandle, offset: number, length: number, mapError: (error: unknown) => unknown) {
    super({ highWaterMark: READ_CHUNK_BYTES });
    this.#file = file;
    this.#position = offset;
    this.#end = offset + length;
    this.#mapError = mapError;
  }

  override _read(): void {
    const wanted = Math.min(READ_CHUNK_BYTES, this.#end - this.#position);
    if (wanted <= 0) {
      this.push(null);
      return;
    }
    this.#file.read(Buffer.allocUnsafe(wanted), 0, wanted, this.#position).then(
      ({ bytesRead, buffer }) => {
        this.#position += bytesRead;
        this.push(bytesRead === 0 ? null : buffer.subarray(0, bytesRead));
      },
      (error: unknown) => this.destroy(this.#mapError(error) as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#file.close().then(
      () => callback(error),
      (closeError: unknown) => callback(error ?? (closeError as Error)),
    );
  }
}
