import { isStowageError } from '@stowage/errors';
import { isObjectNotFound } from '@stowage/storage';
import type { Destination, Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { describeVanished, readHistory, vanishedBackups } from './history.js';
import { FOLDERS, idFromReference, manifestKey, MANIFEST_SUFFIX, stampOfId, typeOfId } from './layout.js';
import { BACKUP_TYPES, parseManifest, type Manifest } from './manifest.js';

/** A committed backup and the destinations that hold its manifest. */
export interface CatalogEntry {
  manifest: Manifest;
  destinations: string[];
  /**
   * Per destination, the storage class of each artifact its listing reports in an archive class
   * (one of the adapter's `archiveClasses`; readable only after a thaw), e.g. `{ "s3": { "full/full_backup_….sqlite3.zst": "DEEP_ARCHIVE" } }`).
   */
  storageClasses?: Record<string, Record<string, string>>;
}

/** A small object's bytes (manifests, page-hash lists). */
export async function readObjectBytes(destination: Destination, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await destination.adapter.get(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The manifest of `id` at one destination, or undefined when it is not committed there. */
export async function readManifest(destination: Destination, id: string): Promise<Manifest | undefined> {
  const type = typeOfId(id);
  if (!type) return undefined;
  const key = manifestKey(type, id);
  try {
    const manifest = parseManifest((await readObjectBytes(destination, key)).toString('utf8'), `${destination.name}:${key}`);
    if (manifest.id !== id) {
      throw new CoreError(CoreErrorCode.NotABackup, `${destination.name}:${key} is damaged: it holds the manifest of ${manifest.id}`, { context: { destination: destination.name, key } });
    }
    return manifest;
  } catch (error) {
    if (isObjectNotFound(error)) return undefined;
    throw error;
  }
}

/** A manifest file that exists but cannot be read or is not a valid manifest of its backup: damage, never an absence. */
export interface DamagedManifest {
  id: string;
  destination: string;
  key: string;
  problem: string;
  /** The stable code of the error that made it unreadable, when it had one (e.g. `stowage.storage.object_archived`). */
  code?: string;
}

/** What the destinations hold: committed backups, damaged manifests, and destinations that could not be listed. */
export interface Catalog {
  /** Oldest first. */
  entries: CatalogEntry[];
  damaged: DamagedManifest[];
  unlisted: Array<{ destination: string; message: string }>;
}

/**
 * Reads every manifest at the given destinations. A destination that cannot be listed is recorded
 * in `unlisted` (one region down does not hide the rest); a manifest that cannot be read or parsed
 * is recorded in `damaged`, so that no caller mistakes it for a backup that was never committed.
 */
export async function readCatalog(engine: Engine, destinations: readonly Destination[] = engine.destinations): Promise<Catalog> {
  const byId = new Map<string, CatalogEntry>();
  const catalog: Catalog = { entries: [], damaged: [], unlisted: [] };
  await Promise.all(
    destinations.map(async (destination) => {
      const classes = new Map<string, string>();
      try {
        for (const type of BACKUP_TYPES) {
          for await (const info of destination.adapter.list(`${FOLDERS[type]}/`)) {
            if (info.storageClass !== undefined && destination.adapter.capabilities.archiveClasses?.includes(info.storageClass)) classes.set(info.key, info.storageClass);
            if (!info.key.endsWith(MANIFEST_SUFFIX)) continue;
            const id = info.key.slice(info.key.lastIndexOf('/') + 1, -MANIFEST_SUFFIX.length);
            if (typeOfId(id) !== type) continue;
            const manifest = await readManifest(destination, id).catch((error: unknown) => {
              catalog.damaged.push({ id, destination: destination.name, key: info.key, problem: (error as Error).message, ...(isStowageError(error) ? { code: error.code } : {}) });
              return undefined;
            });
            if (!manifest) continue;
            const entry = byId.get(id) ?? { manifest, destinations: [] };
            entry.destinations.push(destination.name);
            byId.set(id, entry);
          }
        }
        noteStorageClasses(byId.values(), destination.name, classes);
      } catch (error) {
        catalog.unlisted.push({ destination: destination.name, message: (error as Error).message });
      }
    }),
  );
  const order = new Map(destinations.map((d, i) => [d.name, i]));
  for (const entry of byId.values()) entry.destinations.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0));
  catalog.entries = [...byId.values()].sort(byRecency);
  catalog.damaged.sort((a, b) => a.id.localeCompare(b.id) || (order.get(a.destination) ?? 0) - (order.get(b.destination) ?? 0));
  return catalog;
}

/** Records, on the entries whose artifacts are listed in `classes` (key → class), each artifact's class at `destination`. */
function noteStorageClasses(entries: Iterable<CatalogEntry>, destination: string, classes: ReadonlyMap<string, string>): void {
  if (classes.size === 0) return;
  for (const entry of entries) {
    if (!entry.destinations.includes(destination)) continue;
    const here = Object.fromEntries(entry.manifest.artifacts.flatMap((a) => (classes.has(a.key) ? [[a.key, classes.get(a.key)!]] : [])));
    if (Object.keys(here).length > 0) entry.storageClasses = { ...entry.storageClasses, [destination]: here };
  }
}

/**
 * Every committed backup at the given destinations, oldest first. Unlisted destinations and
 * damaged manifests are reported through `engine.warn` (`verify` reports them as damage, `sync`
 * repairs them).
 */
export async function listBackups(engine: Engine, destinations: readonly Destination[] = engine.destinations): Promise<CatalogEntry[]> {
  return (await readReportedCatalog(engine, destinations)).entries;
}

/** `readCatalog`, with unlisted destinations and damaged manifests also reported through `engine.warn`. */
export async function readReportedCatalog(engine: Engine, destinations: readonly Destination[]): Promise<Catalog> {
  const catalog = await readCatalog(engine, destinations);
  for (const { destination, message } of catalog.unlisted) engine.warn(`destination ${destination} could not be listed: ${message}`);
  for (const damaged of catalog.damaged) engine.warn(`damaged manifest, backup ${damaged.id} left out: ${damaged.problem}; \`stowage sync\` repairs it from a good copy`);
  return catalog;
}

/** Oldest first: by sequence number (clock-independent), then time, then id. */
export function byRecency(a: CatalogEntry, b: CatalogEntry): number {
  return a.manifest.seq - b.manifest.seq || a.manifest.createdAt.localeCompare(b.manifest.createdAt) || a.manifest.id.localeCompare(b.manifest.id);
}

/**
 * Finds a committed backup by reference: `latest`, an id, or a backup file name or path
 * (`backups/full/full_backup_20240101_020000.sqlite3`).
 */
export async function findBackup(engine: Engine, reference: string, destinations: readonly Destination[] = engine.destinations): Promise<CatalogEntry> {
  if (reference === 'latest') {
    const catalog = await readReportedCatalog(engine, destinations);
    const newest = catalog.entries.at(-1);
    // A newer backup gone from every destination searched is said, not silently skipped.
    for (const vanished of vanishedBackups(await readHistory(engine), catalog, destinations.map((d) => d.name))) {
      if (!newest || stampOfId(vanished.id) > stampOfId(newest.manifest.id)) engine.warn(`${describeVanished(vanished)}; \`stowage verify --all\` reports it`);
    }
    if (!newest) {
      throw new CoreError(CoreErrorCode.BackupNotFound, `there are no backups yet at ${destinations.map((d) => d.name).join(', ')}; take one with \`stowage backup --type full\``);
    }
    return newest;
  }
  const id = idFromReference(reference);
  if (!id) {
    throw new CoreError(CoreErrorCode.NotABackup, `'${reference}' is not a Stowage backup name (expected e.g. full_backup_20240101_020000); see \`stowage list\``, {
      context: { reference },
    });
  }
  let entry: CatalogEntry | undefined;
  const errors: unknown[] = [];
  for (const destination of destinations) {
    const manifest = await readManifest(destination, id).catch((error: unknown) => {
      errors.push(error);
      engine.warn(`destination ${destination.name}: ${(error as Error).message}`);
      return undefined;
    });
    if (!manifest) continue;
    entry ??= { manifest, destinations: [] };
    entry.destinations.push(destination.name);
  }
  if (!entry && errors.length) throw errors[0];
  if (!entry) {
    throw new CoreError(CoreErrorCode.BackupNotFound, `backup ${id} not found at ${destinations.map((d) => d.name).join(', ')}; see \`stowage list\``, { context: { id } });
  }
  return entry;
}

/** The newest backup taken at or before `time` (by its creation time). */
export async function findBackupAt(engine: Engine, time: Date, destinations: readonly Destination[] = engine.destinations): Promise<CatalogEntry> {
  const candidates = (await listBackups(engine, destinations)).filter((e) => Date.parse(e.manifest.createdAt) <= time.getTime());
  const newest = candidates.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt) || byRecency(a, b)).at(-1);
  if (!newest) {
    throw new CoreError(CoreErrorCode.BackupNotFound, `no backup was taken at or before ${time.toISOString()}; see \`stowage list\``, { context: { at: time.toISOString() } });
  }
  return newest;
}
