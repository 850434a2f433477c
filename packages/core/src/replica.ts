import { createReadStream } from 'node:fs';
import { pipeline, Transform } from 'node:stream';
import { bufferBody, digestStream, StorageError, StorageErrorCode, type PutBody, type StoredObject } from '@stowage/storage';
import type { Destination } from './engine.js';
import { manifestKey } from './layout.js';
import { serializeManifest, type Artifact, type Manifest, type Replica } from './manifest.js';

/** An artifact staged in a local file, ready to be stored at any number of destinations. */
export interface StagedArtifact {
  artifact: Artifact;
  path: string;
}

export type VerifiedBy = Replica['verifiedBy'];

/** What the manifest records of an artifact that `confirmStored` checks. */
type Expected = Pick<Artifact, 'key' | 'size' | 'sha256' | 'crc64ecma' | 'crc64nvme'>;

/** The CRC-64s an artifact record can hold, which only an adapter computes (core knows no CRC-64). */
const RECORDED = ['crc64ecma', 'crc64nvme'] as const;

/**
 * `artifact` with the CRC-64s that a `put` reported sending (`stored.sent`: computed by the
 * adapter over the bytes it read, whose SHA-256 it checked against the artifact's), so that the
 * store's own checksum can be compared with them now and the manifest records them for later.
 * @throws StorageError `checksum_mismatch` when the adapter sent a CRC-64 other than the one the
 *   artifact records already (another destination's adapter computed it over the same bytes).
 */
export function withSentChecksums<T extends Expected>(destination: Destination, artifact: T, stored: StoredObject): T {
  const recorded: Partial<Pick<Artifact, (typeof RECORDED)[number]>> = {};
  for (const algorithm of RECORDED) {
    const sent = stored.sent?.[algorithm];
    if (sent === undefined) continue;
    if (artifact[algorithm] !== undefined && artifact[algorithm] !== sent) {
      throw new StorageError(
        StorageErrorCode.ChecksumMismatch,
        `${artifact.key} at ${destination.name}: the adapter sent bytes with ${algorithm} ${sent}, but the backup records ${artifact[algorithm]} for them`,
        { context: { destination: destination.name, key: artifact.key, algorithm } },
      );
    }
    recorded[algorithm] = sent;
  }
  return { ...artifact, ...recorded };
}

/**
 * Confirms that `destination` holds exactly `artifact`'s bytes — the one place a replica is
 * verified: adapters only report what the store says. With `deep` the bytes are read back and
 * hashed; otherwise a SHA-256 the store reports for the object is trusted when there is one —
 * `stored`, what `put` just returned (computed by the destination over the stored bytes: the
 * local adapter re-reads its file after fsync), or else `stat` — then a CRC-64 the store reports
 * (OSS: ECMA, S3: NVME) that the artifact records (see `withSentChecksums`), then, right after a
 * put, an S3 composite SHA-256 that `stat` reports equal to the one `put` sent (the endpoint checked
 * each part against its SHA-256, computed over bytes whose whole SHA-256 is the artifact's; recorded
 * as `server-sha256`), and the bytes are read back when there is none of these. Returns the method that ran.
 * @throws StorageError `object_not_found` or `checksum_mismatch`, naming destination and key.
 */
export async function confirmStored(destination: Destination, artifact: Expected, options: { deep: boolean; stored?: StoredObject }): Promise<VerifiedBy> {
  const info = !options.deep && options.stored?.checksums.sha256 ? options.stored : await destination.adapter.stat(artifact.key);
  if (!info) {
    throw new StorageError(StorageErrorCode.ObjectNotFound, `${artifact.key} is missing at ${destination.name}`, {
      context: { destination: destination.name, key: artifact.key },
    });
  }
  const mismatch = (what: string) =>
    new StorageError(StorageErrorCode.ChecksumMismatch, `${artifact.key} at ${destination.name} is damaged: ${what}`, {
      context: { destination: destination.name, key: artifact.key },
    });
  if (info.size !== artifact.size) throw mismatch(`${info.size} bytes stored, ${artifact.size} expected`);
  if (!options.deep && info.checksums.sha256) {
    if (info.checksums.sha256 !== artifact.sha256) throw mismatch('SHA-256 reported by the destination differs');
    return 'server-sha256';
  }
  for (const algorithm of RECORDED) {
    const reported = info.checksums[algorithm];
    const expected = artifact[algorithm];
    if (options.deep || reported === undefined || expected === undefined) continue;
    if (reported !== expected) throw mismatch(`${algorithm === 'crc64ecma' ? 'CRC-64' : 'CRC-64/NVME'} reported by the destination differs`);
    return `server-${algorithm}`;
  }
  const composite = options.stored?.sent?.sha256Composite;
  if (!options.deep && composite !== undefined && info.checksums.sha256Composite !== undefined) {
    if (info.checksums.sha256Composite !== composite) throw mismatch('composite SHA-256 of the parts reported by the destination differs');
    return 'server-sha256';
  }
  const read = await digestStream(await destination.adapter.get(artifact.key));
  if (read.size !== artifact.size) throw mismatch(`${read.size} bytes read back, ${artifact.size} expected`);
  if (read.sha256 !== artifact.sha256) throw mismatch('SHA-256 of the bytes read back differs');
  return 'sha256-readback';
}

/**
 * Writes `manifest` at `destination` — the step that commits the backup there — and confirms it
 * as stored (never trusting the write alone), so a torn or lost manifest write is a failure here
 * rather than a committed-looking backup that no one can read later.
 */
export async function commitManifest(destination: Destination, manifest: Manifest): Promise<void> {
  const key = manifestKey(manifest.type, manifest.id);
  const body = bufferBody(serializeManifest(manifest));
  const stored = await destination.adapter.put(key, body);
  await confirmStored(destination, withSentChecksums(destination, { key, size: body.size, sha256: body.sha256 }, stored), { deep: false });
}

/**
 * The replica record of artifacts just confirmed, each by the method that ran (`methods` by key,
 * database artifact first): one method when all agree, else each artifact's.
 */
export function confirmedReplica(methods: ReadonlyMap<string, VerifiedBy>, at: Date): Replica {
  const distinct = new Set(methods.values());
  const now = at.toISOString();
  return {
    committedAt: now,
    verifiedAt: now,
    verifiedBy: methods.values().next().value!,
    ...(distinct.size > 1 ? { verifiedByArtifact: Object.fromEntries(methods) } : {}),
  };
}

/** Staged files that a destination's put has claimed to hard-link (`PutBody.claimLink`). */
const claimedForLink = new WeakSet<StagedArtifact>();

/**
 * A rewindable put body over a staged file whose size and hash are already known; it names the
 * file (`path`), so an adapter that can copy it does so without reading it through `open()` (and
 * `onBytes` then hears nothing of it), and one destination may hard-link it instead: the staged
 * file is only removed once stored.
 */
export function stagedBody(staged: StagedArtifact, onBytes?: (n: number) => void): PutBody {
  return {
    size: staged.artifact.size,
    sha256: staged.artifact.sha256,
    path: staged.path,
    claimLink: () => !claimedForLink.has(staged) && Boolean(claimedForLink.add(staged)),
    open: () => {
      const stream = createReadStream(staged.path, { highWaterMark: 1 << 20 });
      if (!onBytes) return stream;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          onBytes(chunk.length);
          callback(null, chunk);
        },
      });
      // pipeline() destroys the file stream when the adapter destroys the counter, and vice versa.
      return pipeline(stream, counter, () => {});
    },
  };
}
