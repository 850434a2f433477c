import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk, sh } from './measure.js';

export const MiB = 2 ** 20;

/** Empties each folder (creating it when missing). */
export async function fresh(...folders: string[]): Promise<void> {
  for (const folder of folders) {
    await rm(folder, { recursive: true, force: true });
    await mkdir(folder, { recursive: true });
  }
}

/** The sizes of all files under a folder, added up (0 when it does not exist). */
export async function dirBytes(folder: string): Promise<number> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => []);
  let total = 0;
  for (const entry of entries) if (entry.isFile()) total += (await stat(join(entry.parentPath ?? entry.path, entry.name))).size;
  return total;
}

/** `12.3 MiB`, or KiB under one MiB. */
export function bytes(n: number): string {
  return n < MiB ? `${(n / 1024).toFixed(1)} KiB` : `${(n / MiB).toFixed(n < 100 * MiB ? 2 : 1)} MiB`;
}

/**
 * Drops the files under `folders` from the page cache (`dd iflag=nocache count=0`: posix_fadvise,
 * clean pages only), so that a restore timed next reads its backup from storage, as a restore does
 * days after the backup, whichever backup the steps before happened to leave in memory.
 */
export async function evictFromPageCache(cwd: string, ...folders: string[]): Promise<void> {
  const files: string[] = [];
  for (const folder of folders) {
    const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch(() => []); // a tool not installed left none
    for (const entry of entries) if (entry.isFile()) files.push(join(entry.parentPath ?? entry.path, entry.name));
  }
  if (files.length > 0) await runOk(sh('for f; do dd if="$f" iflag=nocache count=0 status=none || exit 1; done', ...files), cwd);
}
