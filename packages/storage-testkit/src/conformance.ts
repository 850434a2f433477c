import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { expect, describe, test } from 'vitest';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { StorageErrorCode, bufferBody, isTransient, sha256Hex, type GetOptions, type ObjectInfo, type PutBody, type StorageAdapter } from '@stowage/storage';

/** A fresh adapter for one test, and how to dispose of what it stored. */
export interface AdapterUnderTest {
  adapter: StorageAdapter;
  /** Called after the test (after `adapter.close()`), e.g. to remove a temp folder or bucket prefix. */
  cleanup?: () => Promise<void>;
}

export interface StorageAdapterSuiteOptions {
  /** Names the adapter in the test report. */
  name: string;
  /** Makes an adapter over a fresh, empty namespace; called once for every test. */
  create: () => Promise<AdapterUnderTest>;
  /** Timeout of each test in ms, for slow remote backends (default: vitest's `testTimeout`). */
  timeoutMs?: number;
  /**
   * For adapters with `capabilities.archiveClasses`: makes every thaw under way (requested with
   * the `expedited` tier) finish, e.g. by moving a test server's clock. Required by those adapters.
   */
  completeThaws?: (adapter: StorageAdapter) => Promise<void> | void;
  /**
   * For adapters that upload large bodies in parts: the part size in bytes the adapters of
   * `create()` use. An object of a little over two and a half parts is then round-tripped (so at
   * least three parts, the last one short) and read in ranges across part boundaries.
   */
  partSize?: number;
  /**
   * An adapter whose backend cannot be reached (e.g. a closed port): every operation must then
   * reject with `transient` — the one code the retry wrapper retries — and never pretend a
   * missing object. Adapters without a network leave it out.
   */
  unreachable?: () => Promise<StorageAdapter>;
  /**
   * For adapters over a network whose test server can cut a download: makes the next GET of an
   * object send its headers and the first `after` body bytes, then drop the connection. A 3 MiB
   * object whose download is cut after 1 MiB must then still read byte-exact (the adapter resumes
   * or restarts it).
   */
  cutNextGet?: (after: number) => Promise<void> | void;
}

/**
 * Declares a vitest `describe` block that checks an adapter against the storage-adapter contract;
 * call it at the top level of a test file. Every test gets its own adapter from `create()` over an
 * empty namespace and disposes of it afterwards, so tests neither see nor clean up after each other.
 *
 * No test is ever skipped: tests that depend on a capability read it from `adapter.capabilities`
 * and check the behaviour the contract asks for either way (ranges are honoured by every adapter;
 * `rangeReads` only says they are cheap). With `conditionalPut` `ifNoneMatch` must be honoured atomically, without it
 * it must be refused as `unsupported`; a checksum is compared with the bytes whenever one is
 * reported (CRC-64/ECMA only checked for its form), and `stat` must report every algorithm listed
 * in `serverChecksums`.
 *
 * Archive tiers: with `archiveClasses`, an object moved to the first archive class must refuse
 * `get` with `object_archived` until a thaw finishes (`completeThaws`), then read byte-exact;
 * without, the adapter must not offer `setStorageClass` or `requestThaw` nor report thaw states.
 *
 * Range semantics checked: `{ offset, length }` yields those bytes; a range reaching past the end
 * yields the bytes up to the end. Ranges starting at or past the end are not checked (backends differ).
 */
export function describeStorageAdapter(options: StorageAdapterSuiteOptions): void {
  const it = test.extend<{ storage: StorageAdapter }>({
    // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures require a destructuring pattern
    storage: async ({}, use) => {
      const { adapter, cleanup } = await options.create();
      try {
        await use(adapter);
      } finally {
        await adapter.close?.();
        await cleanup?.();
      }
    },
  });

  describe(`storage adapter contract: ${options.name}`, options.timeoutMs === undefined ? {} : { timeout: options.timeoutMs }, () => {
    describe('keys', () => {
      it('rejects invalid keys and prefixes with invalid_key on every operation', async ({ storage }) => {
        const invalid = expect.objectContaining({ code: StorageErrorCode.InvalidKey });
        for (const key of ['', '/abs', 'a//b', 'a/', '../up', 'a/./b', 'back\\slash', 'nul\u0000']) {
          await expect(storage.put(key, bufferBody('x')), key).rejects.toEqual(invalid);
          await expect(storage.get(key), key).rejects.toEqual(invalid);
          await expect(storage.stat(key), key).rejects.toEqual(invalid);
          await expect(storage.delete(['ok', key]), key).rejects.toEqual(invalid);
        }
        await expect(listAll(storage, '../')).rejects.toEqual(invalid);
        expect(await listAll(storage, '')).toEqual([]);
      });
    });

    describe('put and get', () => {
      for (const [label, size] of [
        ['an empty object', 0],
        ['a 1-byte object', 1],
        ['a 5 MiB object', 5 * 1024 * 1024],
      ] as const) {
        it(`round-trips ${label}`, async ({ storage }) => {
          const bytes = randomBytes(size);
          const { body, streamsSettled } = trackedBody(bytes);
          const key = `round-trip/${size}.bin`;
          const info = await storage.put(key, body);
          expect(info).toMatchObject({ key, size });
          await expectChecksumsOf(info, bytes);
          // `sent` carries what the adapter computed over the bytes for every reported checksum but SHA-256.
          for (const algorithm of storage.capabilities.serverChecksums.filter((a) => a !== 'sha256')) {
            expect(info.sent?.[algorithm], `sent ${algorithm}`).toBeDefined();
          }
          await expectChecksumsOf({ ...info, checksums: info.sent ?? {} }, bytes);
          expect(streamsSettled()).toBe(true);
          // What `serverChecksums` promises, stat reports without a download, for every size.
          const stat = await storage.stat(key);
          for (const algorithm of storage.capabilities.serverChecksums) expect(stat!.checksums[algorithm], `reported ${algorithm}`).toBeDefined();
          await expectChecksumsOf(stat!, bytes);
          for (const [algorithm, value] of Object.entries(info.sent ?? {})) {
            if (storage.capabilities.serverChecksums.includes(algorithm as never))
              expect(stat!.checksums[algorithm as never], `stat's ${algorithm} = sent`).toBe(value);
          }
          const read = await readObject(storage, key);
          expect(read.length).toBe(size);
          expect(sha256Hex(read)).toBe(sha256Hex(bytes));
        });
      }

      it('replaces an existing object; putting the same body again is harmless', async ({ storage }) => {
        await storage.put('doc', bufferBody('first version'));
        await storage.put('doc', bufferBody('first version'));
        expect((await readObject(storage, 'doc')).toString()).toBe('first version');
        await storage.put('doc', bufferBody('second'));
        expect((await readObject(storage, 'doc')).toString()).toBe('second');
        expect(await storage.stat('doc')).toMatchObject({ size: 6 });
        expect(await listAll(storage, '')).toEqual(['doc']);
      });

      it('stores concurrent puts to different keys', async ({ storage }) => {
        const keys = Array.from({ length: 24 }, (_, i) => `concurrent/${i}`);
        await Promise.all(keys.map((key) => storage.put(key, bufferBody(`${key} `.repeat(1000)))));
        for (const key of keys) expect((await readObject(storage, key)).toString()).toBe(`${key} `.repeat(1000));
      });
    });

    describe('bodies backed by a file (`path`)', () => {
      it('round-trip whether the adapter copies the file or reads open()', async ({ storage }) => {
        const bytes = randomBytes(3 * 1024 * 1024 + 7);
        await withFile(bytes, async (path) => {
          const info = await storage.put('file/body.bin', { ...bufferBody(bytes), path });
          expect(info).toMatchObject({ key: 'file/body.bin', size: bytes.length });
          await expectChecksumsOf(info, bytes);
          await expectChecksumsOf((await storage.stat('file/body.bin'))!, bytes);
          expect(sha256Hex(await readObject(storage, 'file/body.bin'))).toBe(sha256Hex(bytes));
        });
      });

      it('that the adapter may claim (to hard-link) round-trip, and the object outlives the file', async ({ storage }) => {
        const bytes = randomBytes(1024 * 1024 + 3);
        await withFile(bytes, async (path) => {
          const info = await storage.put('file/claimed.bin', { ...bufferBody(bytes), path, claimLink: () => true });
          await expectChecksumsOf(info, bytes);
          await rm(path);
        });
        await expectChecksumsOf((await storage.stat('file/claimed.bin'))!, bytes);
        expect(sha256Hex(await readObject(storage, 'file/claimed.bin'))).toBe(sha256Hex(bytes));
      });

      it('are refused when the file does not match the declared size or SHA-256, leaving the existing object as it was', async ({ storage }) => {
        await storage.put('kept', bufferBody('original'));
        const bytes = Buffer.from('replacement');
        await withFile(bytes, async (path) => {
          for (const lie of [{ sha256: sha256Hex('something else') }, { size: bytes.length - 1 }, { size: bytes.length + 1 }]) {
            for (const claim of [{}, { claimLink: () => true }]) {
              const label = JSON.stringify({ ...lie, claimable: 'claimLink' in claim });
              await expect(storage.put('kept', { ...bufferBody(bytes), path, ...claim, ...lie }), label).rejects.toMatchObject({
                code: StorageErrorCode.ChecksumMismatch,
              });
              await expect(storage.put('new', { ...bufferBody(bytes), path, ...claim, ...lie }), label).rejects.toMatchObject({
                code: StorageErrorCode.ChecksumMismatch,
              });
            }
          }
          expect(await readFile(path)).toEqual(bytes);
        });
        expect((await readObject(storage, 'kept')).toString()).toBe('original');
        expect(await listAll(storage, '')).toEqual(['kept']);
      });
    });

    describe('objects larger than one part', () => {
      const partSize = options.partSize;
      it(`round-trip in several parts, read in ranges across part boundaries${partSize ? '' : ' (no partSize given: one 3 MiB object)'}`, async ({
        storage,
      }) => {
        const size = partSize ? Math.floor(partSize * 2.5) + 1 : 3 * 1024 * 1024;
        const part = partSize ?? 1024 * 1024;
        const bytes = randomBytes(size);
        const info = await storage.put('parts/large.bin', bufferBody(bytes));
        expect(info).toMatchObject({ key: 'parts/large.bin', size });
        await expectChecksumsOf(info, bytes);
        const stat = await storage.stat('parts/large.bin');
        expect(stat?.size).toBe(size);
        await expectChecksumsOf(stat!, bytes);
        expect(sha256Hex(await readObject(storage, 'parts/large.bin'))).toBe(sha256Hex(bytes));
        for (const offset of [part - 3, 2 * part - 1]) {
          expect(await readObject(storage, 'parts/large.bin', { offset, length: 7 })).toEqual(bytes.subarray(offset, offset + 7));
        }
      });
    });

    describe('error classification', () => {
      const unreachable = options.unreachable;
      it(`missing objects are object_not_found; ${unreachable ? 'an unreachable backend is transient on every operation' : 'no unreachable backend given'}`, async ({
        storage,
      }) => {
        await expect(storage.get('missing/object')).rejects.toMatchObject({ code: StorageErrorCode.ObjectNotFound });
        await expect(storage.put('../escape', bufferBody('x'))).rejects.toMatchObject({ code: StorageErrorCode.InvalidKey });
        if (!unreachable) return;
        const down = await unreachable();
        try {
          const operations: Array<[string, () => Promise<unknown>]> = [
            ['put', () => down.put('k', bufferBody('x'))],
            ['get', () => down.get('k')],
            ['stat', () => down.stat('k')],
            ['delete', () => down.delete(['k'])],
            [
              'list',
              async () => {
                for await (const _ of down.list('')) return;
              },
            ],
          ];
          for (const [name, operation] of operations) {
            await expect(operation(), name).rejects.toMatchObject({ code: StorageErrorCode.Transient });
          }
        } finally {
          await down.close?.();
        }
      });
    });

    describe('download cut mid-stream', () => {
      const cutNextGet = options.cutNextGet;
      it(`${cutNextGet ? 'a 3 MiB object whose download is cut after 1 MiB reads byte-exact' : 'no cutNextGet given: a 3 MiB object reads byte-exact'}`, async ({
        storage,
      }) => {
        const bytes = randomBytes(3 * 1024 * 1024);
        await storage.put('cut/large.bin', bufferBody(bytes));
        await cutNextGet?.(1024 * 1024);
        expect(sha256Hex(await readObject(storage, 'cut/large.bin'))).toBe(sha256Hex(bytes));
      });
    });

    describe('integrity', () => {
      it('refuses a body whose bytes do not match its declared SHA-256', async ({ storage }) => {
        const { body, streamsSettled } = trackedBody(Buffer.from('actual bytes'), { sha256: sha256Hex('other bytes') });
        await expect(storage.put('bad', body)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
        expect(streamsSettled()).toBe(true);
        expect(await storage.stat('bad')).toBeUndefined();
        expect(await listAll(storage, '')).toEqual([]);
      });

      it('refuses a body shorter or longer than its declared size', async ({ storage }) => {
        const bytes = Buffer.from('twelve bytes');
        for (const size of [bytes.length - 1, bytes.length + 1]) {
          const { body } = trackedBody(bytes, { size });
          await expect(storage.put('bad', body)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
        }
        expect(await listAll(storage, '')).toEqual([]);
      });

      it('leaves an existing object as it was when a put fails its check', async ({ storage }) => {
        await storage.put('kept', bufferBody('original'));
        const { body } = trackedBody(Buffer.from('replacement'), { sha256: sha256Hex('something else') });
        await expect(storage.put('kept', body)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
        expect((await readObject(storage, 'kept')).toString()).toBe('original');
        expect(await listAll(storage, '')).toEqual(['kept']);
      });
    });

    describe('stat and missing objects', () => {
      it('reports size, modification time and any checksums correctly', async ({ storage }) => {
        const bytes = randomBytes(3000);
        await storage.put('a/b/c.bin', bufferBody(bytes));
        const info = await storage.stat('a/b/c.bin');
        expect(info).toMatchObject({ key: 'a/b/c.bin', size: 3000 });
        expect(info!.modified).toBeInstanceOf(Date);
        expect(Math.abs(info!.modified.getTime() - Date.now())).toBeLessThan(24 * 3600_000);
        for (const algorithm of storage.capabilities.serverChecksums) expect(info!.checksums[algorithm], `reported ${algorithm}`).toBeDefined();
        await expectChecksumsOf(info!, bytes);
      });

      it('stat of a missing object is undefined and get rejects with object_not_found', async ({ storage }) => {
        await storage.put('present', bufferBody('x'));
        for (const key of ['absent', 'present/below', 'pres']) {
          expect(await storage.stat(key)).toBeUndefined();
          await expect(storage.get(key)).rejects.toMatchObject({ code: StorageErrorCode.ObjectNotFound });
        }
      });
    });

    describe('ranges', () => {
      const bytes = randomBytes(1000);

      it('reads ranges at the start, in the middle and up to the end', async ({ storage }) => {
        await storage.put('ranged', bufferBody(bytes));
        expect(await readObject(storage, 'ranged', { offset: 0, length: 10 })).toEqual(bytes.subarray(0, 10));
        expect(await readObject(storage, 'ranged', { offset: 400, length: 123 })).toEqual(bytes.subarray(400, 523));
        expect(await readObject(storage, 'ranged', { offset: 900 })).toEqual(bytes.subarray(900));
        expect(await readObject(storage, 'ranged', { offset: 999, length: 1 })).toEqual(bytes.subarray(999));
      });

      it('stops at the end of the object when a range reaches past it', async ({ storage }) => {
        await storage.put('ranged', bufferBody(bytes));
        expect(await readObject(storage, 'ranged', { offset: 990, length: 100 })).toEqual(bytes.subarray(990));
      });
    });

    describe('conditional put', () => {
      it('ifNoneMatch creates a missing object and refuses to replace one (or is refused as unsupported)', async ({ storage }) => {
        if (!storage.capabilities.conditionalPut) {
          await expect(storage.put('lock', bufferBody('mine'), { ifNoneMatch: true })).rejects.toMatchObject({
            code: StorageErrorCode.Unsupported,
          });
          return;
        }
        await storage.put('lock', bufferBody('mine'), { ifNoneMatch: true });
        await expect(storage.put('lock', bufferBody('theirs'), { ifNoneMatch: true })).rejects.toMatchObject({
          code: StorageErrorCode.AlreadyExists,
        });
        expect((await readObject(storage, 'lock')).toString()).toBe('mine');
      });

      it('ifNoneMatch lets exactly one of several racing puts win (when conditionalPut)', async ({ storage }) => {
        const contenders = Array.from({ length: 8 }, (_, i) => `contender ${i}`);
        const outcomes = await Promise.allSettled(contenders.map((text) => storage.put('race', bufferBody(text), { ifNoneMatch: true })));
        const winners = contenders.filter((_, i) => outcomes[i]!.status === 'fulfilled');
        const expectedLoss = storage.capabilities.conditionalPut ? StorageErrorCode.AlreadyExists : StorageErrorCode.Unsupported;
        expect(winners).toHaveLength(storage.capabilities.conditionalPut ? 1 : 0);
        for (const outcome of outcomes) {
          if (outcome.status === 'rejected') expect(outcome.reason).toMatchObject({ code: expectedLoss });
        }
        if (winners.length) expect((await readObject(storage, 'race')).toString()).toBe(winners[0]);
      });
    });

    describe('list', () => {
      it('lists 1,200 keys under nested prefixes, each exactly once', async ({ storage }) => {
        const numbered = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);
        const keys = [...numbered('tree/a/', 600), ...numbered('tree/b/c/', 400), ...numbered('tree/bb/', 200)];
        // What is under test is the listing: a put the store failed `transient` (a loaded test server's 500) is put again.
        await inParallel(keys, storage.capabilities.maxParallelism, (key) => putRetryingTransient(storage, key, bufferBody(key)));

        expect(await listAll(storage, '')).toEqual([...keys].sort());
        expect(await listAll(storage, 'tree/b')).toHaveLength(600);
        expect(await listAll(storage, 'tree/b/')).toHaveLength(400);
        expect(await listAll(storage, 'tree/a/01')).toEqual(numbered('tree/a/', 200).slice(100));
        expect(await listAll(storage, 'tree/c')).toEqual([]);
      });

      it('filters by plain string prefix, including partial names', async ({ storage }) => {
        const keys = [
          'full/full_backup_20240101_020000.sqlite3',
          'full/full_backup_20241231_020000.sqlite3',
          'full/full_backup_20250101_020000.sqlite3',
          'fullness/notes.txt',
          'incremental/inc_backup_20240101_030000.sqlite3',
        ];
        for (const key of keys) await storage.put(key, bufferBody(`body of ${key}`));

        expect(await listAll(storage, 'full/full_backup_2024')).toEqual(keys.slice(0, 2));
        expect(await listAll(storage, 'full/')).toEqual(keys.slice(0, 3));
        expect(await listAll(storage, 'full')).toEqual(keys.slice(0, 4));
        expect(await listAll(storage, keys[0]!)).toEqual(keys.slice(0, 1));
        expect(await listAll(storage, 'incremental/inc')).toEqual(keys.slice(4));
        expect(await listAll(storage, 'nothing/')).toEqual([]);

        for await (const info of storage.list('')) {
          expect(info.size).toBe(`body of ${info.key}`.length);
          expect(info.modified).toBeInstanceOf(Date);
        }
      });
    });

    describe('delete', () => {
      it('deletes many keys at once and ignores missing ones', async ({ storage }) => {
        const keys = ['d/1', 'd/2', 'd/3', 'd/4', 'd/5'];
        for (const key of keys) await storage.put(key, bufferBody(key));
        await storage.delete(['d/1', 'd/3', 'd/5', 'd/missing', 'elsewhere/missing']);
        expect(await listAll(storage, '')).toEqual(['d/2', 'd/4']);
        await expect(storage.get('d/1')).rejects.toMatchObject({ code: StorageErrorCode.ObjectNotFound });
      });

      it('deleting nothing, or only missing keys, is fine', async ({ storage }) => {
        await storage.delete([]);
        await storage.delete(['never/was', 'never']);
        await storage.put('x', bufferBody('x'));
        await storage.delete(['x']);
        await storage.delete(['x']);
        expect(await listAll(storage, '')).toEqual([]);
      });
    });

    describe('archive tiers', () => {
      it('archive classes (per capabilities): tier, refuse reads, thaw, read byte-exact; otherwise none offered', async ({ storage }) => {
        const bytes = randomBytes(70_000);
        const before = await storage.put('tier/a.bin', bufferBody(bytes));
        const hot = await storage.stat('tier/a.bin');
        expect(hot?.archive, 'a freshly put object is not archived').toBeUndefined();
        const [archiveClass] = storage.capabilities.archiveClasses ?? [];
        if (archiveClass === undefined) {
          expect([storage.setStorageClass, storage.requestThaw]).toEqual([undefined, undefined]);
          return;
        }
        const { setStorageClass, requestThaw } = storage;
        if (!setStorageClass || !requestThaw || !options.completeThaws) {
          throw new Error('an adapter with archiveClasses needs setStorageClass, requestThaw and the suite option completeThaws');
        }
        const archived = await setStorageClass.call(storage, 'tier/a.bin', archiveClass);
        expect(archived).toMatchObject({ key: 'tier/a.bin', size: bytes.length, storageClass: archiveClass, archive: { state: 'archived' } });
        expectChecksumsOf(archived, bytes);
        for (const algorithm of Object.keys(before.checksums) as (keyof ObjectInfo['checksums'])[]) {
          if (archived.checksums[algorithm] !== undefined) expect(archived.checksums[algorithm]).toBe(before.checksums[algorithm]);
        }
        expect(await storage.stat('tier/a.bin')).toMatchObject({ storageClass: archiveClass, archive: { state: 'archived' } });
        await expect(setStorageClass.call(storage, 'tier/a.bin', archiveClass), 'idempotent').resolves.toMatchObject({
          archive: { state: 'archived' },
        });
        await expect(readObject(storage, 'tier/a.bin')).rejects.toMatchObject({ code: StorageErrorCode.ObjectArchived });

        const thawing = await requestThaw.call(storage, 'tier/a.bin', { days: 2, tier: 'expedited' });
        expect(['thawing', 'readable']).toContain(thawing.archive?.state);
        await expect(requestThaw.call(storage, 'tier/a.bin', { days: 2 }), 'idempotent').resolves.toMatchObject({
          key: 'tier/a.bin',
        });
        await options.completeThaws(storage);
        const readable = await storage.stat('tier/a.bin');
        expect(readable?.archive?.state).toBe('readable');
        if (readable?.archive?.thawExpires) expect(readable.archive.thawExpires.getTime()).toBeGreaterThan(Date.now());
        expect(sha256Hex(await readObject(storage, 'tier/a.bin'))).toBe(sha256Hex(bytes));

        await storage.put('tier/hot', bufferBody('x'));
        await expect(requestThaw.call(storage, 'tier/hot', { days: 1 })).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });
        await expect(setStorageClass.call(storage, 'tier/absent', archiveClass)).rejects.toMatchObject({
          code: StorageErrorCode.ObjectNotFound,
        });
        await expect(requestThaw.call(storage, 'tier/absent', { days: 1 })).rejects.toMatchObject({
          code: StorageErrorCode.ObjectNotFound,
        });
      });
    });

    describe('abort', () => {
      const aborted = expect.objectContaining({ code: StorageErrorCode.Aborted });

      it('a put with an aborted signal rejects with aborted and stores nothing', async ({ storage }) => {
        await expect(storage.put('p', bufferBody('x'), { signal: AbortSignal.abort() })).rejects.toEqual(aborted);
        expect(await storage.stat('p')).toBeUndefined();
      });

      it('a get with an aborted signal rejects or errors with aborted', async ({ storage }) => {
        await storage.put('g', bufferBody('x'));
        const outcome = storage.get('g', { signal: AbortSignal.abort() }).then(buffer);
        await expect(outcome).rejects.toEqual(aborted);
      });

      it('aborting after get resolved errors the stream with aborted', async ({ storage }) => {
        await storage.put('g', bufferBody(randomBytes(256 * 1024)));
        const controller = new AbortController();
        const stream = await storage.get('g', { signal: controller.signal });
        controller.abort();
        await expect(buffer(stream)).rejects.toEqual(aborted);
      });
    });
  });
}

async function readObject(storage: StorageAdapter, key: string, range?: GetOptions['range']): Promise<Buffer> {
  return buffer(await storage.get(key, range ? { range } : {}));
}

/** Keys under `prefix`, sorted (listing order is unspecified). */
async function listAll(storage: StorageAdapter, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of storage.list(prefix)) keys.push(info.key);
  return keys.sort();
}

/** Every checksum the adapter reported must be right (CRC-64/ECMA only as to its form). */
async function expectChecksumsOf(info: ObjectInfo, bytes: Buffer): Promise<void> {
  const { sha256, md5, crc64nvme, crc64ecma } = info.checksums;
  if (sha256 !== undefined) expect(sha256, 'reported SHA-256').toBe(sha256Hex(bytes));
  if (md5 !== undefined) expect(md5, 'reported MD5').toBe(createHash('md5').update(bytes).digest('hex'));
  if (crc64nvme !== undefined) {
    const crc = new Crc64Nvme();
    crc.update(bytes);
    expect(crc64nvme, 'reported CRC-64/NVME').toBe(Buffer.from(await crc.digest()).toString('base64'));
  }
  if (crc64ecma !== undefined) expect(crc64ecma, 'reported CRC-64/ECMA').toMatch(/^\d+$/);
}

/**
 * A body over `bytes` that may lie about its size or SHA-256, and that tells whether every stream
 * it handed out was consumed or destroyed (the adapter owns them).
 */
function trackedBody(bytes: Buffer, lies: { size?: number; sha256?: string } = {}) {
  const honest = bufferBody(bytes);
  const streams: Readable[] = [];
  const body: PutBody = {
    size: lies.size ?? honest.size,
    sha256: lies.sha256 ?? honest.sha256,
    open: () => {
      const stream = honest.open();
      streams.push(stream);
      return stream;
    },
  };
  const streamsSettled = () => streams.every((stream) => stream.destroyed || stream.readableEnded);
  return { body, streamsSettled };
}

/** Runs `fn` with the path of a temporary file holding `bytes`, then removes it. */
async function withFile(bytes: Buffer, fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-conformance-'));
  try {
    const path = join(dir, 'body');
    await writeFile(path, bytes);
    await fn(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `put`, tried up to 3 times while the store answers `transient`. */
async function putRetryingTransient(storage: StorageAdapter, key: string, body: PutBody): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await storage.put(key, body);
      return;
    } catch (error) {
      if (attempt >= 3 || !isTransient(error)) throw error;
    }
  }
}

async function inParallel<T>(items: readonly T[], parallelism: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallelism, items.length)) }, worker));
}
