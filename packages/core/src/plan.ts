import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { byRecency, listBackups, type CatalogEntry } from './catalog.js';
import { fetchArtifactBytes, resolveChain } from './chain.js';
import { applyPageHashDelta } from './page-hashes.js';
import type { Engine } from './engine.js';
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
  /** Every committed backup seen while planning, oldest first (for size-anomaly bands). */
  history: Manifest[];
}

/**
 * Decides what to take. An incremental's parent is the newest committed full or incremental; with
 * none, a chain at `maxChainLength`, or the parent's page hashes unreadable, a full is taken instead
 * and the plan says why. Everything comes from the destinations; the local cache only saves a download.
 */
export async function planBackup(engine: Engine, requested: BackupType): Promise<BackupPlan> {
  const all = await listBackups(engine);
  const seq = all.reduce((max, e) => Math.max(max, e.manifest.seq + 1), 0);
  const history = all.map((e) => e.manifest);
  if (requested !== 'incremental') return { type: requested, seq, chainLength: 0, history };
  const plan: BackupPlan = { type: 'full', seq, chainLength: 0, history };
  const tip = all.filter((e) => e.manifest.type !== 'hot').sort(byRecency).at(-1);
  if (!tip) return downgradeToFull(plan, 'there is no full backup yet', engine);
  if (tip.manifest.chainLength + 1 > engine.config.maxChainLength) {
    return downgradeToFull(plan, `the chain of ${tip.manifest.id} reached maxChainLength (${engine.config.maxChainLength})`, engine);
  }
  const pageHashes = await loadPageHashes(engine, tip);
  if (!pageHashes) return downgradeToFull(plan, `the page hashes of ${tip.manifest.id} cannot be read`, engine);
  return { type: 'incremental', seq, chainLength: tip.manifest.chainLength + 1, parent: { entry: tip, pageHashes }, history };
}

/** Turns the plan into a full backup, saying why. */
export function downgradeToFull(plan: BackupPlan, why: string, engine: Engine): BackupPlan {
  engine.warn(`taking a full backup instead of an incremental: ${why}`);
  plan.type = 'full';
  plan.chainLength = 0;
  delete plan.parent;
  plan.fullBecause = why;
  return plan;
}

const cacheDir = (engine: Engine) => join(engine.config.stateDir, 'cache');

/**
 * The parent's full page-hash list: from the local cache when it matches the manifest, else rebuilt
 * from the destinations — its full's list with each link's hash delta applied — and checked
 * against the SHA-256 its manifest pins.
 */
async function loadPageHashes(engine: Engine, entry: CatalogEntry): Promise<Buffer | undefined> {
  const expected = entry.manifest.source.pageHashesSha256;
  const cached = await readFile(join(cacheDir(engine), `${entry.manifest.id}.pagehash`)).catch(() => undefined);
  if (cached && sha256Hex(cached) === expected) return cached;
  try {
    const [full, ...links] = await resolveChain(engine, entry, engine.destinations);
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
