import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { byRecency, catalogOf, type CatalogEntry, type ManifestCatalog } from './catalog.js';
import { fetchArtifactBytes, resolveChain, type ArtifactReader } from './chain.js';
import { applyPageHashDelta, PAGE_HASH_ALGORITHM } from './page-hashes.js';
import type { StateFolder } from './config.js';
import type { Destination, DestinationFailure, Engine } from './engine.js';
import { CoreErrorCode } from './errors.js';
import { confirmStored } from './replica.js';
import { copyReplica } from './sync.js';
import { chainIn, chainKeyProblem } from './key-match.js';
import { artifactOf, type Artifact, type BackupType, type Manifest } from './manifest.js';
import { parseFileSetIndex, type FileSetIndex } from '@stowage/filesets';
import { isDeadOwnersTemp, ownerOf, sha256Hex } from '@stowage/storage';
import { ensurePrivateDir, writePrivateAtomic } from './private-fs.js';

/** What a backup run will take: its type, its parent (incrementals) and its place in the order. */
export interface BackupPlan {
  type: BackupType;
  seq: number;
  chainLength: number;
  parent?: { entry: CatalogEntry; pageHashes: Buffer };
  /** Set when an incremental was asked for but a full is taken. */
  fullBecause?: string;
  /**
   * Destinations where the parent's chain is incomplete and could not be completed: the
   * incremental is not stored there (it would not be restorable from there alone).
   */
  chainIncompleteAt: DestinationFailure[];
  /** Every committed backup seen while planning, oldest first (for size-anomaly bands). */
  history: Manifest[];
}

/**
 * Decides what to take. An incremental's parent is the newest committed full or incremental; with
 * none, a chain at `maxChainLength`, a parent whose page hashes are of another algorithm, a link the current key did not encrypt (`chainKeyProblem`),
 * or a parent that `assessParent` finds unusable, a full is taken instead and the plan says why. A destination missing links of a usable chain receives them
 * first from one that has them (as `sync` copies). Everything comes from the destinations; the
 * local cache only saves a download.
 */
export async function planBackup(
  run: Pick<Engine, 'config' | 'destinations' | 'stagingDir' | 'codec' | 'progress' | 'warn'>,
  requested: BackupType,
): Promise<BackupPlan> {
  const catalog = catalogOf(run);
  const all = await catalog.list();
  const seq = all.reduce((max, e) => Math.max(max, e.manifest.seq + 1), 0);
  const history = all.map((e) => e.manifest);
  const plan: BackupPlan = { type: requested, seq, chainLength: 0, chainIncompleteAt: [], history };
  if (requested !== 'incremental') return plan;
  const tip = all
    .filter((e) => e.manifest.type !== 'hot')
    .sort(byRecency)
    .at(-1);
  if (!tip) return downgradeToFull(plan, 'there is no full backup yet', run.warn);
  if (tip.manifest.chainLength + 1 > run.config.maxChainLength) {
    return downgradeToFull(plan, `the chain of ${tip.manifest.id} reached maxChainLength (${run.config.maxChainLength})`, run.warn);
  }
  const algorithm = tip.manifest.source.pageHashAlgorithm;
  if (algorithm !== PAGE_HASH_ALGORITHM) {
    return downgradeToFull(plan, `the page hashes of ${tip.manifest.id} are ${algorithm}, this version compares ${PAGE_HASH_ALGORITHM}`, run.warn);
  }
  const keyMismatch = await chainKeyProblem(run, chainIn(new Map(all.map((e) => [e.manifest.id, e])), tip));
  if (keyMismatch) return downgradeToFull(plan, keyMismatch, run.warn);
  const parent = await assessParent(catalog, tip, run.destinations);
  if (!parent.usable) return downgradeToFull(plan, parent.why, run.warn);
  const pageHashes = await loadPageHashes(run, catalog, tip);
  if (!pageHashes) return downgradeToFull(plan, `the page hashes of ${tip.manifest.id} cannot be read`, run.warn);
  const chainIncompleteAt = await completeChainEverywhere(run, parent.links);
  if (chainIncompleteAt.length === run.destinations.length) {
    return downgradeToFull(
      plan,
      `the chain of ${tip.manifest.id} is complete at no destination (${chainIncompleteAt.map((f) => `${f.destination}: ${f.message}`).join('; ')})`,
      run.warn,
    );
  }
  return { ...plan, type: 'incremental', chainLength: tip.manifest.chainLength + 1, parent: { entry: tip, pageHashes }, chainIncompleteAt };
}

/** Turns the plan into a full backup, saying why through `warn`. */
export function downgradeToFull(plan: BackupPlan, why: string, warn: (message: string) => void): BackupPlan {
  warn(`taking a full backup instead of an incremental: ${why}`);
  plan.type = 'full';
  plan.chainLength = 0;
  delete plan.parent;
  plan.chainIncompleteAt = [];
  plan.fullBecause = why;
  return plan;
}

/** One link of a parent's chain and, per destination, whether it is intact there. */
export interface ChainLink {
  entry: CatalogEntry;
  /** Destinations holding the link's manifest and every artifact intact. */
  intactAt: Destination[];
  /** Why the link is missing or damaged, by destination name. */
  problems: Map<string, string>;
}

/**
 * The one place that decides whether `tip` may be the parent of an incremental: its whole chain,
 * full first, must be restorable — every link's manifest readable and every artifact (database
 * image or delta, page-hash list, file-set archive and index) intact at some destination, checked
 * at each destination by size and the checksum the destination reports (`stat`, no download),
 * or where it reports none by reading back artifacts up to `READ_BACK_LIMIT` and by size above.
 * Returns why not, or each link with the destinations (of `destinations`) it is intact at.
 */
export async function assessParent(
  catalog: ManifestCatalog,
  tip: CatalogEntry,
  destinations: readonly Destination[],
): Promise<{ usable: false; why: string } | { usable: true; links: ChainLink[] }> {
  let chain: CatalogEntry[];
  try {
    chain = await resolveChain(catalog, tip, destinations);
  } catch (error) {
    return { usable: false, why: `the chain of ${tip.manifest.id} cannot be read: ${(error as Error).message}` };
  }
  const links = await Promise.all(
    chain.map(async (entry): Promise<ChainLink> => {
      const found = await Promise.all(
        destinations.map((destination) =>
          entry.destinations.includes(destination.name) ? firstDamage(destination, entry.manifest.artifacts) : `${entry.manifest.id} is not committed there`,
        ),
      );
      const problems = new Map(destinations.flatMap((d, i) => (found[i] === undefined ? [] : [[d.name, found[i]] as const])));
      return { entry, intactAt: destinations.filter((d) => !problems.has(d.name)), problems };
    }),
  );
  const lost = links.find((link) => link.intactAt.length === 0);
  if (lost) {
    const where = [...lost.problems].map(([destination, problem]) => `${destination}: ${problem}`).join('; ');
    return { usable: false, why: `${lost.entry.manifest.id} in the chain of ${tip.manifest.id} has no intact copy at any destination (${where})` };
  }
  return { usable: true, links };
}

/** Artifacts up to this size are read back where the destination reports no checksum; larger ones are checked by size. */
export const READ_BACK_LIMIT = 16 << 20;

/** The first artifact missing or damaged at `destination`, described; undefined when all are intact. */
async function firstDamage(destination: Destination, artifacts: readonly Artifact[]): Promise<string | undefined> {
  const reported = destination.adapter.capabilities.serverChecksums;
  for (const artifact of artifacts) {
    try {
      if (reported.includes('sha256') || (artifact.crc64ecma && reported.includes('crc64ecma')) || artifact.size <= READ_BACK_LIMIT) {
        await confirmStored(destination, artifact, { deep: false });
        continue;
      }
      const info = await destination.adapter.stat(artifact.key);
      if (!info) return `${artifact.key} is missing`;
      if (info.size !== artifact.size) return `${artifact.key} has ${info.size} bytes, ${artifact.size} expected`;
    } catch (error) {
      return (error as Error).message;
    }
  }
  return undefined;
}

/**
 * Copies the links each destination lacks (or holds damaged) from one where they are intact,
 * oldest first, as `sync` does, so the incremental can be committed everywhere. Returns the
 * destinations where that failed: the incremental is not stored there.
 */
async function completeChainEverywhere(
  run: ArtifactReader & Pick<Engine, 'destinations' | 'stagingDir'>,
  links: readonly ChainLink[],
): Promise<DestinationFailure[]> {
  const incomplete: DestinationFailure[] = [];
  await Promise.all(
    run.destinations.map(async (destination) => {
      for (const link of links) {
        const problem = link.problems.get(destination.name);
        if (problem === undefined) continue;
        try {
          const from = await copyReplica(run, link.entry, link.intactAt, destination);
          run.warn(`copied ${link.entry.manifest.id} to ${destination.name} from ${from} (${problem}) to complete the chain there`);
        } catch (error) {
          const message = `the chain is incomplete there: ${problem}; copying ${link.entry.manifest.id} there failed: ${(error as Error).message}`;
          incomplete.push({ destination: destination.name, code: CoreErrorCode.ChainBroken, message });
          return;
        }
      }
    }),
  );
  return incomplete;
}

const cacheDir = (state: StateFolder) => join(state.config.stateDir, 'cache');

/**
 * The parent's full page-hash list: from the local cache when it matches the manifest, else rebuilt
 * from the destinations — its full's list with each link's hash delta applied — and checked
 * against the SHA-256 its manifest pins.
 */
async function loadPageHashes(
  run: ArtifactReader & StateFolder & Pick<Engine, 'destinations'>,
  catalog: ManifestCatalog,
  entry: CatalogEntry,
): Promise<Buffer | undefined> {
  const expected = entry.manifest.source.pageHashesSha256;
  const cached = await readFile(join(cacheDir(run), `${entry.manifest.id}.pagehash`)).catch(() => undefined);
  if (cached && sha256Hex(cached) === expected) return cached;
  try {
    const [full, ...links] = await resolveChain(catalog, entry, run.destinations);
    let list = await readSmallArtifact(run, full!, artifactOf(full!.manifest, 'page-hashes'), run.destinations);
    for (const link of links) {
      const delta = list && (await readSmallArtifact(run, link, artifactOf(link.manifest, 'page-hashes'), run.destinations));
      list = list && delta && applyPageHashDelta(list, delta);
    }
    if (list && sha256Hex(list) === expected) return list;
    if (list) run.warn(`the page hashes rebuilt for ${entry.manifest.id} do not match its manifest`);
  } catch (error) {
    run.warn(`cannot rebuild the page hashes of ${entry.manifest.id}: ${(error as Error).message}`);
  }
  return undefined;
}

/**
 * The file-set index of a backup, for the next incremental to diff against; undefined when the
 * backup has no file sets or its index cannot be read (the incremental then archives everything).
 */
export async function loadFileSetIndex(
  run: ArtifactReader & StateFolder & Pick<Engine, 'destinations'>,
  entry: CatalogEntry,
): Promise<FileSetIndex | undefined> {
  const artifact = entry.manifest.artifacts.find((a) => a.role === 'files-index');
  if (!artifact) return undefined;
  const cached = await readFile(join(cacheDir(run), `${entry.manifest.id}.files-index.json`)).catch(() => undefined);
  const bytes = cached && sha256Hex(cached) === artifact.decodedSha256 ? cached : await readSmallArtifact(run, entry, artifact, run.destinations);
  return bytes && parseFileSetIndex(bytes);
}

/** A small artifact's decoded bytes, or undefined (with a warning) when none of `destinations` yields them. */
async function readSmallArtifact(
  reader: ArtifactReader,
  entry: CatalogEntry,
  artifact: Artifact,
  destinations: readonly Destination[],
): Promise<Buffer | undefined> {
  try {
    return await fetchArtifactBytes(reader, entry, artifact, destinations);
  } catch (error) {
    reader.warn(`cannot read ${artifact.key}: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * Keeps the newest backup's page hashes and file-set index locally, so the next incremental need
 * not download (or, on a host holding only a public key, decrypt) them. Not fsynced: a cached file
 * is used only when its SHA-256 is the one the manifest pins (else it is rebuilt from the destinations).
 */
export async function cacheForNextBackup(state: StateFolder, id: string, pageHashes: Buffer, fileSetIndex: Buffer | undefined): Promise<void> {
  const dir = cacheDir(state);
  await ensurePrivateDir(dir);
  for (const name of await readdir(dir)) {
    // A temp file whose owner runs is another backup's cache write under way (in-process races included).
    if (ownerOf(name) === undefined || isDeadOwnersTemp(name)) await rm(join(dir, name), { force: true });
  }
  await writePrivateAtomic(join(dir, `${id}.pagehash`), pageHashes, { durable: false });
  if (fileSetIndex) await writePrivateAtomic(join(dir, `${id}.files-index.json`), fileSetIndex, { durable: false });
}
