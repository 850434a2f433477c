import { open, rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import { isStowageError, systemErrorCode } from '@stowage/errors';
import { DigestStream, digestStream } from '@stowage/storage';
import { findInCatalog, type CatalogEntry, type ManifestCatalog } from './catalog.js';
import type { Destination, Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { applyDelta } from './delta.js';
import { databaseArtifact, type Artifact } from './manifest.js';
import { syncFile, tempSibling } from './private-fs.js';
import { dirname } from 'node:path';

/** What fetching and replaying artifacts needs of a run (an `Engine` is one): its codec, progress and warnings. */
export type ArtifactReader = Pick<Engine, 'codec' | 'progress' | 'warn'>;

/**
 * The chain of a backup, full first: a full or hot backup alone, or an incremental preceded by
 * every link back to its full, each read through the run's catalog. A missing link is an error naming it.
 */
export async function resolveChain(catalog: ManifestCatalog, entry: CatalogEntry, destinations: readonly Destination[]): Promise<CatalogEntry[]> {
  const chain = [entry];
  for (let link = entry; link.manifest.parent !== null; ) {
    const parentId = link.manifest.parent;
    try {
      link = await findInCatalog(catalog, parentId, destinations);
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
 * The destinations from which `entry` can be restored alone: those holding the manifest of every
 * link of its chain, judged from a catalog listing (`listBackups`) without further reads.
 */
export function restorableFrom(entry: CatalogEntry, catalog: readonly CatalogEntry[]): string[] {
  const byId = new Map(catalog.map((e) => [e.manifest.id, e]));
  let holders = entry.destinations;
  for (let link: CatalogEntry | undefined = entry, steps = 0; link?.manifest.parent != null && steps < 10_000; steps++) {
    link = byId.get(link.manifest.parent);
    const linkHolders = link?.destinations ?? [];
    holders = holders.filter((name) => linkHolders.includes(name));
  }
  return holders;
}

/**
 * Writes the database of the last backup of `chain` to `path`: the full image, then each delta in
 * order, every artifact checked against its SHA-256 while it is read (falling back to the next
 * destination on any error), and the result checked against the snapshot SHA-256.
 * Returns the destinations each link came from.
 */
export async function materializeChain(engine: ArtifactReader, chain: readonly CatalogEntry[], path: string, destinations: readonly Destination[]): Promise<string[]> {
  const [base, ...deltas] = chain;
  if (!base) throw new Error('empty chain');
  const sources = [await fetchArtifact(engine, base, databaseArtifact(base.manifest), path, destinations)];
  let previous = base.manifest;
  for (const link of deltas) {
    const deltaPath = tempSibling(path, 'delta');
    try {
      sources.push(await fetchArtifact(engine, link, databaseArtifact(link.manifest), deltaPath, destinations, { decode: true, sync: false }));
      await applyDelta(path, deltaPath, { sha256: previous.source.snapshotSha256, name: previous.id }, link.manifest.id);
    } finally {
      await rm(deltaPath, { force: true });
    }
    previous = link.manifest;
  }
  if (deltas.length > 0) {
    await syncFile(path);
    const { sha256 } = await digestStream(createReadStream(path, { highWaterMark: 4 << 20 }));
    if (sha256 !== previous.source.snapshotSha256) {
      throw new CoreError(CoreErrorCode.BackupCorrupt, `replaying the chain of ${previous.id} did not reproduce its snapshot (SHA-256 differs); a link is inconsistent — restore an earlier backup`, {
        context: { id: previous.id },
      });
    }
  }
  return sources;
}

/**
 * Downloads one artifact to `path` (decoded with `decode`, else as stored), trying each
 * destination that holds it until the bytes check out: the stored bytes against the artifact's
 * SHA-256 and, decoded, the decoded SHA-256. Key problems (wrong key, no private key) fail at once:
 * another destination would not help. Returns the destination used.
 */
export async function fetchArtifact(
  engine: ArtifactReader,
  entry: CatalogEntry,
  artifact: Artifact,
  path: string,
  destinations: readonly Destination[],
  options: { decode: boolean; sync?: boolean } = { decode: true },
): Promise<string> {
  return fromFirstGood(engine, entry, artifact, destinations, async (destination) => {
    // The file is opened before anything can fail and closed before it is removed, so no partial
    // (possibly decrypted) bytes can outlive a failed attempt.
    const file = await open(path, 'wx', 0o600);
    try {
      await transfer(engine, destination, entry.manifest.id, artifact, file.createWriteStream(), options.decode);
      if (options.sync ?? true) await syncFile(path);
    } catch (error) {
      await rm(path, { force: true });
      if (systemErrorCode(error) === 'ENOSPC') {
        throw new CoreError(CoreErrorCode.NoSpace, `no space left in ${dirname(path)} while restoring ${entry.manifest.id}; free ${artifact.decodedSize} bytes there`, { cause: error });
      }
      throw error;
    } finally {
      if (file.fd !== -1) await file.close(); // the stream closes it when the transfer ran
    }
  });
}

/** A small artifact's decoded bytes (page hashes, file-set indexes), from the first good destination. */
export async function fetchArtifactBytes(engine: ArtifactReader, entry: CatalogEntry, artifact: Artifact, destinations: readonly Destination[]): Promise<Buffer> {
  let bytes = Buffer.alloc(0);
  await fromFirstGood(engine, entry, artifact, destinations, async (destination) => {
    const chunks: Buffer[] = [];
    await transfer(engine, destination, entry.manifest.id, artifact, new Writable({ write: (chunk: Buffer, _e, callback) => { chunks.push(chunk); callback(); } }), true);
    bytes = Buffer.concat(chunks);
  });
  return bytes;
}

const KEY_PROBLEMS = ['wrong_key', 'cannot_decrypt', 'key_missing', 'key_file_permissions', 'invalid_key', 'invalid_config'].map((c) => `stowage.crypto.${c}`);

async function fromFirstGood(engine: ArtifactReader, entry: CatalogEntry, artifact: Artifact, destinations: readonly Destination[], attempt: (destination: Destination) => Promise<void>): Promise<string> {
  const problems: string[] = [];
  const holders = destinations.filter((d) => entry.destinations.includes(d.name));
  for (const destination of holders) {
    try {
      await attempt(destination);
      return destination.name;
    } catch (error) {
      if (isStowageError(error, CoreErrorCode.NoSpace, CoreErrorCode.EncryptionMismatch, ...KEY_PROBLEMS)) throw error;
      problems.push(`${destination.name}: ${(error as Error).message}`);
      if (holders.length > 1) engine.warn(`could not use ${artifact.key} from ${destination.name} (${(error as Error).message}); trying the next destination`);
    }
  }
  throw new CoreError(CoreErrorCode.BackupCorrupt, `no good copy of ${artifact.key} (backup ${entry.manifest.id}): ${problems.join('; ') || 'no destination holds it'}`, {
    context: { backupId: entry.manifest.id, key: artifact.key, problems },
  });
}

/** Streams one artifact from `destination` into `sink`, checking what was stored and (decoded) what it holds. */
async function transfer(engine: ArtifactReader, destination: Destination, backupId: string, artifact: Artifact, sink: Writable, decode: boolean): Promise<void> {
  const stored = new DigestStream();
  const decoded = new DigestStream();
  // Progress counts what a restore writes (decoded bytes), else what is downloaded.
  let done = 0;
  const progress = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      engine.progress(decode ? { phase: 'restore', done: (done += chunk.length), total: artifact.decodedSize } : { phase: 'download', done: (done += chunk.length), total: artifact.size });
      callback(null, chunk);
    },
  });
  const decoders = decode ? await engine.codec.decoders(artifact, backupId) : [];
  try {
    await pipeline([await destination.adapter.get(artifact.key), stored, ...decoders, progress, decoded, sink]);
  } catch (error) {
    // A decoder failing on bytes that do not match the manifest is damage, not a key problem.
    if (stored.size === artifact.size || !isStowageError(error) || isStowageError(error, ...KEY_PROBLEMS)) throw error;
    throw damaged(destination, artifact, stored.size, error);
  }
  if (stored.size !== artifact.size || stored.digest() !== artifact.sha256) throw damaged(destination, artifact, stored.size);
  if (decode && (decoded.size !== artifact.decodedSize || decoded.digest() !== artifact.decodedSha256)) {
    throw new CoreError(CoreErrorCode.BackupCorrupt, `${artifact.key} at ${destination.name} decodes to other bytes than were backed up`, { context: { destination: destination.name, key: artifact.key } });
  }
}

function damaged(destination: Destination, artifact: Artifact, read: number, cause?: unknown): CoreError {
  return new CoreError(CoreErrorCode.BackupCorrupt, `${artifact.key} is damaged at ${destination.name} (${read} of ${artifact.size} bytes read${read === artifact.size ? ', SHA-256 differs' : ''})`, {
    context: { destination: destination.name, key: artifact.key },
    cause,
  });
}
