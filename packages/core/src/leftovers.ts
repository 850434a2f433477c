import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeadOwnersTemp, parseDestinationUrl } from '@stowage/storage';
import { removeDeadTemporaries } from '@stowage/storage-local';
import { pendingRestorePaths, recoverInterruptedRestore, type JournalRun } from './restore-journal.js';

/**
 * Run at the start of every command: finishes or rolls back a restore switch whose process died,
 * then removes the temp files and folders of dead processes (see `ownerGone` in @stowage/storage):
 * everything owner-named in the state folder (staging, scratch restores, lock and state temps),
 * hidden `.…stowage-…` temps beside the live database and in the file sets' base folder (restore
 * copies, spool folders), and `.stowage-tmp-` files in local destinations. Says what it removed.
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
  const { stateDir, baseDir, source } = engine.config;
  await sweep(stateDir, true, () => true);
  for (const folder of new Set([dirname(source.database), baseDir])) await sweep(folder, false, hiddenTemp);
  for (const spec of engine.config.destinations) {
    const url = parseDestinationUrl(spec.url, baseDir);
    if (url.protocol === 'file:') removed.push(...(await removeDeadTemporaries(fileURLToPath(url))));
  }
  if (removed.length) engine.warn(`removed ${removed.length} leftover(s) of crashed runs: ${removed.map((path) => basename(path)).join(', ')}`);
}
