import { createHash } from 'node:crypto';
import { fdatasync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { once } from 'node:events';
import { PassThrough, Transform, Writable, type Duplex } from 'node:stream';
import type { Recycling } from '@stowage/compression';
import { isStowageError, systemErrorCode } from '@stowage/errors';
import { crashPoint, DigestStream, streamed } from '@stowage/storage';
import { findInCatalog, type CatalogEntry, type ManifestCatalog } from './catalog.js';
import type { Destination, Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { ChainPages, DeltaReceiver, writeAllAt } from './delta.js';
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
  return restorableFromEach([...catalog, entry]).get(entry.manifest.id) ?? [];
}

/**
 * `restorableFrom` of every backup of `catalog` at once, by id, in time linear in the catalog:
 * each link's holders are those of its own that also hold its parent's chain. A chain with a
 * link missing from the catalog, or that loops, is restorable nowhere.
 */
export function restorableFromEach(catalog: readonly CatalogEntry[]): Map<string, string[]> {
  const byId = new Map(catalog.map((e) => [e.manifest.id, e]));
  const holders = new Map<string, string[]>();
  for (const entry of catalog) {
    // Walk up to a link already judged (or the chain's root), then judge the links on the way down.
    const pending: CatalogEntry[] = [];
    const seen = new Set<string>();
    let above: string[] | undefined;
    for (let link: CatalogEntry | undefined = entry; ; link = byId.get(link.manifest.parent)) {
      if (!link || seen.has(link.manifest.id)) {
        above = [];
        break;
      }
      const known = holders.get(link.manifest.id);
      if (known) {
        above = known;
        break;
      }
      pending.push(link);
      seen.add(link.manifest.id);
      if (link.manifest.parent === null) break;
    }
    for (const link of pending.reverse()) {
      const own = above === undefined ? link.destinations : link.destinations.filter((name) => above!.includes(name));
      holders.set(link.manifest.id, own);
      above = own;
    }
  }
  return holders;
}

/**
 * Writes the database of the last backup of `chain` to `path` in one pass: the deltas are fetched
 * first, newest first, keeping in a spill file beside `path` only the pages no newer link
 * rewrote (`ChainPages`); then the full image is streamed to `path` with those pages substituted
 * on the way, hashed as written and checked against the last link's snapshot SHA-256 — which
 * proves every page taken from a delta, so the deltas' decoded bytes are not hashed apart. Every
 * artifact's stored bytes are checked against its SHA-256 while read, falling back to the next
 * destination on any error. Nothing is synced: the caller syncs what it keeps; with `flushEvery`
 * the image is flushed to disk as it is written (`ImageTarget.flushEvery`), so that sync has only
 * the tail left. Returns the destinations each link came from, full first.
 */
export async function materializeChain(
  engine: ArtifactReader,
  chain: readonly CatalogEntry[],
  path: string,
  destinations: readonly Destination[],
  options: { flushEvery?: number } = {},
): Promise<string[]> {
  const [base, ...deltas] = chain;
  if (!base) throw new Error('empty chain');
  const last = chain.at(-1)!.manifest;
  const sources: string[] = [];
  const spill = tempSibling(path, 'pages');
  const { pageSize, size } = base.manifest.source;
  const overlay = deltas.length ? ChainPages.create(spill, { pageSize, pageCount: Math.ceil(size / pageSize) }) : undefined;
  try {
    for (let i = deltas.length - 1; overlay && i >= 0; i--) {
      const link = deltas[i]!;
      const previous = chain[i]!.manifest;
      const artifact = databaseArtifact(link.manifest);
      let receiver: DeltaReceiver | undefined;
      const source = await fromFirstGood(engine, link, artifact, destinations, async (destination) => {
        receiver = overlay.receive({ link: link.manifest.id, base: { sha256: previous.source.snapshotSha256, name: previous.id } });
        try {
          await transfer(engine, destination, link.manifest.id, artifact, receiver, true, false);
        } catch (error) {
          receiver.abort();
          throw noSpace(error, spill, link.manifest.id, artifact);
        }
      });
      receiver!.commit();
      sources.unshift(source);
    }
    const image = {
      ...(overlay ? { overlay } : {}),
      sha256: last.source.snapshotSha256,
      size: last.source.size,
      id: last.id,
      ...(options.flushEvery ? { flushEvery: options.flushEvery } : {}),
    };
    sources.unshift(await fetchArtifact(engine, base, databaseArtifact(base.manifest), path, destinations, { decode: true, sync: false, image }));
  } finally {
    if (overlay) {
      overlay.close();
      await rm(spill, { force: true });
    }
  }
  return sources;
}

/** A database image to write, with a chain's pages substituted, and what its bytes must hash to. */
interface ImageTarget {
  overlay?: ChainPages;
  sha256: string;
  size: number;
  /** The backup whose snapshot it is, for messages. */
  id: string;
  /**
   * Start writing the image back to disk while it is written: an `fdatasync` in the thread pool
   * after every this many bytes, for a caller that syncs the file next. The kernel would otherwise
   * hold the whole image dirty until that sync, and the sync would write it all at once.
   */
  flushEvery?: number;
}

/**
 * Downloads one artifact to `path` (decoded with `decode`, else as stored), trying each
 * destination that holds it until the bytes check out: the stored bytes against the artifact's
 * SHA-256 and, decoded, the decoded SHA-256 — or, with `image`, the image written against its
 * snapshot SHA-256 (one hash of the written bytes, the chain's pages applied). Key problems
 * (no private key; a wrong key, once the bytes that would not decrypt are found intact) fail at
 * once: another destination would not help. Returns the destination used.
 */
export async function fetchArtifact(
  engine: ArtifactReader,
  entry: CatalogEntry,
  artifact: Artifact,
  path: string,
  destinations: readonly Destination[],
  options: { decode: boolean; sync?: boolean; image?: ImageTarget } = { decode: true },
): Promise<string> {
  return fromFirstGood(engine, entry, artifact, destinations, async (destination) => {
    // The file is opened before anything can fail and closed before it is removed, so no partial
    // (possibly decrypted) bytes can outlive a failed attempt.
    const file = await open(path, 'wx', 0o600);
    try {
      const image = options.image && new ImageSink(file.fd, options.image);
      await transfer(engine, destination, entry.manifest.id, artifact, image ?? file.createWriteStream(), options.decode, options.decode && !image);
      image?.check(destination.name);
      if (options.sync ?? true) await syncFile(path);
    } catch (error) {
      await rm(path, { force: true });
      throw noSpace(error, path, entry.manifest.id, artifact);
    } finally {
      if (file.fd !== -1) await file.close(); // the stream closes it when the transfer ran
    }
  });
}

/**
 * Writes a decoded full image to a file descriptor, positionally, with the pages of `overlay`
 * substituted and the pages past the image's end (a chain that grew) appended; hashes exactly
 * the bytes written. Chunks queued while a write runs go out together in one `writev`. Given a
 * decoder that recycles (`recycleInto`), it hands each chunk back once its write has completed.
 */
class ImageSink extends Writable {
  readonly #fd: number;
  readonly #target: ImageTarget;
  readonly #hash = createHash('sha256');
  #recycler: Recycling | undefined;
  /** Bytes of the image received. */
  #received = 0;
  #written = 0;
  /** Next entry of `overlay.pages` not yet fully written. */
  #next = 0;
  /** `#written` when the last flush started; the flush running, if any. */
  #flushedAt = 0;
  #flushing: Promise<void> | undefined;
  /** A flush's failure, reported by the next write (a failed fdatasync is not reported twice by the kernel). */
  #flushError: Error | undefined;

  constructor(fd: number, target: ImageTarget) {
    super({ highWaterMark: 1 << 20 });
    this.#fd = fd;
    this.#target = target;
  }

  /**
   * Hands the chunks written back to `decoder`, which pushes them: the caller makes sure this
   * sink is their last reader. Their bytes are then not counted as garbage (`streamed`).
   */
  recycleInto(decoder: Recycling): void {
    this.#recycler = decoder;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    const position = this.#received;
    const overlay = this.#target.overlay;
    const limit = overlay ? overlay.baseLimit * overlay.pageSize : Infinity;
    const buffers: Buffer[] = [];
    /** The chunks as received, to recycle: `buffers` holds a piece of the last one the limit cuts. */
    const received: Buffer[] = [];
    for (const { chunk } of chunks) {
      const start = this.#received;
      this.#received += chunk.length;
      received.push(chunk);
      if (start >= limit) continue;
      const part = start + chunk.length > limit ? chunk.subarray(0, limit - start) : chunk;
      if (overlay) this.#substitute(overlay, part, start);
      buffers.push(part);
    }
    const recycle = (error?: Error | null): void => {
      for (const chunk of received) this.#recycler?.recycle(chunk);
      callback(error);
    };
    if (buffers.length === 0) return recycle();
    this.#emit(buffers, position, recycle, this.#recycler === undefined);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const done = (error?: Error | null): void => void this.#settled(error).then(callback);
    const overlay = this.#target.overlay;
    if (!overlay || this.#written >= overlay.pageCount * overlay.pageSize) return done();
    // Pages past the image's end (or past a link's truncation): from their delta, else zeros.
    const { pageSize, pageCount } = overlay;
    const first = Math.ceil(this.#written / pageSize);
    const batch = Math.max(1, Math.floor((1 << 20) / pageSize));
    const writeFrom = (page: number): void => {
      if (page >= pageCount) return done();
      const count = Math.min(batch, pageCount - page);
      const buffer = Buffer.alloc(count * pageSize);
      for (let i = 0; i < count; i++) overlay.copy(page + i, buffer, i * pageSize);
      this.#emit([buffer], page * pageSize, (error) => (error ? done(error) : writeFrom(page + count)), true);
    };
    if (this.#written % pageSize !== 0) return done(new Error(`the full image is not a whole number of ${pageSize}-byte pages`));
    writeFrom(first);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // The caller closes the descriptor once the stream is done: no flush may still be using it.
    void this.#settled(error).then(callback);
  }

  /** `error`, else a flush's failure, once no flush runs. */
  async #settled(error?: Error | null): Promise<Error | null | undefined> {
    await this.#flushing;
    return error ?? this.#flushError;
  }

  /** Throws `backup_corrupt` when the bytes written are not the snapshot. */
  check(destination: string): void {
    const { sha256, size, id, overlay } = this.#target;
    if (this.#written === size && this.#hash.digest('hex') === sha256) return;
    const why = overlay
      ? `replaying the chain of ${id} from ${destination} did not reproduce its snapshot (SHA-256 differs); a link is inconsistent — restore an earlier backup`
      : `the database of ${id} at ${destination} decodes to other bytes than were backed up`;
    throw new CoreError(CoreErrorCode.BackupCorrupt, why, { context: { id, destination } });
  }

  #substitute(overlay: ChainPages, chunk: Buffer, start: number): void {
    const { pages, pageSize } = overlay;
    const end = start + chunk.length;
    while (this.#next < pages.length) {
      // A run of pages that follow one another in the image and in the spill file: one read.
      const run = overlay.run(this.#next);
      const page = pages[this.#next]!;
      const runStart = page * pageSize;
      const runEnd = runStart + run * pageSize;
      if (runStart >= end) return;
      const from = Math.max(runStart, start);
      const to = Math.min(runEnd, end);
      if (to > from) overlay.copy(page, chunk, from - start, from - runStart, to - from);
      if (runEnd > end) {
        // The rest is in the next chunk: resume at the first page not wholly in this one.
        this.#next += Math.floor((end - runStart) / pageSize);
        return;
      }
      this.#next += run;
    }
  }

  /**
   * Hashes `buffers` and writes them, contiguous, at `position`; calls back once the write has
   * completed, not before. `garbage`: the buffers are left to the collector after (not recycled).
   */
  #emit(buffers: Buffer[], position: number, callback: (error?: Error | null) => void, garbage: boolean): void {
    if (this.#flushError) return callback(this.#flushError);
    let length = 0;
    for (const buffer of buffers) {
      this.#hash.update(buffer);
      length += buffer.length;
    }
    this.#written += length;
    if (garbage) streamed(length);
    writeAllAt(this.#fd, buffers, position, length, (error) => {
      if (!error) this.#flush();
      callback(error);
    });
  }

  /** Starts a flush when `flushEvery` bytes were written since the last one and none runs. */
  #flush(): void {
    const every = this.#target.flushEvery;
    if (every === undefined || this.#flushing || this.#written - this.#flushedAt < every) return;
    this.#flushedAt = this.#written;
    this.#flushing = new Promise((resolve) =>
      fdatasync(this.#fd, (error) => {
        if (error) this.#flushError ??= error;
        else crashPoint('restore.image-flushed');
        this.#flushing = undefined;
        resolve();
      }),
    );
  }
}

/** `error`, or `no_space` (what a restore writing `path` needs free) when it is ENOSPC. */
function noSpace(error: unknown, path: string, backupId: string, artifact: Artifact): unknown {
  if (systemErrorCode(error) !== 'ENOSPC') return error;
  return new CoreError(CoreErrorCode.NoSpace, `no space left in ${dirname(path)} while restoring ${backupId}; free ${artifact.decodedSize} bytes there`, {
    cause: error,
  });
}

/** A small artifact's decoded bytes (page hashes, file-set indexes), from the first good destination. */
export async function fetchArtifactBytes(
  engine: ArtifactReader,
  entry: CatalogEntry,
  artifact: Artifact,
  destinations: readonly Destination[],
): Promise<Buffer> {
  let bytes = Buffer.alloc(0);
  await fromFirstGood(engine, entry, artifact, destinations, async (destination) => {
    const chunks: Buffer[] = [];
    await transfer(
      engine,
      destination,
      entry.manifest.id,
      artifact,
      new Writable({
        write: (chunk: Buffer, _e, callback) => {
          chunks.push(chunk);
          callback();
        },
      }),
      true,
    );
    bytes = Buffer.concat(chunks);
  });
  return bytes;
}

const WRONG_KEY = 'stowage.crypto.wrong_key';
const KEY_PROBLEMS = ['wrong_key', 'cannot_decrypt', 'key_missing', 'key_file_permissions', 'invalid_key', 'invalid_config'].map((c) => `stowage.crypto.${c}`);

async function fromFirstGood(
  engine: ArtifactReader,
  entry: CatalogEntry,
  artifact: Artifact,
  destinations: readonly Destination[],
  attempt: (destination: Destination) => Promise<void>,
): Promise<string> {
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
  throw new CoreError(
    CoreErrorCode.BackupCorrupt,
    `no good copy of ${artifact.key} (backup ${entry.manifest.id}): ${problems.join('; ') || 'no destination holds it'}`,
    {
      context: { backupId: entry.manifest.id, key: artifact.key, problems },
    },
  );
}

/**
 * Streams one artifact from `destination` into `sink`, checking what was stored and, decoded with
 * `checkDecoded`, what it holds (else the sink checks it). A wrong-key failure of decryption is
 * judged by the stored bytes: a damaged session-key packet fails exactly as a wrong passphrase or
 * private key does, so the download is read to its end and hashed, and bytes other than the
 * manifest's are damage at this destination (the next one may hold a good copy); only intact
 * bytes that do not decrypt mean the key is wrong.
 */
async function transfer(
  engine: ArtifactReader,
  destination: Destination,
  backupId: string,
  artifact: Artifact,
  sink: Writable,
  decode: boolean,
  checkDecoded = decode,
): Promise<void> {
  const stored = new DigestStream();
  const decoded = checkDecoded ? [new DigestStream()] : [];
  // Progress counts what a restore writes (decoded bytes), else what is downloaded.
  let done = 0;
  const progress = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      engine.progress(
        decode
          ? { phase: 'restore', done: (done += chunk.length), total: artifact.decodedSize }
          : { phase: 'download', done: (done += chunk.length), total: artifact.size },
      );
      callback(null, chunk);
    },
  });
  const decoders = decode ? await engine.codec.decoders(artifact, backupId) : [];
  // An image sink or a delta receiver is the last reader of what the decoders push (no digest of decoded bytes here).
  const last = decoders.at(-1);
  if ((sink instanceof ImageSink || sink instanceof DeltaReceiver) && decoded.length === 0 && recycles(last)) sink.recycleInto(last);
  // The download and the decoding are two pipelines, so the download can outlive a failed decoding.
  const input = new PassThrough();
  let failure: unknown;
  /** The decoding failure that stopped the download (any but a wrong key). */
  let stopped: unknown;
  const decoding = pipeline([input, ...decoders, progress, ...decoded, sink]).then(
    () => undefined,
    (error: unknown) => (failure = error ?? new Error('decoding failed')),
  );
  try {
    await pipeline(await destination.adapter.get(artifact.key), stored, async (chunks: AsyncIterable<Buffer>) => {
      for await (const chunk of chunks) {
        if (failure === undefined && !input.write(chunk)) await Promise.race([once(input, 'drain').catch(() => undefined), decoding]);
        if (failure !== undefined && !isStowageError(failure, WRONG_KEY)) throw (stopped = failure); // else drained, to be hashed
      }
      input.end();
    });
  } catch (caught) {
    const error = stopped ?? caught;
    input.destroy();
    await decoding;
    // A decoder failing on bytes that do not match the manifest is damage, not a key problem.
    if (!isStowageError(error) || isStowageError(error, ...KEY_PROBLEMS) || intact(stored, artifact)) throw error;
    throw damaged(destination, artifact, stored.size, error);
  }
  await decoding;
  if (!intact(stored, artifact)) throw damaged(destination, artifact, stored.size, failure);
  if (failure !== undefined) throw failure;
  const [digest] = decoded;
  if (digest && (digest.size !== artifact.decodedSize || digest.digest() !== artifact.decodedSha256)) {
    throw new CoreError(CoreErrorCode.BackupCorrupt, `${artifact.key} at ${destination.name} decodes to other bytes than were backed up`, {
      context: { destination: destination.name, key: artifact.key },
    });
  }
}

/** Whether `stage` takes its chunks back (`Recycling`: zstd decoding). */
const recycles = (stage: Duplex | undefined): stage is Duplex & Recycling => typeof (stage as Partial<Recycling> | undefined)?.recycle === 'function';

/** Whether the bytes `stored` has seen so far are the whole artifact, as the manifest records it. */
const intact = (stored: DigestStream, artifact: Artifact) => stored.size === artifact.size && stored.digest() === artifact.sha256;

function damaged(destination: Destination, artifact: Artifact, read: number, cause?: unknown): CoreError {
  return new CoreError(
    CoreErrorCode.BackupCorrupt,
    `${artifact.key} is damaged at ${destination.name} (${read} of ${artifact.size} bytes read${read === artifact.size ? ', SHA-256 differs' : ''})`,
    {
      context: { destination: destination.name, key: artifact.key },
      cause,
    },
  );
}
