import { readdir, readFile, rm } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeadOwnersTemp, ownerToken, parseDestinationUrl } from '@stowage/storage';
import { removeDeadTemporaries } from '@stowage/storage-local';
import type { ResolvedConfig } from './config.js';
import { writePrivateAtomic } from './private-fs.js';
import { pendingRestorePaths, recoverInterruptedRestore, type JournalRun } from './restore-journal.js';

/** Names of the state folder's records of further folders holding a run's temps (`markTempFolders`), before the owner token. */
const MARK_PREFIX = 'temp-folders-';

/**
 * Run at the start of every command: finishes or rolls back a restore switch whose process died,
 * then removes the temp files and folders of dead processes (see `ownerGone` in @stowage/storage):
 * everything owner-named in the state folder (staging, scratch restores, lock and state temps),
 * hidden `.…stowage-…` temps beside the live database, in the file sets' base folder (restore
 * copies, spool folders) and in the folders dead runs recorded (`markTempFolders`), and
 * `.stowage-tmp-` files in local destinations. Says what it removed.
 */
export async function repairAfterCrash(engine: JournalRun): Promise<void> {
  await recoverInterruptedRestore(engine);
  const keep = new Set(await pendingRestorePaths(engine.config.stateDir));
  const removed: string[] = [];
  const sweep = async (folder: string, recursive: boolean, ours: (name: string) => boolean) => {
    const entries = await readdir(folder, { withFileTypes: true, recursive }).catch(() => []);
    for (const entry of entries) {
      const path = join(entry.parentPath, entry.name);
      if (!ours(entry.name) || !isDeadOwnersTemp(entry.name) || keep.has(path)) continue;
      await rm(path, { recursive: true, force: true }).then(
        () => removed.push(path),
        (error: unknown) => engine.warn(`cannot remove ${path}, left by a crashed run: ${(error as Error).message}`),
      );
    }
  };
  const hiddenTemp = (name: string) => name.startsWith('.') && name.includes('stowage-');
  const { stateDir, baseDir } = engine.config;
  // Read before the sweep of the state folder removes the dead runs' records.
  const marked = await markedFolders(stateDir);
  await sweep(stateDir, true, () => true);
  for (const folder of new Set([...sweptFolders(engine.config), ...marked])) await sweep(folder, false, hiddenTemp);
  for (const spec of engine.config.destinations) {
    const url = parseDestinationUrl(spec.url, baseDir);
    if (url.protocol === 'file:') removed.push(...(await removeDeadTemporaries(fileURLToPath(url))));
  }
  if (removed.length) engine.warn(`removed ${removed.length} leftover(s) of crashed runs: ${removed.map((path) => basename(path)).join(', ')}`);
}

/** The folders `repairAfterCrash` sweeps for hidden temps besides the state folder (swept whole). */
const sweptFolders = (config: Pick<ResolvedConfig, 'source' | 'baseDir'>) => [dirname(config.source.database), config.baseDir];

/**
 * Records in the state folder which of `folders` this run is about to leave hidden temps in that
 * `repairAfterCrash` would not sweep (a restore's `--target` in another folder: the rebuilt
 * database and file sets go beside it), so that if this process dies the next command removes
 * them there too. Returns what removes the record, for once the run has removed its temps itself.
 */
export async function markTempFolders(
  config: Pick<ResolvedConfig, 'source' | 'baseDir' | 'stateDir'>,
  folders: readonly string[],
): Promise<() => Promise<void>> {
  const swept = sweptFolders(config).map((folder) => resolve(folder));
  const inState = (folder: string) => {
    const path = relative(resolve(config.stateDir), folder);
    return !path.startsWith('..') && !isAbsolute(path);
  };
  const extra = [...new Set(folders.map((folder) => resolve(folder)))].filter((folder) => !swept.includes(folder) && !inState(folder));
  if (extra.length === 0) return async () => undefined;
  const record = join(config.stateDir, `${MARK_PREFIX}${ownerToken()}.json`);
  await writePrivateAtomic(record, JSON.stringify(extra));
  return () => rm(record, { force: true });
}

/** The folders that runs which died had recorded with `markTempFolders`. */
async function markedFolders(stateDir: string): Promise<string[]> {
  const names = (await readdir(stateDir).catch(() => [] as string[])).filter((name) => name.startsWith(MARK_PREFIX) && isDeadOwnersTemp(name));
  const lists = await Promise.all(
    names.map((name) =>
      readFile(join(stateDir, name), 'utf8')
        .then((text) => JSON.parse(text) as unknown)
        .catch(() => undefined),
    ),
  );
  // A record torn or edited by hand names nothing.
  return lists.flatMap((list) => (Array.isArray(list) ? list.filter((folder): folder is string => typeof folder === 'string') : []));
}
