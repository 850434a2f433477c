import type { Readable } from 'node:stream';

/**
 * The storage-adapter contract. An adapter stores opaque bytes under string keys at one
 * destination (a folder, a bucket prefix, …). Everything else — retries, concurrency limits,
 * encryption, verification policy — lives outside adapters, in wrappers and in the engine.
 *
 * Verification is in one layer: an adapter reports what the store says (the checksums in
 * `put`'s result and in `stat`) and what it sent (`put`'s `sent`), and never judges them; the
 * engine compares them with what it expects and records the method that actually ran.
 *
 * Keys are relative, `/`-separated paths such as `full/full_backup_20240101_020000.sqlite3`:
 * no leading `/`, no empty, `.` or `..` segments, no backslashes or NUL (see `assertValidKey`).
 *
 * Errors: every method rejects with a `StorageError` whose `code` is one of `StorageErrorCode`;
 * vendor errors are mapped (a missing object is always `object_not_found`, never a generic error;
 * a network hiccup or a 5xx/429 is `transient`, the only code the retry wrapper retries).
 */
export interface StorageAdapter {
  /** Where this adapter stores, for messages and listings. Never contains a secret. */
  readonly description: string;
  /** What the backend can do; the engine adapts its verification and locking to it. */
  readonly capabilities: Capabilities;

  /**
   * Stores `body` under `key`, replacing an existing object unless `options.ifNoneMatch` is set.
   *
   * The adapter checks that the bytes it read from `body.open()` are exactly `body.size` bytes
   * with SHA-256 `body.sha256` and otherwise rejects with `checksum_mismatch`, leaving no new
   * object visible under `key` (an existing one stays as it was). The object becomes visible
   * atomically: a reader sees the old object, no object, or the whole new one — never a part.
   *
   * Stream ownership: each call to `body.open()` returns a fresh stream owned by the adapter,
   * which must consume or destroy it. A wrapper may call `put` again with the same body (retry);
   * `open()` then starts over from the first byte.
   *
   * Idempotent: putting the same body twice leaves the same object.
   *
   * Resolves with the stored object's facts as the store reports them (`checksums`: the store's
   * own words, from the write's answer or a HEAD, never copied from what was sent) and `sent`,
   * the checksums of the bytes the adapter read and sent. The adapter does not compare the two.
   *
   * @throws `already_exists` when `ifNoneMatch` is set and `key` exists (only when
   *   `capabilities.conditionalPut`; otherwise the option is a usage error: `unsupported`).
   * @throws `checksum_mismatch`, `permission_denied`, `no_space`, `transient`, `aborted`.
   */
  put(key: string, body: PutBody, options?: PutOptions): Promise<StoredObject>;

  /**
   * Opens a stream of the object's bytes, or of `options.range` of them.
   *
   * The promise rejects with `object_not_found` before any byte when the object does not exist;
   * errors after that (connection reset, abort) are emitted on the stream as `StorageError`s.
   * The caller owns the stream and must consume or destroy it.
   */
  get(key: string, options?: GetOptions): Promise<Readable>;

  /**
   * Facts about one object, or `undefined` when it does not exist (not an error).
   * `checksums` holds what the backend reports without the caller downloading the object.
   */
  stat(key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo | undefined>;

  /**
   * Every object whose key starts with `prefix` (a plain string prefix, not a folder), paginated
   * underneath so memory stays bounded. Order is unspecified. Objects written or deleted during
   * the listing may or may not appear. Never yields an adapter's own temporary objects.
   */
  list(prefix: string, options?: { signal?: AbortSignal }): AsyncIterable<ObjectInfo>;

  /** Deletes the given keys. Missing keys are not an error (idempotent). */
  delete(keys: readonly string[], options?: { signal?: AbortSignal }): Promise<void>;

  /**
   * Moves the object to `storageClass` (one of `capabilities.archiveClasses`, or the backend's
   * hot class) in place: a server-side copy onto the same key, so the bytes never leave the
   * backend. Resolves with what the backend reports of the object afterwards (size, checksums,
   * ETag, class), as `stat` would: like `put`, it does not verify the bytes — the caller compares
   * them with what it expects (core: with the manifest, and with what `stat` reported before).
   *
   * Idempotent: an object already in `storageClass` is left as it is (no request is made). An
   * object in an archive class can only be copied once it is readable (thaw it first).
   *
   * @throws `object_not_found`; `object_archived` when the object is archived and not thawed;
   *   `unsupported` for a class the backend does not know; `permission_denied`, `transient`,
   *   `aborted`.
   */
  setStorageClass?(key: string, storageClass: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo>;

  /**
   * Asks the backend to thaw an archived object, making it readable for `options.days` days;
   * resolves with the object's facts after the request (`archive.state` is then `thawing` or,
   * on a backend that thaws at once, `readable`).
   *
   * Idempotent: a thaw already under way, or an object already readable, is not an error (a
   * readable object keeps its thaw; no new request is made). `tier` is a hint on backends
   * whose thaw speed is fixed for the class.
   *
   * @throws `object_not_found`; `unsupported` when the object is not in an archive class;
   *   `permission_denied`, `transient`, `aborted`.
   */
  requestThaw?(key: string, options: ThawOptions): Promise<ObjectInfo>;

  /** The bucket's lifecycle rules, on a backend that has them (cloud buckets; absent for a folder). */
  readonly lifecycle?: BucketLifecycle;

  /** Releases connections and handles. The adapter is unusable afterwards. */
  close?(): Promise<void>;
}

/**
 * A transition rule of a bucket lifecycle, provider-neutral: objects whose adapter key starts with
 * `prefix` (e.g. `full/`) move to `storageClass` once they are `days` days old. The backend ages
 * each object on its own: a rule cannot keep a chain of backups together.
 */
export interface LifecycleRule {
  prefix: string;
  days: number;
  storageClass: string;
}

/**
 * Stowage's own lifecycle rules in the bucket: those whose id starts with `stowage-` and whose
 * prefix lies under the adapter's prefix. Every other rule of the bucket is kept as it is.
 */
export interface BucketLifecycle {
  /** The configuration document the provider takes for `rules` (S3: JSON, as `aws s3api put-bucket-lifecycle-configuration` takes it; OSS: XML). */
  document(rules: readonly LifecycleRule[]): { format: 'json' | 'xml'; text: string };
  /** Stowage's rules for this adapter's prefix, as the bucket has them now. */
  get(options?: { signal?: AbortSignal }): Promise<LifecycleRule[]>;
  /**
   * Replaces Stowage's rules for this adapter's prefix by `rules` (none: removes them), keeping the
   * bucket's other rules, and resolves with Stowage's rules read back. Idempotent.
   * @throws `unsupported` for a storage class the backend cannot transition to; `permission_denied`, `transient`.
   */
  put(rules: readonly LifecycleRule[], options?: { signal?: AbortSignal }): Promise<LifecycleRule[]>;
}

/** How fast a thaw should be: faster tiers cost more (S3 and OSS Cold Archive name them alike). */
export type ThawTier = 'expedited' | 'standard' | 'bulk';

export interface ThawOptions {
  /** Default `standard`. */
  tier?: ThawTier;
  /** How long the thawed copy stays readable, in whole days (at least 1; the backend caps it). */
  days: number;
  signal?: AbortSignal;
}

/** A rewindable body for `put`: the same bytes every time `open()` is called. */
export interface PutBody {
  /** A fresh stream from the first byte; the adapter owns it. */
  open(): Readable;
  /** Exact length in bytes. */
  readonly size: number;
  /** Lower-case hex SHA-256 of the bytes. */
  readonly sha256: string;
  /** CRC-64/ECMA-182 (as Aliyun OSS computes it) of the bytes, as an unsigned decimal string. */
  readonly crc64ecma?: string;
  /**
   * A local file that holds exactly the bytes `open()` returns and does not change while `put`
   * runs. An adapter may read or copy the file instead of calling `open()` (the local adapter
   * copies it in the kernel, without the bytes passing through JS); the size and SHA-256 checks
   * hold either way. A wrapper that changes what `open()` returns must not pass `path` on.
   */
  readonly path?: string;
  /**
   * Offered with `path` when the adapter may hard-link that file into its store instead of copying
   * it (the local adapter, on the same file system). Calling it claims the file: true for the first
   * claim only, so that of several destinations on one file system one links and the others still
   * store copies of their own. Once it is claimed the caller never writes to the file again; it only
   * removes it. The size and SHA-256 checks hold as for a copy.
   */
  readonly claimLink?: () => boolean;
}

export interface PutOptions {
  /** Fail with `already_exists` instead of replacing an existing object. */
  ifNoneMatch?: boolean;
  signal?: AbortSignal;
}

export interface GetOptions {
  /** A byte range: `length` bytes from `offset` (to the end when `length` is omitted). */
  range?: { offset: number; length?: number };
  signal?: AbortSignal;
}

/** Checksums a backend may report for a stored object. Hex unless noted. */
export interface ObjectChecksums {
  sha256?: string;
  /** Unsigned decimal string, as OSS reports `x-oss-hash-crc64ecma`. */
  crc64ecma?: string;
  /** Base64, as S3 reports full-object CRC64NVME. */
  crc64nvme?: string;
  /**
   * S3's composite checksum of an object uploaded in parts with SHA-256, as S3 reports it: the
   * base64 SHA-256 of the parts' binary SHA-256s, then `-<parts>`. Not the object's SHA-256; it
   * proves the object's bytes only against the part SHA-256s of a known upload (`sent`).
   */
  sha256Composite?: string;
  md5?: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
  etag?: string | undefined;
  checksums: ObjectChecksums;
  /** The backend's storage class, in its own spelling (`Archive`, `DEEP_ARCHIVE`), when it reports one. */
  storageClass?: string;
  /**
   * Present only for an object in an archive class (see `Capabilities.archiveClasses`), when
   * the adapter learned its state (`stat` always; `list` when the listing says it).
   */
  archive?: ArchiveStatus;
}

/** What `put` resolves with. */
export interface StoredObject extends ObjectInfo {
  /**
   * Checksums the adapter computed over the bytes it read from the body and sent (whose size and
   * SHA-256 it checked against the body's declaration), for the algorithms in
   * `capabilities.serverChecksums` it computes. The engine compares them with `checksums` and
   * records them in the manifest, so that a later `stat` verifies without a download. Absent or
   * empty when the adapter computes none (the engine then trusts only a reported SHA-256).
   */
  sent?: ObjectChecksums;
}

/**
 * Whether an archived object can be read: `archived` (frozen; `get` fails with
 * `object_archived`), `thawing` (a thaw was requested and is under way), `readable` (thawed,
 * until `thawExpires`, after which it is `archived` again).
 */
export interface ArchiveStatus {
  state: 'archived' | 'thawing' | 'readable';
  /** When a thawed copy stops being readable (only with `readable`). */
  thawExpires?: Date;
}

export type ChecksumAlgorithm = keyof ObjectChecksums;

export interface Capabilities {
  /**
   * What the adapter can verify without a download: checksums `stat` (and `put`) report, which
   * the engine compares with the manifest's to verify a replica (the conformance suite requires
   * them for objects of up to 5 MiB). For each one other than `sha256`, `put` also reports the
   * value it computed in `sent`. An object that `stat` reports none of them for is verified by a
   * read-back.
   */
  readonly serverChecksums: readonly ChecksumAlgorithm[];
  /** `put` honours `ifNoneMatch` atomically (usable for locks and collision-free names). */
  readonly conditionalPut: boolean;
  /** `get` honours `range` without reading the whole object. */
  readonly rangeReads: boolean;
  /** How many requests the backend handles well at once (a hint for the limit wrapper). */
  readonly maxParallelism: number;
  /**
   * Storage classes whose objects must be thawed before `get` (e.g. `Archive`, `ColdArchive`).
   * Absent or empty: the backend has none. When non-empty, the adapter implements
   * `setStorageClass` and `requestThaw` and reports `storageClass` and `archive` in `stat`.
   */
  readonly archiveClasses?: readonly string[];
  /**
   * What each of `archiveClasses` costs in time, as the backend documents it: how long a thaw
   * takes per tier (a tier missing is not offered for the class) and the minimum storage duration
   * (an object deleted or moved out earlier is charged as if it had stayed that long).
   */
  readonly archiveClassFacts?: Readonly<Record<string, ArchiveClassFacts>>;
}

/** Time facts of one archive storage class (see `Capabilities.archiveClassFacts`). */
export interface ArchiveClassFacts {
  /** The longest a thaw takes, in ms, per tier the class offers. */
  readonly thawMs: Readonly<Partial<Record<ThawTier, number>>>;
  /** Days an object is charged for at least, however early it is deleted. */
  readonly minimumStorageDays: number;
}
