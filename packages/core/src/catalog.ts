import { isStowageError } from '@stowage/errors';
import { isObjectNotFound } from '@stowage/storage';
import type { Destination } from './destination.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { compareIds, FOLDERS, idFromReference, manifestKey, MANIFEST_SUFFIX, typeOfId } from './layout.js';
import { BACKUP_TYPES, parseManifest, type Manifest } from './manifest.js';
/** A committed backup and the destinations that hold its manifest. */
export interface CatalogEntry {
  manifest: Manifest;
  destinations: string[];
  /**
   * Per destination, the storage class of each artifact its listing reports in an archive class
   * (one of the adapter's `archiveClasses`; readable only after a thaw), e.g.
   * `{ "s3": { "full/full_backup_….sqlite3.zst": "DEEP_ARCHIVE" } }`. Only catalogs read from listings have it.
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
      throw new CoreError(CoreErrorCode.NotABackup, `${destination.name}:${key} is damaged: it holds the manifest of ${manifest.id}`, {
        context: { destination: destination.name, key },
      });
    }
    return manifest;
  } catch (error) {
    if (isObjectNotFound(error)) return undefined;
    throw error;
  }
}

/** A manifest file that exists but cannot be read or is not a valid manifest of its backup: damage, never an absence. */
/** Manifest GETs one destination's listing keeps in flight. */
const MANIFEST_READS_IN_FLIGHT = 16;

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

/** What one destination's listing found: its readable manifests and its damaged ones. */
interface Listing {
  manifests: Map<string, Manifest>;
  damaged: DamagedManifest[];
  /** Key → archive class, for the objects listed in one. */
  classes: Map<string, string>;
}

/**
 * The manifests at a run's destinations, each listed and read at most once: a command makes one
 * (`catalogOf`) and passes it to everything that lists, finds or chains backups, instead of each
 * reading them again. It is a snapshot: a backup committed or removed after a destination was
 * listed is not seen through it, so a command that changes the destinations makes a new one.
 */
export class ManifestCatalog {
  readonly #listings = new Map<string, Promise<Listing>>();
  readonly #manifests = new Map<string, Promise<Manifest | undefined>>();
  readonly #warned = new Set<string>();

  readonly #onWarning: (message: string) => void;

  /**
   * @param destinations the run's destinations, in the order of preference (the default of every method).
   * @param onWarning where warnings go (unlisted destinations, damaged manifests, unreadable lookups), each said once.
   */
  constructor(
    readonly destinations: readonly Destination[],
    onWarning: (message: string) => void,
  ) {
    this.#onWarning = onWarning;
  }

  /** Says `message` unless this catalog said it already. */
  warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    this.#onWarning(message);
  }

  /**
   * What `destinations` hold. A destination that cannot be listed is recorded in `unlisted` (one
   * region down does not hide the rest); a manifest that cannot be read or parsed is recorded in
   * `damaged`, so that no caller mistakes it for a backup that was never committed.
   */
  async read(destinations: readonly Destination[] = this.destinations): Promise<Catalog> {
    const catalog: Catalog = { entries: [], damaged: [], unlisted: [] };
    const byId = new Map<string, CatalogEntry>();
    const listings = await Promise.allSettled(destinations.map((destination) => this.#listing(destination)));
    listings.forEach((listing, index) => {
      const destination = destinations[index]!;
      if (listing.status === 'rejected') {
        catalog.unlisted.push({ destination: destination.name, message: (listing.reason as Error).message });
        return;
      }
      catalog.damaged.push(...listing.value.damaged);
      for (const [id, manifest] of listing.value.manifests) {
        const entry: CatalogEntry = byId.get(id) ?? { manifest, destinations: [] };
        entry.destinations.push(destination.name);
        const { classes } = listing.value;
        const here = Object.fromEntries(manifest.artifacts.flatMap((a) => (classes.has(a.key) ? [[a.key, classes.get(a.key)!]] : [])));
        if (Object.keys(here).length > 0) entry.storageClasses = { ...entry.storageClasses, [destination.name]: here };
        byId.set(id, entry);
      }
    });
    const order = new Map(destinations.map((d, i) => [d.name, i]));
    catalog.entries = [...byId.values()].sort(byRecency);
    catalog.damaged.sort((a, b) => compareIds(a.id, b.id) || (order.get(a.destination) ?? 0) - (order.get(b.destination) ?? 0));
    return catalog;
  }

  /** `read`, with its unlisted destinations and damaged manifests also said through `warn`. */
  async readReported(destinations: readonly Destination[] = this.destinations): Promise<Catalog> {
    const catalog = await this.read(destinations);
    for (const warning of catalogWarnings(catalog)) this.warn(warning);
    return catalog;
  }

  /** Every committed backup at `destinations`, oldest first (see `readReported`). */
  async list(destinations: readonly Destination[] = this.destinations): Promise<CatalogEntry[]> {
    return (await this.readReported(destinations)).entries;
  }

  /** The manifest of backup `id` at `destination` (undefined: it holds none), read at most once through this catalog. */
  manifestAt(destination: Destination, id: string): Promise<Manifest | undefined> {
    return this.#manifestAt(destination, id);
  }

  /**
   * The committed backup `id` at `destinations`, undefined when none holds it. A destination
   * already listed answers from its listing; one not (or not listable) is asked for the manifest.
   * @throws the first destination's error when no destination holds it but some could not be read.
   */
  async entry(id: string, destinations: readonly Destination[] = this.destinations): Promise<CatalogEntry | undefined> {
    const found = await Promise.allSettled(destinations.map((destination) => this.#manifestAt(destination, id)));
    let entry: CatalogEntry | undefined;
    const errors: unknown[] = [];
    found.forEach((result, index) => {
      const destination = destinations[index]!;
      if (result.status === 'rejected') {
        errors.push(result.reason);
        this.warn(`destination ${destination.name}: ${(result.reason as Error).message}`);
      } else if (result.value) {
        entry ??= { manifest: result.value, destinations: [] };
        entry.destinations.push(destination.name);
      }
    });
    if (!entry && errors.length) throw errors[0];
    return entry;
  }

  async #manifestAt(destination: Destination, id: string): Promise<Manifest | undefined> {
    const listing = await this.#listings.get(destination.name)?.catch(() => undefined);
    if (listing) {
      const damaged = listing.damaged.find((d) => d.id === id);
      if (!damaged) return listing.manifests.get(id);
    }
    return this.#manifest(destination, id);
  }

  #manifest(destination: Destination, id: string): Promise<Manifest | undefined> {
    const key = `${destination.name}/${id}`;
    let read = this.#manifests.get(key);
    if (!read) this.#manifests.set(key, (read = readManifest(destination, id)));
    return read;
  }

  #listing(destination: Destination): Promise<Listing> {
    let listing = this.#listings.get(destination.name);
    if (!listing) this.#listings.set(destination.name, (listing = this.#list(destination)));
    return listing;
  }

  async #list(destination: Destination): Promise<Listing> {
    const found: { id: string; key: string }[] = [];
    const classes = new Map<string, string>();
    for (const type of BACKUP_TYPES) {
      for await (const info of destination.adapter.list(`${FOLDERS[type]}/`)) {
        if (info.storageClass !== undefined && destination.adapter.capabilities.archiveClasses?.includes(info.storageClass))
          classes.set(info.key, info.storageClass);
        if (!info.key.endsWith(MANIFEST_SUFFIX)) continue;
        const id = info.key.slice(info.key.lastIndexOf('/') + 1, -MANIFEST_SUFFIX.length);
        if (typeOfId(id) === type) found.push({ id, key: info.key });
      }
    }
    // Manifests are small: reading several at once hides a remote store's round trip per object.
    const read = new Array<Manifest | undefined | { problem: string; code?: string }>(found.length);
    let next = 0;
    const reader = async (): Promise<void> => {
      for (let i = next++; i < found.length; i = next++) {
        read[i] = await this.#manifest(destination, found[i]!.id).catch((error: unknown) => ({
          problem: (error as Error).message,
          ...(isStowageError(error) ? { code: error.code } : {}),
        }));
      }
    };
    await Promise.all(Array.from({ length: Math.min(MANIFEST_READS_IN_FLIGHT, found.length) }, reader));
    const listing: Listing = { manifests: new Map(), damaged: [], classes };
    found.forEach(({ id, key }, i) => {
      const result = read[i];
      if (result === undefined) return;
      if ('problem' in result) listing.damaged.push({ id, destination: destination.name, key, ...result });
      else listing.manifests.set(id, result);
    });
    return listing;
  }
}

/** A catalog of the run's destinations, its warnings said through the run's. */
export function catalogOf(run: { readonly destinations: readonly Destination[]; warn(message: string): void }): ManifestCatalog {
  return new ManifestCatalog(run.destinations, (message) => run.warn(message));
}

/** One line for each unlisted destination and each damaged manifest of `catalog`. */
export function catalogWarnings(catalog: Catalog): string[] {
  return [
    ...catalog.unlisted.map(({ destination, message }) => `destination ${destination} could not be listed: ${message}`),
    ...catalog.damaged.map((damaged) => `damaged manifest, backup ${damaged.id} left out: ${damaged.problem}; \`stowage sync\` repairs it from a good copy`),
  ];
}

/** What `destinations` hold, read afresh (see `ManifestCatalog.read`). */
export function readCatalog(destinations: readonly Destination[]): Promise<Catalog> {
  return new ManifestCatalog(destinations, () => undefined).read();
}

/**
 * Every committed backup at the given destinations, oldest first, read afresh; unlisted
 * destinations and damaged manifests are said through `run.warn`. A command that also finds or
 * chains backups uses one `ManifestCatalog` for all of it instead.
 */
export function listBackups(
  run: { readonly destinations: readonly Destination[]; warn(message: string): void },
  destinations: readonly Destination[] = run.destinations,
): Promise<CatalogEntry[]> {
  return catalogOf(run).list(destinations);
}

/** Oldest first: by sequence number (clock-independent), then time, then id. */
export function byRecency(a: CatalogEntry, b: CatalogEntry): number {
  return a.manifest.seq - b.manifest.seq || a.manifest.createdAt.localeCompare(b.manifest.createdAt) || compareIds(a.manifest.id, b.manifest.id);
}

/**
 * Finds a committed backup by id, backup file name or path (`backups/full/full_backup_20240101_020000.sqlite3`),
 * or `latest` (see `findBackup` in find.ts, which also warns of newer backups gone from every destination).
 */
export async function findInCatalog(
  catalog: ManifestCatalog,
  reference: string,
  destinations: readonly Destination[] = catalog.destinations,
): Promise<CatalogEntry> {
  if (reference === 'latest') {
    const newest = (await catalog.list(destinations)).at(-1);
    if (!newest) {
      throw new CoreError(
        CoreErrorCode.BackupNotFound,
        `there are no backups yet at ${destinations.map((d) => d.name).join(', ')}; take one with \`stowage backup --type full\``,
      );
    }
    return newest;
  }
  const id = idFromReference(reference);
  if (!id) {
    throw new CoreError(
      CoreErrorCode.NotABackup,
      `'${reference}' is not a Stowage backup name (expected e.g. full_backup_20240101_020000); see \`stowage list\``,
      {
        context: { reference },
      },
    );
  }
  const entry = await catalog.entry(id, destinations);
  if (!entry) {
    throw new CoreError(CoreErrorCode.BackupNotFound, `backup ${id} not found at ${destinations.map((d) => d.name).join(', ')}; see \`stowage list\``, {
      context: { id },
    });
  }
  return entry;
}

/** The newest backup taken at or before `time` (by its creation time). */
export async function findBackupAt(catalog: ManifestCatalog, time: Date, destinations: readonly Destination[] = catalog.destinations): Promise<CatalogEntry> {
  const candidates = (await catalog.list(destinations)).filter((e) => Date.parse(e.manifest.createdAt) <= time.getTime());
  const newest = candidates.sort((a, b) => a.manifest.createdAt.localeCompare(b.manifest.createdAt) || byRecency(a, b)).at(-1);
  if (!newest) {
    throw new CoreError(CoreErrorCode.BackupNotFound, `no backup was taken at or before ${time.toISOString()}; see \`stowage list\``, {
      context: { at: time.toISOString() },
    });
  }
  return newest;
}
