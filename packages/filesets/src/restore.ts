/*
 * Restore never writes where an archive says: file members are spooled under numbered names in a
 * work folder inside the target, and each archive's index (its last member) is validated — paths
 * canonical, folder entries under folders, symlinks resolving inside their set — before anything
 * is built from it. The tree is built in a staging folder next to the spool by applying the
 * chain's indexes in order: deletions and type changes first, then folders, links and files in
 * path order, each file taken only from a member whose SHA-256 equals its index entry. Only when
 * the whole chain is applied are the sets renamed into place (whatever they replace is moved
 * aside, never deleted), and then modes and mtimes are set, deepest first. `stageFileSets` stops
 * before the renames and returns them, so a caller can switch the sets together with a database
 * under its own journal; `restoreFileSets` does it all.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, type Stats } from 'node:fs';
import { chmod, lstat, lutimes, mkdir, mkdtemp, readFile, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { dirname, join, resolve } from 'node:path';
import { FileSetError, FileSetErrorCode } from './errors.js';
import { isGone } from './file-io.js';
import {
  comparableEntries,
  INDEX_MEMBER,
  parseFileSetIndex,
  summarizeSet,
  type FileSetEntry,
  type FileSetIndex,
  type SetIndex,
  type SetSummary,
} from './fileset-index.js';
import { ancestorsOf, byPath, linkEscapes, parentOf, unsafePathReason } from './paths.js';
import { readTar, type TarMember } from './tar.js';

/** Options of `restoreFileSets`. */
export interface RestoreFilesOptions {
  /**
   * The chain, oldest first: the full (or hot) backup's archive, then each incremental up to the
   * point in time to restore. Each is opened when its turn comes; a Node `Readable` will do.
   */
  archives: ReadonlyArray<() => Promise<AsyncIterable<Uint8Array>>>;
  /** Folder that plays the part of the backup's base folder: sets land at their paths under it. */
  targetDir: string;
  /** Restore only these sets (default: every set of the last archive). */
  only?: readonly string[];
  /** Work folder to create for spooling and staging (default `<targetDir>/.stowage-restore-<random>`); it must not exist. */
  workDir?: string;
}

/** One rename that puts a staged entry in place: whatever is at `to` goes to `aside` first. */
export interface SetMove {
  from: string;
  to: string;
  aside: string;
}

/** File sets rebuilt in a work folder, ready to be renamed into place. */
export interface StagedFileSets {
  workDir: string;
  targetDir: string;
  sets: RestoredSet[];
  /** The renames, in order; `aside` paths lie under `asideDir`. */
  moves: SetMove[];
  index: FileSetIndex;
}

/** One restored set. */
export interface RestoredSet extends SetSummary {
  name: string;
  kind: 'folder' | 'files';
  /** Absolute folder of a folder set; the target folder for a file list. */
  location: string;
}

/** What `restoreFileSets` did. */
export interface RestoreFilesResult {
  /** The index of the restored point in time (the last archive's). */
  index: FileSetIndex;
  sets: RestoredSet[];
  /** Folder under the target holding what the restore replaced, if it replaced anything. */
  movedAside: string | undefined;
}

/** Modes are restored without setuid/setgid: a restore never creates privileged programs. */
const RESTORED_MODE_MASK = 0o1777;
const MAX_INDEX_BYTES = 512 * 1024 * 1024;

interface Spooled {
  file: string;
  sha256: string;
  size: number;
}

/**
 * Rebuilds file sets under `targetDir` exactly as they were at the last archive's point in time:
 * contents, relative paths, modes, mtimes and symlinks; files the chain deleted are gone. A folder
 * set replaces `targetDir/<path>` as a whole; a file list replaces its files only. Throws
 * `stowage.files.unsafe_path` (nothing written outside `targetDir`, the target untouched),
 * `stowage.files.corrupt`, `stowage.files.chain_broken` or `stowage.files.unknown_set`.
 */
export async function restoreFileSets(options: RestoreFilesOptions): Promise<RestoreFilesResult> {
  const targetDir = resolve(options.targetDir);
  const asideDir = join(targetDir, `.stowage-pre-restore-${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}`);
  const staged = await stageFileSets(options, asideDir);
  try {
    let movedAside: string | undefined;
    for (const move of staged.moves) {
      if ((await lstatIfAny(move.to)) !== undefined) {
        movedAside ??= await mkdtemp(`${asideDir}-`);
        const aside = join(movedAside, move.aside.slice(asideDir.length));
        await mkdir(dirname(aside), { recursive: true, mode: 0o700 });
        await rename(move.to, aside);
      }
      await rename(move.from, move.to);
    }
    await finishFileSets(staged.workDir);
    return { index: staged.index, sets: staged.sets, movedAside };
  } finally {
    await rm(staged.workDir, { recursive: true, force: true });
  }
}

/**
 * Rebuilds the sets in a work folder under `targetDir` (see `restoreFileSets`) and returns the
 * renames that put them in place, whatever they replace going under `asideDir`; the target's
 * folders that the sets go into are checked (and created) first. The caller performs the renames,
 * then calls `finishFileSets`. On error the work folder is removed and the target is untouched.
 */
export async function stageFileSets(options: RestoreFilesOptions, asideDir: string): Promise<StagedFileSets> {
  if (options.archives.length === 0) {
    throw new FileSetError(FileSetErrorCode.ChainBroken, 'No archives to restore from: give the chain, full backup first');
  }
  const targetDir = resolve(options.targetDir);
  await mkdir(targetDir, { recursive: true });
  const work = options.workDir ?? (await mkdtemp(join(targetDir, '.stowage-restore-')));
  if (options.workDir) await mkdir(work, { mode: 0o700 });
  try {
    const tree = join(work, 'tree');
    await mkdir(tree);
    const wanted = (set: string): boolean => options.only === undefined || options.only.includes(set);
    let index: FileSetIndex | undefined;
    for (const [position, openArchive] of options.archives.entries()) {
      const spool = join(work, `spool-${position}`);
      await mkdir(spool);
      const archive = await readArchive(await openArchive(), { spool, wanted });
      checkChain(index, archive.index, position);
      await applyIndex(tree, index, archive.index, archive.spooled, wanted);
      await rm(spool, { recursive: true, force: true });
      index = archive.index;
    }
    const final = index as FileSetIndex;
    const names = [...new Set(options.only ?? Object.keys(final.sets))];
    const sets = names.map((name) => {
      const set = final.sets[name];
      if (set === undefined) {
        throw new FileSetError(FileSetErrorCode.UnknownSet, `The backup has no file set "${name}"`, {
          context: { set: name, available: Object.keys(final.sets) },
        });
      }
      return { name, set, location: set.kind === 'folder' ? join(targetDir, set.path) : targetDir };
    });
    const moves = await planMoves(targetDir, tree, asideDir, sets);
    await writeFile(join(work, METADATA_FILE), JSON.stringify(sets.map(({ set, location }) => ({ location, entries: set.entries }))), { mode: 0o600 });
    return {
      workDir: work,
      targetDir,
      index: final,
      sets: sets.map(({ name, set, location }) => ({ name, kind: set.kind, location, ...summarizeSet(set) })),
      moves,
    };
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    throw error;
  }
}

const METADATA_FILE = 'metadata.json';

/**
 * Once a staged restore's renames are done: sets the restored entries' modes and mtimes (deepest
 * first, so no rename can touch a final mtime) from what `stageFileSets` recorded in the work
 * folder, then removes the work folder. Safe to repeat; a work folder already gone is a no-op.
 */
export async function finishFileSets(workDir: string): Promise<void> {
  const text = await readFile(join(workDir, METADATA_FILE), 'utf8').catch((error: unknown) => {
    if (isGone(error)) return undefined;
    throw error;
  });
  if (text !== undefined) {
    for (const { location, entries } of JSON.parse(text) as Array<{ location: string; entries: FileSetEntry[] }>) await applyMetadata(location, entries);
  }
  await rm(workDir, { recursive: true, force: true });
}

/**
 * The index of an archive (its last member), read without extracting anything, and the SHA-256
 * of its bytes. For when the index kept beside a backup is not at hand.
 */
export async function readFileSetIndex(archive: AsyncIterable<Uint8Array>): Promise<{ index: FileSetIndex; sha256: string }> {
  const { index, sha256 } = await readArchive(archive, { spool: undefined, wanted: () => false });
  return { index, sha256 };
}

function corrupt(message: string, context: Record<string, unknown> = {}): FileSetError {
  return new FileSetError(FileSetErrorCode.Corrupt, message, { context });
}

function unsafeMember(name: string, why: string): FileSetError {
  return new FileSetError(FileSetErrorCode.UnsafePath, `Refusing archive member "${name}": ${why}`, { context: { path: name } });
}

/** `<set>/<path>` of a member, checked; a folder set's root is `<set>/` (path `.`). */
function splitMemberName(member: TarMember): { set: string; path: string } {
  const name = member.type === 'directory' && member.name.endsWith('/') ? member.name.slice(0, -1) : member.name;
  const reason = unsafePathReason(name);
  if (reason !== undefined) throw unsafeMember(member.name, reason);
  const slash = name.indexOf('/');
  const set = slash === -1 ? name : name.slice(0, slash);
  if (!/^[a-z0-9_-]+$/.test(set) || (slash === -1 && member.type !== 'directory')) {
    throw corrupt(`Unexpected archive member "${member.name}": not part of a Stowage file-set archive`, { path: member.name });
  }
  return { set, path: slash === -1 ? '.' : name.slice(slash + 1) };
}

/** Spools the file members of one archive (of the wanted sets) and returns its validated index. */
async function readArchive(
  source: AsyncIterable<Uint8Array>,
  options: { spool: string | undefined; wanted: (set: string) => boolean },
): Promise<{ index: FileSetIndex; sha256: string; spooled: Map<string, Spooled> }> {
  const spooled = new Map<string, Spooled>();
  let indexBytes: Buffer | undefined;
  let spoolCount = 0;
  for await (const { member, content } of readTar(source)) {
    if (indexBytes !== undefined) throw corrupt(`Archive member "${member.name}" follows the index, which must be last`);
    if (member.name === INDEX_MEMBER) {
      if (member.type !== 'file' || member.size > MAX_INDEX_BYTES) throw corrupt('The archive has an unusable index member');
      const parts: Buffer[] = [];
      for await (const part of content) parts.push(part);
      indexBytes = Buffer.concat(parts);
      continue;
    }
    const { set, path } = splitMemberName(member);
    if (member.type === 'hardlink') throw unsafeMember(member.name, 'hard links are never part of a file-set archive');
    if (member.type === 'other') throw corrupt(`Archive member "${member.name}" has an unsupported type '${member.typeflag}'`, { path: member.name });
    if (member.type === 'symlink' && linkEscapes(path, member.linkname, new Map())) {
      throw unsafeMember(member.name, `it is a symlink to "${member.linkname}", outside its set`);
    }
    if (member.type !== 'file' || options.spool === undefined || !options.wanted(set)) continue;
    const key = `${set}/${path}`;
    const spooledFile = await spool(content, join(options.spool, String(spoolCount++)));
    const superseded = spooled.get(key);
    if (superseded !== undefined) await rm(superseded.file, { force: true });
    spooled.set(key, spooledFile);
  }
  if (indexBytes === undefined) throw corrupt(`The archive has no ${INDEX_MEMBER}: not a Stowage file-set archive, or truncated`);
  return { index: parseFileSetIndex(indexBytes), sha256: createHash('sha256').update(indexBytes).digest('hex'), spooled };
}

/** Writes a member's content to a new private file, hashing it on the way. */
async function spool(content: AsyncIterable<Buffer>, file: string): Promise<Spooled> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(
    content,
    async function* (parts: AsyncIterable<Buffer>) {
      for await (const part of parts) {
        hash.update(part);
        size += part.length;
        yield part;
      }
    },
    createWriteStream(file, { flags: 'wx', mode: 0o600 }),
  );
  return { file, sha256: hash.digest('hex'), size };
}

function checkChain(previous: FileSetIndex | undefined, next: FileSetIndex, position: number): void {
  if (previous === undefined && next.parentId !== null) {
    throw new FileSetError(FileSetErrorCode.ChainBroken, 'The first archive is an incremental; restore needs its chain from the full backup on', {
      context: { position, parentId: next.parentId },
    });
  }
  if (previous !== undefined && next.parentId !== previous.id) {
    throw new FileSetError(FileSetErrorCode.ChainBroken, `Archive ${position + 1} of the chain is not the incremental of archive ${position}`, {
      context: { position, parentId: next.parentId, expected: previous.id },
    });
  }
}

/** Turns the staged tree of `previous` into the tree of `next`, for the wanted sets. */
async function applyIndex(
  tree: string,
  previous: FileSetIndex | undefined,
  next: FileSetIndex,
  spooled: Map<string, Spooled>,
  wanted: (set: string) => boolean,
): Promise<void> {
  const names = new Set([...Object.keys(previous?.sets ?? {}), ...Object.keys(next.sets)]);
  for (const name of [...names].filter(wanted)) {
    const root = join(tree, name);
    const after = next.sets[name];
    if (after === undefined) {
      await rm(root, { recursive: true, force: true });
      continue;
    }
    const before = comparableEntries(previous?.sets[name], after);
    if (before.size === 0) await rm(root, { recursive: true, force: true });
    const now = new Map(after.entries.map((entry) => [entry.path, entry]));
    for (const old of before.values()) {
      if (now.get(old.path)?.type !== old.type) await rm(join(root, old.path), { recursive: true, force: true });
    }
    for (const entry of [...after.entries].sort(byPath)) {
      const old = before.get(entry.path);
      const location = join(root, entry.path);
      if (entry.type === 'dir') {
        if (old?.type !== 'dir') await mkdir(location, { mode: 0o700 });
      } else if (entry.type === 'symlink') {
        if (old?.type !== 'symlink' || old.linkTarget !== entry.linkTarget) {
          await rm(location, { force: true });
          await symlink(entry.linkTarget, location);
        }
      } else if (old?.type !== 'file' || old.sha256 !== entry.sha256) {
        const member = spooled.get(`${name}/${entry.path}`);
        if (member === undefined || member.sha256 !== entry.sha256 || member.size !== entry.size) {
          throw corrupt(
            member === undefined
              ? `File set "${name}": the archive lacks the content of "${entry.path}"`
              : `File set "${name}": the content of "${entry.path}" does not match its SHA-256 in the index`,
            { set: name, path: entry.path },
          );
        }
        if (after.kind === 'files') await mkdir(dirname(location), { recursive: true, mode: 0o700 });
        await rename(member.file, location);
      }
    }
  }
}

/**
 * Modes and mtimes, once the entries are in place (so staging never holds read-only folders and
 * no rename can touch a final mtime), children before their folder.
 */
async function applyMetadata(root: string, entries: readonly FileSetEntry[]): Promise<void> {
  for (const entry of [...entries].sort(byPath).reverse()) {
    const location = join(root, entry.path);
    const seconds = entry.mtimeMs / 1000;
    if (entry.type === 'symlink') {
      await lutimes(location, seconds, seconds);
    } else {
      await chmod(location, entry.mode & RESTORED_MODE_MASK);
      await utimes(location, seconds, seconds);
    }
  }
}

/**
 * Creates the folders of `relative` under `base` as needed, refusing to pass through anything
 * that is not a real folder (a symlink there could lead outside the target).
 */
async function ensureRealFolders(base: string, relative: string): Promise<void> {
  if (relative === '.') return;
  for (const folder of [...ancestorsOf(relative), relative]) {
    const location = join(base, folder);
    const stats = await lstatIfAny(location);
    if (stats === undefined) await mkdir(location);
    else if (!stats.isDirectory()) {
      throw new FileSetError(
        FileSetErrorCode.UnsafePath,
        `Restore target "${location}" is not a real folder (a symlink or a file); refusing to restore through it`,
        { context: { path: location } },
      );
    }
  }
}

async function lstatIfAny(location: string): Promise<Stats | undefined> {
  try {
    return await lstat(location);
  } catch (error) {
    if (isGone(error)) return undefined;
    throw error;
  }
}

/**
 * The renames that put the staged sets into place, whatever is there going under `asideDir`.
 * Every destination's folders are checked (and created) now, before any rename.
 */
async function planMoves(targetDir: string, tree: string, asideDir: string, sets: ReadonlyArray<{ name: string; set: SetIndex }>): Promise<SetMove[]> {
  const moves = sets.flatMap(({ name, set }) =>
    set.kind === 'folder'
      ? [{ staged: join(tree, name), relative: set.path }]
      : set.entries.map((entry) => ({ staged: join(tree, name, entry.path), relative: entry.path })),
  );
  for (const { relative } of moves) await ensureRealFolders(targetDir, parentOf(relative));
  return moves.map(({ staged, relative }) => ({ from: staged, to: join(targetDir, relative), aside: join(asideDir, relative) }));
}
