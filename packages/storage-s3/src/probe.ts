import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandInput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { isAlreadyExists, isChecksumMismatch, type EndpointProbe } from '@stowage/storage';
import type { ChecksumMode } from './checksums.js';
import { toStorageError, type S3Operation } from './errors.js';
import { PROBE_KEY_PREFIX, type S3Storage, sdkOptions } from './s3.js';

/** What an endpoint does with one kind of flexible checksum. */
export interface ChecksumSupport {
  /** HeadObject with `ChecksumMode: ENABLED` returns the checksum that was sent with the upload. */
  reported: boolean;
  /** An upload whose checksum does not match its bytes is refused. */
  enforced: boolean;
}

/** What `probeS3Endpoint` found out, and the destination options it suggests. */
export interface S3ProbeResult {
  /** The destination probed (its description; no secret). */
  target: string;
  checksums: { sha256: ChecksumSupport; crc64nvme: ChecksumSupport };
  /** A second `If-None-Match: *` write to the same key is refused with 412. */
  conditionalWrites: boolean;
  /** A streamed upload the SDK sends `aws-chunked` is stored as the bytes sent (not with the chunk framing). */
  awsChunkedUploads: boolean;
  /** ListObjectsV2 pages with continuation tokens work. */
  listV2Pagination: boolean;
  /** Every probe object was deleted again. */
  cleanedUp: boolean;
  /** Options for this destination that match what was found. */
  recommended: {
    checksumMode: ChecksumMode;
    conditionalWrites: boolean;
    listApi: 'v2' | 'v1';
    requestChecksumCalculation: 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';
  };
}

/**
 * Finds out what an S3 endpoint supports by trying it, under a temporary folder
 * `<prefix>/.stowage-probe-<random>/` that is deleted afterwards (the adapter never lists it):
 * SHA-256 and CRC-64/NVME flexible checksums (reported by HeadObject? a wrong one refused?),
 * conditional writes (is a second `If-None-Match: *` put refused?), `aws-chunked` streamed uploads
 * (stored intact?) and ListObjectsV2 paging. Needs permission to list, put and delete under the prefix.
 * @throws the adapter's `StorageError` when the bucket cannot be listed at all (missing bucket,
 *   refused credentials, endpoint down) or when the first probe object cannot be written.
 */
export async function probeS3Storage(storage: S3Storage, options: { signal?: AbortSignal } = {}): Promise<S3ProbeResult> {
  return new Probe(storage, options.signal).run();
}

/** A probe's findings as the registry reports them (`stowage destinations probe`). */
export function endpointProbe(result: S3ProbeResult): EndpointProbe {
  const sha256 = result.checksums.sha256.reported ? 'reported' : 'not reported';
  const crc = result.checksums.crc64nvme.reported ? 'reported' : 'not reported';
  return {
    summary:
      `sha256 ${sha256}, crc64nvme ${crc}, conditional writes ${result.conditionalWrites ? 'enforced' : 'not enforced'}, ` +
      `aws-chunked uploads ${result.awsChunkedUploads ? 'stored correctly' : 'BROKEN'}`,
    recommended: result.recommended,
    details: result,
  };
}

class Probe {
  readonly #storage: S3Storage;
  readonly #signal: AbortSignal | undefined;
  readonly #folder: string;
  readonly #written = new Set<string>();

  constructor(storage: S3Storage, signal: AbortSignal | undefined) {
    this.#storage = storage;
    this.#signal = signal;
    const root = storage.prefix === '' ? '' : `${storage.prefix}/`;
    this.#folder = `${root}${PROBE_KEY_PREFIX}${randomBytes(6).toString('hex')}/`;
  }

  async run(): Promise<S3ProbeResult> {
    try {
      await this.#call('', (client, options) =>
        client.send(new ListObjectsV2Command({ Bucket: this.#storage.bucket, Prefix: this.#folder, MaxKeys: 1 }), options),
      );
      await this.#put('first', { Body: Buffer.from('stowage endpoint probe') }); // fails loudly when writes are refused
      const sha256 = await this.#checksum('sha256');
      const crc64nvme = await this.#checksum('crc64nvme');
      const conditionalWrites = await this.#conditionalWrites();
      const awsChunkedUploads = await this.#awsChunked();
      const listV2Pagination = await this.#listV2Pagination();
      const cleanedUp = await this.#cleanUp(listV2Pagination);
      const usable = (support: ChecksumSupport) => support.reported && support.enforced;
      return {
        target: this.#storage.description,
        checksums: { sha256, crc64nvme },
        conditionalWrites,
        awsChunkedUploads,
        listV2Pagination,
        cleanedUp,
        recommended: {
          checksumMode: usable(crc64nvme) ? 'crc64nvme' : usable(sha256) ? 'sha256' : 'none',
          conditionalWrites,
          listApi: listV2Pagination ? 'v2' : 'v1',
          requestChecksumCalculation: awsChunkedUploads ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
        },
      };
    } catch (error) {
      await this.#cleanUp(false).catch(() => undefined);
      throw error;
    }
  }

  /** Is a checksum of this kind reported back, and is a wrong one refused? */
  async #checksum(kind: 'sha256' | 'crc64nvme'): Promise<ChecksumSupport> {
    const data = randomBytes(1024);
    const header = kind === 'sha256' ? 'ChecksumSHA256' : 'ChecksumCRC64NVME';
    const right = await checksumBase64(kind, data);
    const key = `${kind}-checksum`;
    let reported = false;
    if (await this.#attempt(() => this.#put(key, { Body: data, [header]: right }))) {
      const head = await this.#call(key, (client, options) =>
        client.send(new HeadObjectCommand({ Bucket: this.#storage.bucket, Key: this.#folder + key, ChecksumMode: 'ENABLED' }), options),
      );
      reported = head[header] === right;
    }
    const wrong = await checksumBase64(kind, Buffer.from('other bytes'));
    let enforced = false;
    try {
      await this.#put(`${kind}-wrong-checksum`, { Body: data, [header]: wrong });
    } catch (error) {
      enforced = isChecksumMismatch(error);
    }
    return { reported, enforced };
  }

  async #conditionalWrites(): Promise<boolean> {
    const write = () => this.#put('conditional', { Body: Buffer.from('x'), IfNoneMatch: '*' });
    if (!(await this.#attempt(write))) return false;
    try {
      await write();
      return false;
    } catch (error) {
      return isAlreadyExists(error);
    }
  }

  /** A stream body with an explicit checksum algorithm is what makes the SDK send `aws-chunked`. */
  async #awsChunked(): Promise<boolean> {
    const data = randomBytes(64 * 1024);
    const key = 'aws-chunked';
    const sent = () => this.#put(key, { Body: Readable.from([data]), ContentLength: data.length, ChecksumAlgorithm: 'CRC32' });
    if (!(await this.#attempt(sent))) return false;
    const head = await this.#call(key, (client, options) =>
      client.send(new HeadObjectCommand({ Bucket: this.#storage.bucket, Key: this.#folder + key }), options),
    );
    return head.ContentLength === data.length;
  }

  async #listV2Pagination(): Promise<boolean> {
    const seen = new Set<string>();
    try {
      let token: string | undefined;
      // One key per page: as many pages as objects, and one more to be sure the paging ends.
      for (let pages = 0; pages <= this.#written.size; pages++) {
        const page = await this.#call('', (client, options) =>
          client.send(new ListObjectsV2Command({ Bucket: this.#storage.bucket, Prefix: this.#folder, MaxKeys: 1, ContinuationToken: token }), options),
        );
        for (const object of page.Contents ?? []) if (object.Key) seen.add(object.Key);
        if (!page.IsTruncated) break;
        token = page.NextContinuationToken;
        if (!token) return false;
      }
    } catch (error) {
      if (this.#signal?.aborted) throw error;
      return false;
    }
    return seen.size === this.#written.size && [...this.#written].every((key) => seen.has(key));
  }

  /** Deletes every object under the probe folder; true when none is left. */
  async #cleanUp(listV2: boolean): Promise<boolean> {
    const leftover = async () => {
      const Bucket = this.#storage.bucket;
      const page = listV2
        ? await this.#call('', (client, options) => client.send(new ListObjectsV2Command({ Bucket, Prefix: this.#folder }), options), false)
        : await this.#call('', (client, options) => client.send(new ListObjectsCommand({ Bucket, Prefix: this.#folder }), options), false);
      return (page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : []));
    };
    const keys = new Set([...this.#written, ...(await leftover())]);
    if (keys.size > 0) {
      const Delete = { Objects: [...keys].map((Key) => ({ Key })), Quiet: true };
      await this.#call('', (client, options) => client.send(new DeleteObjectsCommand({ Bucket: this.#storage.bucket, Delete }), options), false);
    }
    return (await leftover()).length === 0;
  }

  async #put(key: string, input: Omit<PutObjectCommandInput, 'Bucket' | 'Key'>): Promise<void> {
    await this.#call(key, (client, options) => client.send(new PutObjectCommand({ Bucket: this.#storage.bucket, Key: this.#folder + key, ...input }), options));
    this.#written.add(this.#folder + key);
  }

  /** Runs a step whose failure is an answer (the endpoint does not do that), not an error. */
  async #attempt(step: () => Promise<void>): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (error) {
      if (this.#signal?.aborted) throw error;
      return false;
    }
  }

  /**
   * One SDK call (`label`: the probe object it is about, if any), its errors mapped onto
   * StorageErrors; with the caller's signal except for the clean-up, which must run even then.
   */
  async #call<T>(label: string, send: (client: S3Client, options: { abortSignal?: AbortSignal }) => Promise<T>, abortable = true): Promise<T> {
    const signal = abortable ? this.#signal : undefined;
    const op: S3Operation = {
      operation: 'probe',
      key: label === '' ? undefined : `${PROBE_KEY_PREFIX}…/${label}`,
      bucket: this.#storage.bucket,
      where: this.#storage.description,
      signal,
    };
    try {
      return await send(this.#storage.client, sdkOptions(signal));
    } catch (error) {
      throw toStorageError(error, op);
    }
  }
}

async function checksumBase64(kind: 'sha256' | 'crc64nvme', data: Buffer): Promise<string> {
  if (kind === 'sha256') return createHash('sha256').update(data).digest('base64');
  const crc = new Crc64Nvme();
  crc.update(data);
  return Buffer.from(await crc.digest()).toString('base64');
}
