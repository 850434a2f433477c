// What AWS S3 does for archive storage classes and s3rver 3.7 does not, added over s3rver's own
// store for the launcher (scripts/s3rver.mjs):
// - GLACIER and DEEP_ARCHIVE objects (kept in the object's `x-amz-storage-class` metadata, which
//   s3rver already stores and returns on HEAD/GET) refuse GetObject, and serve as no CopyObject
//   source, with 403 InvalidObjectState until a RestoreObject has completed
//   (https://docs.aws.amazon.com/AmazonS3/latest/API/API_RestoreObject.html).
// - RestoreObject (`POST /bucket/key?restore`, `<RestoreRequest><Days>` and
//   `<GlacierJobParameters><Tier>`): 202 when a restore starts, 409 RestoreAlreadyInProgress while
//   one runs, 200 on a restored copy (its life is extended), 403 InvalidObjectState for an object
//   not archived. HEAD (and GET) then report `x-amz-restore: ongoing-request="true"`, later
//   `ongoing-request="false", expiry-date="<HTTP date>"` (midnight UTC after the days have run).
//   Restores are timed by a thaw clock the tests move with `POST /_stowage/thaw-clock?advance=<ms>`
//   (no signature: it only exists on this test server), so a 48-hour Deep Archive thaw takes none.
// - ListObjects(V2) report each object's own StorageClass (s3rver says STANDARD for all).
// - CopyObject takes `x-amz-storage-class` (a copy without it is STANDARD, as on AWS) and
//   `x-amz-copy-source-if-match`; a copy onto the same key is allowed when the class changes. The
//   copy keeps the metadata (`COPY` directive) and its checksum is recomputed from the copied bytes.
// - Put/Get/DeleteBucketLifecycleConfiguration store, return and remove the bucket's lifecycle XML
//   after checking its rules' shape (rules are not executed).
// A write or delete of a key forgets its restore.
import { readFile, rm, writeFile } from 'node:fs/promises';
import S3Error from 's3rver/lib/models/error.js';
import S3Object from 's3rver/lib/models/object.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** How long a restore takes per archive class and tier: the upper end of what AWS documents. */
export const RESTORE_DURATIONS = {
  GLACIER: { Expedited: 5 * MINUTE, Standard: 5 * HOUR, Bulk: 12 * HOUR },
  DEEP_ARCHIVE: { Standard: 12 * HOUR, Bulk: 48 * HOUR },
};
const STORAGE_CLASS = 'x-amz-storage-class';
const CHECKSUM_HEADERS = ['x-amz-checksum-sha256', 'x-amz-checksum-crc32', 'x-amz-checksum-crc64nvme'];

/**
 * Installs archive semantics on `server`. `serialised(bucket, key, fn)` orders writes to one key
 * (shared with the other behaviours); `checksumOf(algorithm, bytes)` gives a base64 checksum.
 * `corruptCopies` (a fault for tests) flips the first byte of every copy, as a broken backend would.
 * Returns `{ handlerFor, control }`: `control(ctx)` answers the thaw-clock requests.
 */
export function addArchiveBehaviour(server, { serialised, checksumOf, corruptCopies = false }) {
  const { store } = server;
  let clockOffset = 0;
  const now = () => Date.now() + clockOffset;
  /** `bucket/key` → { readyAt, expiresAt } in thaw-clock ms. */
  const restores = new Map();

  /** Where the restore of an object stands: `frozen`, `ongoing` or `restored` (an expired one is forgotten). */
  function restoreState(bucket, key) {
    const restore = restores.get(`${bucket}/${key}`);
    if (!restore) return 'frozen';
    if (now() < restore.readyAt) return 'ongoing';
    if (now() < restore.expiresAt) return 'restored';
    restores.delete(`${bucket}/${key}`);
    return 'frozen';
  }

  const metadataOf = async (bucket, key) => ((await store.existsObject(bucket, key)) ? store.getMetadata(bucket, key) : undefined);
  const archived = (metadata) => metadata?.[STORAGE_CLASS] in RESTORE_DURATIONS;

  function assertReadable(bucket, key, metadata) {
    if (archived(metadata) && restoreState(bucket, key) !== 'restored') {
      throw new S3Error('InvalidObjectState', "The operation is not valid for the object's storage class", { StorageClass: metadata[STORAGE_CLASS] });
    }
  }

  function restoreHeader(bucket, key) {
    const state = restoreState(bucket, key);
    if (state === 'frozen') return undefined;
    if (state === 'ongoing') return 'ongoing-request="true"';
    return `ongoing-request="false", expiry-date="${new Date(restores.get(`${bucket}/${key}`).expiresAt).toUTCString()}"`;
  }

  async function readObject(ctx, bucket, key, next) {
    const metadata = await metadataOf(bucket, key);
    if (ctx.method === 'GET') assertReadable(bucket, key, metadata);
    await next();
    const header = metadata && archived(metadata) ? restoreHeader(bucket, key) : undefined;
    if (header) ctx.set('x-amz-restore', header);
  }

  async function forgetting(_ctx, bucket, key, next) {
    await next();
    restores.delete(`${bucket}/${key}`);
  }

  async function restoreObject(ctx, bucket, key) {
    const metadata = await metadataOf(bucket, key);
    if (!metadata) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
    const storageClass = metadata[STORAGE_CLASS];
    const durations = RESTORE_DURATIONS[storageClass];
    if (!durations)
      throw new S3Error('InvalidObjectState', "Restore is not allowed for the object's current storage class", { StorageClass: storageClass ?? 'STANDARD' });
    const xml = Buffer.concat(await ctx.req.toArray()).toString('utf8');
    const days = Number(/<Days>\s*(\d+)\s*<\/Days>/.exec(xml)?.[1]);
    if (!Number.isSafeInteger(days) || days < 1)
      throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
    const tier = /<Tier>\s*(\w+)\s*<\/Tier>/.exec(xml)?.[1] ?? 'Standard';
    if (!(tier in durations)) {
      throw new S3Error('InvalidArgument', `The ${tier} tier is not available for objects in the ${storageClass} storage class.`, {
        ArgumentName: 'Tier',
        ArgumentValue: tier,
      });
    }
    const id = `${bucket}/${key}`;
    const state = restoreState(bucket, key);
    if (state === 'ongoing') throw new S3Error('RestoreAlreadyInProgress', 'Object restore is already in progress');
    const readyAt = state === 'restored' ? restores.get(id).readyAt : now() + durations[tier];
    // AWS rounds a restored copy's expiry up to the next midnight UTC.
    const expiresAt = Math.ceil((Math.max(readyAt, now()) + days * DAY) / DAY) * DAY;
    restores.set(id, { readyAt, expiresAt });
    ctx.status = state === 'restored' ? 200 : 202;
    ctx.body = '';
  }

  async function copyObject(ctx, bucket, key) {
    const source = decodeURIComponent(ctx.get('x-amz-copy-source').replace(/^\//, '').split('?')[0]);
    const [sourceBucket, ...rest] = source.split('/');
    const sourceKey = rest.join('/');
    if (!(await store.getBucket(sourceBucket))) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist', { BucketName: sourceBucket });
    const storageClass = ctx.get(STORAGE_CLASS) || 'STANDARD';
    if (!S3Object.STORAGE_CLASSES.includes(storageClass)) throw new S3Error('InvalidStorageClass', 'The storage class you specified is not valid');
    await serialised(bucket, key, async () => {
      const metadata = await metadataOf(sourceBucket, sourceKey);
      if (!metadata) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: sourceKey });
      const ifMatch = ctx.get('x-amz-copy-source-if-match');
      if (ifMatch && ifMatch.replace(/"/g, '') !== String(metadata.etag).replace(/"/g, '')) {
        throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'x-amz-copy-source-If-Match' });
      }
      assertReadable(sourceBucket, sourceKey, metadata);
      const replace = ctx.get('x-amz-metadata-directive') === 'REPLACE';
      if (sourceBucket === bucket && sourceKey === key && !replace && storageClass === (metadata[STORAGE_CLASS] ?? 'STANDARD')) {
        throw new S3Error(
          'InvalidRequest',
          "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        );
      }
      const bytes = await readFile(store.getResourcePath(sourceBucket, sourceKey, 'object'));
      if (corruptCopies && bytes.length > 0) bytes[0] ^= 0xff;
      const kept = { ...(replace ? ctx.headers : metadata) };
      for (const name of ['etag', 'last-modified', 'content-length']) delete kept[name];
      kept[STORAGE_CLASS] = storageClass;
      // The copy's checksum is the copied bytes' own, under the source's algorithm.
      const algorithm = CHECKSUM_HEADERS.find((name) => metadata[name] !== undefined);
      if (algorithm) {
        for (const name of CHECKSUM_HEADERS) delete kept[name];
        kept[algorithm] = await checksumOf(algorithm.slice('x-amz-checksum-'.length), bytes);
        kept['x-amz-checksum-type'] = 'FULL_OBJECT';
      }
      await store.putObject(new S3Object(bucket, key, bytes, kept));
      restores.delete(`${bucket}/${key}`);
      const stored = await store.getMetadata(bucket, key);
      ctx.body = { CopyObjectResult: { LastModified: new Date(stored['last-modified']).toISOString(), ETag: stored.etag } };
    });
  }

  /** After s3rver listed a bucket: each object's own storage class. */
  async function listObjects(ctx, bucket, _key, next) {
    await next();
    const result = ctx.body?.ListBucketResult;
    for (const entry of [result?.Contents ?? []].flat()) {
      const metadata = await metadataOf(bucket, entry.Key).catch(() => undefined);
      entry.StorageClass = metadata?.[STORAGE_CLASS] ?? 'STANDARD';
    }
  }

  const lifecyclePath = (bucket) => store.getResourcePath(bucket, undefined, 'lifecycle.xml');

  async function bucketLifecycle(ctx, bucket) {
    if (ctx.method === 'PUT') {
      const xml = Buffer.concat(await ctx.req.toArray()).toString('utf8');
      const rules = [...xml.matchAll(/<Rule>([\s\S]*?)<\/Rule>/g)].map(([, rule]) => rule);
      const wellFormed =
        xml.includes('<LifecycleConfiguration') &&
        rules.length > 0 &&
        rules.every((rule) => /<Status>(Enabled|Disabled)<\/Status>/.test(rule)) &&
        [...xml.matchAll(/<StorageClass>([^<]*)<\/StorageClass>/g)].every(([, name]) => S3Object.STORAGE_CLASSES.includes(name));
      if (!wellFormed) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
      await writeFile(lifecyclePath(bucket), xml);
      ctx.status = 200;
      ctx.body = '';
      return;
    }
    if (ctx.method === 'DELETE') {
      await rm(lifecyclePath(bucket), { force: true });
      ctx.status = 204;
      return;
    }
    const xml = await readFile(lifecyclePath(bucket), 'utf8').catch(() => undefined);
    if (xml === undefined) throw new S3Error('NoSuchLifecycleConfiguration', 'The lifecycle configuration does not exist', { BucketName: bucket });
    ctx.type = 'application/xml';
    ctx.body = xml;
  }

  /** The handler for a request, or undefined when another behaviour or s3rver handles it. */
  function handlerFor(ctx, bucket, key) {
    if (!bucket) return undefined;
    const { query, method } = ctx;
    const params = Object.keys(query).filter((name) => name !== 'x-id');
    if (!key) {
      if ('lifecycle' in query) return bucketLifecycle;
      if (method === 'GET' && !('uploads' in query) && !('location' in query)) return listObjects;
      return undefined;
    }
    if (method === 'POST' && 'restore' in query) return restoreObject;
    if (method === 'PUT' && 'x-amz-copy-source' in ctx.headers && !('uploadId' in query)) return copyObject;
    if ((method === 'GET' || method === 'HEAD') && params.length === 0) return readObject;
    if ((method === 'PUT' || method === 'DELETE') && params.length === 0) return forgetting;
    if (method === 'POST' && 'uploadId' in query) return forgetting;
    return undefined;
  }

  /** Answers `POST /_stowage/thaw-clock?advance=<ms>` (the clock only moves forward); false for other requests. */
  function control(ctx) {
    if (ctx.path !== '/_stowage/thaw-clock') return false;
    const ms = Number(ctx.query.advance);
    if (ctx.method !== 'POST' || !(ms >= 0)) {
      ctx.status = 400;
      ctx.body = 'POST /_stowage/thaw-clock?advance=<ms>, ms >= 0\n';
      return true;
    }
    clockOffset += ms;
    ctx.status = 200;
    ctx.type = 'application/json';
    ctx.body = JSON.stringify({ now: new Date(now()).toISOString() });
    return true;
  }

  return { handlerFor, control };
}
