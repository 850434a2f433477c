import { open, rm } from 'node:fs/promises';
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { systemErrorCode } from '@stowage/errors';
import { DigestStream, digestStream } from '@stowage/storage';
import { findBackup, type CatalogEntry } from './catalog.js';
import type { Destination, Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { applyDelta } from './delta.js';
import { databaseArtifact, type Artifact } from './manifest.js';
import { tempSibling } from './private-fs.js';
import { dirname } from 'node:path';

/**
 * The chain of a backup, full first: a full or hot backup alone, or an incremental preceded by
 * every link back to its full. A missing link is an error naming it.
 */
export async function resolveChain(engine: Engine, entry: CatalogEntry, destinations: readonly Destination[]): Promise<CatalogEntry[]> {
  const chain = [entry];
  for (let link = entry; link.manifest.parent !== null; ) {
    const parentId = link.manifest.parent;
    try {
      link = await findBackup(engine, parentId, destinations);
    } catch (cause) {
      throw new CoreError(
        CoreErrorCode.ChainBroken,
        `backup ${entry.manifest.id} needs ${parentId}, which cannot be read (${(cause as Error).message}); restore an earlier backup (see \`stowage list\`)`,
        { context: { id: entry.manifest.id, missing: parentId }, cause },
      );
    }
    chain.unshift(link);
    if (chain.length > 10_000) throw new CoreError(CoreErrorCode.ChainBroken, `the chain of ${entry.manifest.id} loops`);
  }
  return chain;
}

/**
 * Writes the database of the last backup of `chain` to `path`: the full image, then each delta in
 * order, every artifact checked against its SHA-256 while it is read (falling back to the next
 * destination on any error), and the result checked against the snapshot SHA-256.
 * Returns the destinations each link came from.
 */
export async function materializeChain(engine: Engine, chain: readonly CatalogEntry[], path: string, destinations: readonly Destination[]): Promise<string[]> {
  const [base, ...deltas] = chain;
  if (!base) throw new Error('empty chain');
  const sources = [await fetchArtifact(engine, base, databaseArtifact(base.manifest), path, destinations)];
  let previous = base.manifest;
  for (const link of deltas) {
    const deltaPath = tempSibling(path, 'delta');
    try {
      sources.push(await fetchArtifact(engine, link, databaseArtifact(link.manifest), deltaPath, destinations));
      await applyDelta(path, deltaPath, { sha256: previous.source.snapshotSha256, name: previous.id }, link.manifest.id);
    } finally {
      await rm(deltaPath, { force: true });
    }
    previous = link.manifest;
  }
  if (deltas.length > 0) {
    const { sha256 } = await digestStream(createReadStream(path));
    if (sha256 !== previous.source.snapshotSha256) {
      throw new CoreError(CoreErrorCode.BackupCorrupt, `replaying the chain of ${previous.id} did not reproduce its snapshot (SHA-256 differs); a link is inconsistent — restore an earlier backup`, {
        context: { id: previous.id },
      });
    }
  }
  return sources;
}

/** Downloads one artifact to `path`, trying each destination that holds it until the bytes check out. */
export async function fetchArtifact(engine: Engine, entry: CatalogEntry, artifact: Artifact, path: string, destinations: readonly Destination[]): Promise<string> {
  const problems: string[] = [];
  const holders = destinations.filter((d) => entry.destinations.includes(d.name));
  for (const destination of holders) {
    try {
      await download(engine, destination, artifact, path);
      return destination.name;
    } catch (error) {
      await rm(path, { force: true });
      if (systemErrorCode(error) === 'ENOSPC') {
        throw new CoreError(CoreErrorCode.NoSpace, `no space left in ${dirname(path)} while restoring ${entry.manifest.id}; free ${artifact.size} bytes there`, { cause: error });
      }
      problems.push(`${destination.name}: ${(error as Error).message}`);
      if (holders.length > 1) engine.warn(`could not use ${artifact.key} from ${destination.name} (${(error as Error).message}); trying the next destination`);
    }
  }
  throw new CoreError(CoreErrorCode.BackupCorrupt, `no good copy of ${artifact.key} (backup ${entry.manifest.id}): ${problems.join('; ') || 'no destination holds it'}`, {
    context: { backupId: entry.manifest.id, key: artifact.key, problems },
  });
}

async function download(engine: Engine, destination: Destination, artifact: Artifact, path: string): Promise<void> {
  const digest = new DigestStream();
  let done = 0;
  const progress = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      engine.progress({ phase: 'download', done: (done += chunk.length), total: artifact.size });
      callback(null, chunk);
    },
  });
  await pipeline(await destination.adapter.get(artifact.key), digest, progress, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
  if (digest.size !== artifact.size || digest.digest() !== artifact.sha256) {
    throw new CoreError(CoreErrorCode.BackupCorrupt, `${artifact.key} is damaged at ${destination.name} (${digest.size} of ${artifact.size} bytes read, SHA-256 ${digest.size === artifact.size ? 'differs' : 'not checked'})`, {
      context: { destination: destination.name, key: artifact.key },
    });
  }
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

