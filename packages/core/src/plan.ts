import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { byRecency, catalogOf, type CatalogEntry, type ManifestCatalog } from './catalog.js';
import { fetchArtifactBytes, resolveChain } from './chain.js';
import { applyPageHashDelta, PAGE_HASH_ALGORITHM } from './page-hashes.js';
import type { Destination, DestinationFailure, Engine } from './engine.js';
import { CoreErrorCode } from './errors.js';
import { confirmStored } from './replica.js';
import { copyReplica } from './sync.js';
import { chainIn, chainKeyProblem } from './key-match.js';
import { artifactOf, type Artifact, type BackupType, type Manifest } from './manifest.js';
import { parseFileSetIndex, type FileSetIndex } from '@stowage/filesets';
import { sha256Hex } from '@stowage/storage';
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
export async function planBackup(engine: Engine, requested: BackupType): Promise<BackupPlan> {
  const catalog = catalogOf(engine);
  const all = await catalog.list();
  const seq = all.reduce((max, e) => Math.max(max, e.manifest.seq + 1), 0);
  const history = all.map((e) => e.manifest);
  const plan: BackupPlan = { type: requested, seq, chainLength: 0, chainIncompleteAt: [], history };
  if (requested !== 'incremental') return plan;
  const tip = all
    .filter((e) => e.manifest.type !== 'hot')
    .sort(byRecency)
    .at(-1);
  if (!tip) return downgradeToFull(plan, 'there is no full backup yet', engine);
  if (tip.manifest.chainLength + 1 > engine.config.maxChainLength) {
    return downgradeToFull(plan, `the chain of ${tip.manifest.id} reached maxChainLength (${engine.config.maxChainLength})`, engine);
  }
  const algorithm = tip.manifest.source.pageHashAlgorithm;
  if (algorithm !== PAGE_HASH_ALGORITHM) {
    return downgradeToFull(plan, `the page hashes of ${tip.manifest.id} are ${algorithm}, this version compares ${PAGE_HASH_ALGORITHM}`, engine);
  }
  const keyMismatch = await chainKeyProblem(engine, chainIn(new Map(all.map((e) => [e.manifest.id, e])), tip));
  if (keyMismatch) return downgradeToFull(plan, keyMismatch, engine);
  const parent = await assessParent(engine, catalog, tip);
  if (!parent.usable) return downgradeToFull(plan, parent.why, engine);
  const pageHashes = await loadPageHashes(engine, catalog, tip);
  if (!pageHashes) return downgradeToFull(plan, `the page hashes of ${tip.manifest.id} cannot be read`, engine);
  const chainIncompleteAt = await completeChainEverywhere(engine, parent.links);
  if (chainIncompleteAt.length === engine.destinations.length) {
    return downgradeToFull(
      plan,
      `the chain of ${tip.manifest.id} is complete at no destination (${chainIncompleteAt.map((f) => `${f.destination}: ${f.message}`).join('; ')})`,
      engine,
    );
  }
  return { ...plan, type: 'incremental', chainLength: tip.manifest.chainLength + 1, parent: { entry: tip, pageHashes }, chainIncompleteAt };
}

/** Turns the plan into a full backup, saying why. */
export function downgradeToFull(plan: BackupPlan, why: string, engine: Engine): BackupPlan {
  engine.warn(`taking a full backup instead of an incremental: ${why}`);
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
 * Returns why not, or each link with the destinations it is intact at.
 */
export async function assessParent(
  engine: Engine,
  catalog: ManifestCatalog,
  tip: CatalogEntry,
): Promise<{ usable: false; why: string } | { usable: true; links: ChainLink[] }> {
  let chain: CatalogEntry[];
  try {
    chain = await resolveChain(catalog, tip, engine.destinations);
  } catch (error) {
    return { usable: false, why: `the chain of ${tip.manifest.id} cannot be read: ${(error as Error).message}` };
  }
  const links = await Promise.all(
    chain.map(async (entry): Promise<ChainLink> => {
      const found = await Promise.all(
        engine.destinations.map((destination) =>
          entry.destinations.includes(destination.name) ? firstDamage(destination, entry.manifest.artifacts) : `${entry.manifest.id} is not committed there`,
        ),
      );
      const problems = new Map(engine.destinations.flatMap((d, i) => (found[i] === undefined ? [] : [[d.name, found[i]] as const])));
      return { entry, intactAt: engine.destinations.filter((d) => !problems.has(d.name)), problems };
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
async function completeChainEverywhere(engine: Engine, links: readonly ChainLink[]): Promise<DestinationFailure[]> {
  const incomplete: DestinationFailure[] = [];
  await Promise.all(
    engine.destinations.map(async (destination) => {
      for (const link of links) {
        const problem = link.problems.get(destination.name);
        if (problem === undefined) continue;
        try {
          const from = await copyReplica(engine, link.entry, link.intactAt, destination);
          engine.warn(`copied ${link.entry.manifest.id} to ${destination.name} from ${from} (${problem}) to complete the chain there`);
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

const cacheDir = (engine: Engine) => join(engine.config.stateDir, 'cache');

/**
 * The parent's full page-hash list: from the local cache when it matches the manifest, else rebuilt
 * from the destinations — its full's list with each link's hash delta applied — and checked
 * against the SHA-256 its manifest pins.
 */
async function loadPageHashes(engine: Engine, catalog: ManifestCatalog, entry: CatalogEntry): Promise<Buffer | undefined> {
  const expected = entry.manifest.source.pageHashesSha256;
  const cached = await readFile(join(cacheDir(engine), `${entry.manifest.id}.pagehash`)).catch(() => undefined);
  if (cached && sha256Hex(cached) === expected) return cached;
  try {
    const [full, ...links] = await resolveChain(catalog, entry, engine.destinations);
    let list = await readSmallArtifact(engine, full!, artifactOf(full!.manifest, 'page-hashes'));
    for (const link of links) {
      const delta = list && (await readSmallArtifact(engine, link, artifactOf(link.manifest, 'page-hashes')));
      list = list && delta && applyPageHashDelta(list, delta);
    }
    if (list && sha256Hex(list) === expected) return list;
    if (list) engine.warn(`the page hashes rebuilt for ${entry.manifest.id} do not match its manifest`);
  } catch (error) {
    engine.warn(`cannot rebuild the page hashes of ${entry.manifest.id}: ${(error as Error).message}`);
  }
  return undefined;
}

/**
 * The file-set index of a backup, for the next incremental to diff against; undefined when the
 * backup has no file sets or its index cannot be read (the incremental then archives everything).
 */
export async function loadFileSetIndex(engine: Engine, entry: CatalogEntry): Promise<FileSetIndex | undefined> {
  const artifact = entry.manifest.artifacts.find((a) => a.role === 'files-index');
  if (!artifact) return undefined;
  const cached = await readFile(join(cacheDir(engine), `${entry.manifest.id}.files-index.json`)).catch(() => undefined);
  const bytes = cached && sha256Hex(cached) === artifact.decodedSha256 ? cached : await readSmallArtifact(engine, entry, artifact);
  return bytes && parseFileSetIndex(bytes);
}

/** A small artifact's decoded bytes, or undefined (with a warning) when no destination yields them. */
async function readSmallArtifact(engine: Engine, entry: CatalogEntry, artifact: Artifact): Promise<Buffer | undefined> {
  try {
    return await fetchArtifactBytes(engine, entry, artifact, engine.destinations);
  } catch (error) {
    engine.warn(`cannot read ${artifact.key}: ${(error as Error).message}`);
    return undefined;
  }
}

/**
 * Keeps the newest backup's page hashes and file-set index locally, so the next incremental need
 * not download (or, on a host holding only a public key, decrypt) them.
 */
export async function cacheForNextBackup(engine: Engine, id: string, pageHashes: Buffer, fileSetIndex: Buffer | undefined): Promise<void> {
  const dir = cacheDir(engine);
  await ensurePrivateDir(dir);
  for (const name of await readdir(dir)) await rm(join(dir, name), { force: true });
  await writePrivateAtomic(join(dir, `${id}.pagehash`), pageHashes);
  if (fileSetIndex) await writePrivateAtomic(join(dir, `${id}.files-index.json`), fileSetIndex);
}
