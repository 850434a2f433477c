import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach } from 'vitest';
import { writeFileSetArchive, type ArchiveOptions, type ArchiveResult } from '../archive.js';
import type { FileSetsConfig } from '../config.js';
import { INDEX_MEMBER, type FileSetIndex } from '../fileset-index.js';
import { scanFileSets } from '../scan.js';
import { encodeTarHeader, END_OF_ARCHIVE, padding, type TarHeader } from '../tar.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const dir of cleanups.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A fresh temporary folder, removed after the test. */
export async function tempDir(prefix = 'filesets'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `stowage-${prefix}-`));
  cleanups.push(dir);
  return dir;
}

/** How a test describes one entry of a tree. */
export type Spec =
  | string
  | Buffer
  | { content: string | Buffer; mode?: number; mtimeMs?: number }
  | { dir: true; mode?: number; mtimeMs?: number }
  | { symlink: string };

/** Creates entries under `root`; folders' modes and mtimes are applied after their contents. */
export async function writeTree(root: string, spec: Record<string, Spec>): Promise<void> {
  await mkdir(root, { recursive: true });
  const folders: Array<[string, { mode?: number; mtimeMs?: number }]> = [];
  for (const [path, entry] of Object.entries(spec)) {
    const location = join(root, path);
    await mkdir(dirname(location), { recursive: true });
    if (typeof entry === 'string' || Buffer.isBuffer(entry)) {
      await writeFile(location, entry);
    } else if ('symlink' in entry) {
      await rm(location, { force: true });
      await symlink(entry.symlink, location);
    } else if ('dir' in entry) {
      await mkdir(location, { recursive: true });
      folders.push([location, entry]);
    } else {
      await writeFile(location, entry.content);
      if (entry.mode !== undefined) await chmod(location, entry.mode);
      if (entry.mtimeMs !== undefined) await utimes(location, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
    }
  }
  for (const [location, entry] of folders.reverse()) {
    if (entry.mode !== undefined) await chmod(location, entry.mode);
    if (entry.mtimeMs !== undefined) await utimes(location, entry.mtimeMs / 1000, entry.mtimeMs / 1000);
  }
}

/** Everything a restore must reproduce about a tree, by relative path, never following links. */
export async function snapshotTree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const visit = async (relative: string): Promise<void> => {
    const location = relative === '.' ? root : join(root, relative);
    const stats = await lstat(location);
    const time = Math.round(stats.mtimeMs);
    const mode = (stats.mode & 0o7777).toString(8);
    if (stats.isSymbolicLink()) out[relative] = `link -> ${await readlink(location)} @${time}`;
    else if (stats.isFile()) out[relative] = `file ${mode} ${sha256(await readFile(location))} @${time}`;
    else if (stats.isDirectory()) {
      out[relative] = `dir ${mode} @${time}`;
      for (const name of await readdir(location)) await visit(relative === '.' ? name : `${relative}/${name}`);
    } else out[relative] = 'other';
  };
  await visit('.');
  return out;
}

export function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Scans `config` under `baseDir` and writes the archive to `file`. */
export async function backup(config: FileSetsConfig, baseDir: string, file: string, parent?: FileSetIndex, options?: ArchiveOptions): Promise<ArchiveResult> {
  const scan = await scanFileSets(config, { baseDir, parent });
  return writeFileSetArchive(scan, createWriteStream(file), options);
}

/** An archive opener for `restoreFileSets`. */
export function fromFile(file: string): () => Promise<ReadStream> {
  return async () => createReadStream(file);
}

/** A hand-made archive: the given members, then (optionally) an index member and the end marker. */
export function craftArchive(members: Array<{ header: TarHeader; content?: Buffer }>, index?: unknown): Buffer {
  const parts: Buffer[] = [];
  const add = (header: TarHeader, content: Buffer = Buffer.alloc(0)): void => {
    parts.push(encodeTarHeader({ ...header, size: content.length }), content, padding(content.length));
  };
  for (const { header, content } of members) add(header, content);
  if (index !== undefined) {
    const bytes = Buffer.from(JSON.stringify(index));
    add({ name: INDEX_MEMBER, type: 'file', size: bytes.length, mode: 0o600, mtimeMs: 0 }, bytes);
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

/** Header defaults for hand-made members. */
export function member(name: string, type: TarHeader['type'] = 'file', linkname?: string): TarHeader {
  return { name, type, size: 0, mode: type === 'directory' ? 0o755 : 0o644, mtimeMs: 1_700_000_000_000, ...(linkname === undefined ? {} : { linkname }) };
}
