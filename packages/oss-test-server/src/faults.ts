/**
 * What the server can be told to do wrong, for tests of a client's error handling and
 * verification. Each rule applies to the next `times` requests of the given operations.
 */
export type OssFault =
  /** Answer with this OSS error instead of handling the request (e.g. 503 ServiceUnavailable). */
  | { kind: 'error'; status: number; code: string; message?: string }
  /** Destroy the connection without answering (the client sees ECONNRESET / socket hang up). */
  | { kind: 'reset' }
  /** Handle the request normally after a pause (for client timeouts). */
  | { kind: 'delay'; ms: number }
  /**
   * Writes only (PutObject, CopyObject, UploadPart, CompleteMultipartUpload): store the first `keep` bytes
   * (default half) of what was received, answer 200 and report the checksums of what was stored.
   */
  | { kind: 'truncate'; keep?: number }
  /** Writes only: store the received bytes with the middle byte inverted, answer 200 with the stored checksums. */
  | { kind: 'flip-byte' }
  /** Writes, GetObject and HeadObject: leave `x-oss-hash-crc64ecma` out of the response. */
  | { kind: 'omit-crc64' }
  /** GetObject: ignore the Range header and send the whole object with 200, as servers without range support do. */
  | { kind: 'ignore-range' }
  /** GetObject: announce the full Content-Length, send only the first `after` bytes, then drop the connection. */
  | { kind: 'cut-response'; after: number };

/** The OSS API operations the test server implements. */
export type OssOperation =
  | 'PutBucket'
  | 'DeleteBucket'
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'ListMultipartUploads'
  | 'DeleteMultipleObjects'
  | 'PutBucketLifecycle'
  | 'GetBucketLifecycle'
  | 'DeleteBucketLifecycle'
  | 'PutObject'
  | 'CopyObject'
  | 'RestoreObject'
  | 'GetObject'
  | 'HeadObject'
  | 'GetObjectMeta'
  | 'DeleteObject'
  | 'InitiateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts';

export interface OssFaultRule {
  fault: OssFault;
  /**
   * Operations the rule applies to. Default: every operation; writes only for `truncate` and
   * `flip-byte`; writes, GetObject and HeadObject for `omit-crc64`; GetObject for `ignore-range`
   * and `cut-response`.
   */
  operations?: readonly OssOperation[];
  /** How many matching requests it applies to (default 1). */
  times?: number;
}

const WRITES: readonly OssOperation[] = ['PutObject', 'CopyObject', 'UploadPart', 'CompleteMultipartUpload'];
const DEFAULT_OPERATIONS: Partial<Record<OssFault['kind'], readonly OssOperation[]>> = {
  truncate: WRITES,
  'flip-byte': WRITES,
  'omit-crc64': [...WRITES, 'GetObject', 'HeadObject'],
  'ignore-range': ['GetObject'],
  'cut-response': ['GetObject'],
};

/** The pending fault rules of a server; the first matching rule wins and is used up. */
export class OssFaults {
  readonly #rules: { fault: OssFault; operations: readonly OssOperation[] | undefined; left: number }[] = [];

  /** Adds a rule; it applies after the rules added before it are used up. */
  add(rule: OssFaultRule): this {
    const operations = rule.operations ?? DEFAULT_OPERATIONS[rule.fault.kind];
    this.#rules.push({ fault: rule.fault, operations, left: rule.times ?? 1 });
    return this;
  }

  /** The next `times` requests (of `operations`, default all) fail with `status` (default 503 ServiceUnavailable). */
  failNext(times = 1, status = 503, operations?: readonly OssOperation[]): this {
    const code = status === 503 ? 'ServiceUnavailable' : status >= 500 ? 'InternalError' : 'InvalidRequest';
    return this.add({ fault: { kind: 'error', status, code }, times, ...(operations ? { operations } : {}) });
  }

  /** Removes every pending rule. */
  clear(): void {
    this.#rules.length = 0;
  }

  /** Rules not used up yet. */
  get pending(): number {
    return this.#rules.length;
  }

  /** Uses up and returns the fault for a request of `operation`, if a rule matches. */
  take(operation: OssOperation): OssFault | undefined {
    const index = this.#rules.findIndex((rule) => rule.operations === undefined || rule.operations.includes(operation));
    const rule = this.#rules[index];
    if (!rule) return undefined;
    if (--rule.left <= 0) this.#rules.splice(index, 1);
    return rule.fault;
  }
}
