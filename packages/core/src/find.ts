import { findInCatalog, type CatalogEntry, type ManifestCatalog } from './catalog.js';
import type { Destination } from './destination.js';
import { describeVanished, readHistory, vanishedBackups, type HistorySource } from './history.js';
import { compareIds } from './layout.js';

/**
 * Finds a committed backup by reference in the run's catalog: `latest`, an id, or a backup file
 * name or path (`backups/full/full_backup_20240101_020000.sqlite3`). For `latest`, a newer backup
 * this host recorded that is gone from every destination searched is said, not silently skipped.
 */
export async function findBackup(
  run: HistorySource,
  catalog: ManifestCatalog,
  reference: string,
  destinations: readonly Destination[] = catalog.destinations,
): Promise<CatalogEntry> {
  if (reference !== 'latest') return findInCatalog(catalog, reference, destinations);
  const listing = await catalog.readReported(destinations);
  const newest = listing.entries.at(-1);
  for (const vanished of vanishedBackups(
    await readHistory(run),
    listing,
    destinations.map((d) => d.name),
  )) {
    if (!newest || compareIds(vanished.id, newest.manifest.id) > 0) catalog.warn(`${describeVanished(vanished)}; \`stowage verify --all\` reports it`);
  }
  return findInCatalog(catalog, reference, destinations);
}
