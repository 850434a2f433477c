import { createReadStream } from 'node:fs';
import { pipeline, Transform } from 'node:stream';
import { bufferBody, digestStream, StorageError, StorageErrorCode, type ObjectInfo, type PutBody } from '@stowage/storage';
import type { Destination } from './engine.js';
import { manifestKey } from './layout.js';
import { serializeManifest, type Artifact, type Manifest, type Replica } from './manifest.js';

/** An artifact staged in a local file, ready to be stored at any number of destinations. */
export interface StagedArtifact {
  artifact: Artifact;
  path: string;
}

export type VerifiedBy = Replica['verifiedBy'];

/**
 * Confirms that `destination` holds exactly `artifact`'s bytes. With `deep` the bytes are read
 * back and hashed; otherwise a SHA-256 the backend reports for the stored object is trusted when
 * there is one — `stored`, what `put` just returned (computed by the destination over the stored
 * bytes: the local adapter re-reads its file after fsync), or else `stat` — then a CRC-64 it
 * reports (OSS: ECMA, S3: NVME) that the manifest also records, and the bytes are read back when
 * there is neither. Returns the method that ran.
 * @throws StorageError `object_not_found` or `checksum_mismatch`, naming destination and key.
 */
export async function confirmStored(destination: Destination, artifact: Pick<Artifact, 'key' | 'size' | 'sha256' | 'crc64ecma' | 'crc64nvme'>, options: { deep: boolean; stored?: ObjectInfo }): Promise<VerifiedBy> {
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
  if (!options.deep && info.checksums.crc64ecma && artifact.crc64ecma) {
    if (info.checksums.crc64ecma !== artifact.crc64ecma) throw mismatch('CRC-64 reported by the destination differs');
    return 'server-crc64ecma';
  }
  if (!options.deep && info.checksums.crc64nvme && artifact.crc64nvme) {
    if (info.checksums.crc64nvme !== artifact.crc64nvme) throw mismatch('CRC-64/NVME reported by the destination differs');
    return 'server-crc64nvme';
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
  await destination.adapter.put(key, body);
  await confirmStored(destination, { key, size: body.size, sha256: body.sha256 }, { deep: false });
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

/** A rewindable put body over a staged file whose size and hash are already known. */
export function stagedBody(staged: StagedArtifact, onBytes?: (n: number) => void): PutBody {
  return {
    size: staged.artifact.size,
    sha256: staged.artifact.sha256,
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
