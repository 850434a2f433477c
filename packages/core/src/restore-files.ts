import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { restoreFileSets, stageFileSets, type RestoreFilesOptions, type RestoreFilesResult, type StagedFileSets } from '@stowage/filesets';
import { ownerToken } from '@stowage/storage';
import type { CatalogEntry } from './catalog.js';
import { fetchArtifact, type ArtifactReader } from './chain.js';
import type { Destination, Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { artifactOf } from './manifest.js';
import { ensurePrivateDir } from './private-fs.js';

/**
 * Restores the file sets of the last backup of `chain` into `targetDir`: the links whose archives
 * are needed (back to the last one archived whole), each fetched and checked against its SHA-256,
 * then replayed in order so the tree is exactly that point's. `only` names the sets to restore.
 */
export async function restoreFilesOfChain(
  engine: ArtifactReader & Pick<Engine, 'stagingDir'>,
  chain: readonly CatalogEntry[],
  destinations: readonly Destination[],
  targetDir: string,
  only: readonly string[] | undefined,
): Promise<RestoreFilesResult> {
  return withFileArchives(engine, chain, destinations, only, (archives) =>
    restoreFileSets({ archives, targetDir, workDir: join(targetDir, `.stowage-restore-${ownerToken()}`), ...(only ? { only } : {}) }),
  );
}

/**
 * Like `restoreFilesOfChain`, but stops before the renames (see `stageFileSets`): the sets are
 * rebuilt in `workDir`, and what they replace is to go under `asideDir`.
 */
export async function stageFilesOfChain(
  engine: ArtifactReader & Pick<Engine, 'stagingDir'>,
  chain: readonly CatalogEntry[],
  destinations: readonly Destination[],
  where: { targetDir: string; workDir: string; asideDir: string },
  only: readonly string[] | undefined,
): Promise<StagedFileSets> {
  return withFileArchives(engine, chain, destinations, only, (archives) =>
    stageFileSets({ archives, targetDir: where.targetDir, workDir: where.workDir, ...(only ? { only } : {}) }, where.asideDir),
  );
}

/** Fetches the archives the file sets of `chain` need into the staging folder, runs `use` on them, removes them. */
async function withFileArchives<T>(
  engine: ArtifactReader & Pick<Engine, 'stagingDir'>,
  chain: readonly CatalogEntry[],
  destinations: readonly Destination[],
  only: readonly string[] | undefined,
  use: (archives: RestoreFilesOptions['archives']) => Promise<T>,
): Promise<T> {
  const links: CatalogEntry[] = [];
  for (const link of [...chain].reverse()) {
    if (!link.manifest.files) break;
    links.unshift(link);
    if (!link.manifest.files.incremental) break;
  }
  const first = links[0]?.manifest.files;
  if (!first || first.incremental) {
    throw new CoreError(
      CoreErrorCode.ChainBroken,
      `the file sets of ${chain.at(-1)?.manifest.id} cannot be rebuilt: no archive of them in full is in its chain`,
    );
  }
  const known = Object.keys(links.at(-1)!.manifest.files!.sets);
  const unknown = (only ?? []).filter((name) => !known.includes(name));
  if (unknown.length) {
    throw new CoreError(
      CoreErrorCode.RestoreTargetMissing,
      `no file set named ${unknown.join(', ')} in ${chain.at(-1)?.manifest.id}; it has: database, ${known.join(', ')}`,
    );
  }
  await ensurePrivateDir(engine.stagingDir);
  const paths: string[] = [];
  try {
    for (const link of links) {
      const path = join(engine.stagingDir, `files-${ownerToken()}.tar`);
      paths.push(path);
      await fetchArtifact(engine, link, artifactOf(link.manifest, 'files'), path, destinations);
    }
    return await use(paths.map((path) => async () => createReadStream(path)));
  } finally {
    await Promise.all(paths.map((path) => rm(path, { force: true })));
  }
}
