import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageErrorCode, StorageRegistry, bufferBody, sha256Hex, type PutBody } from '@stowage/storage';
import { describeStorageAdapter } from '@stowage/storage-testkit';
import { localStorageFactory } from './factory.js';
import { LocalStorage } from './local.js';

const makeTempDir = () => mkdtemp(join(tmpdir(), 'stowage-local-'));

describeStorageAdapter({
  name: 'LocalStorage',
  async create() {
    const dir = await makeTempDir();
    return { adapter: new LocalStorage(join(dir, 'root')), cleanup: () => rm(dir, { recursive: true, force: true }) };
  },
});

describe('LocalStorage on disk', () => {
  let dir: string;
  let root: string;
  let storage: LocalStorage;

  beforeEach(async () => {
    dir = await makeTempDir();
    root = join(dir, 'missing', 'root');
    storage = new LocalStorage(root);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const modeOf = async (path: string) => (await stat(path)).mode & 0o777;
  const filesBelow = async (folder: string) => (await readdir(folder, { recursive: true })).sort();

  for (const umask of [0o022, 0o077]) {
    it(`creates folders 0700 and files 0600 under umask ${umask.toString(8).padStart(3, '0')}`, async () => {
      const previous = process.umask(umask);
      try {
        await storage.put('full/2024/backup.sqlite3', bufferBody('data'));
      } finally {
        process.umask(previous);
      }
      for (const folder of [join(dir, 'missing'), root, join(root, 'full'), join(root, 'full', '2024')]) {
        expect(await modeOf(folder), folder).toBe(0o700);
      }
      expect(await modeOf(join(root, 'full', '2024', 'backup.sqlite3'))).toBe(0o600);
    });
  }

  it('leaves no temporary file behind when a put fails its check or is aborted', async () => {
    await storage.put('a/kept', bufferBody('kept'));
    const lying: PutBody = { ...bufferBody('actual'), sha256: sha256Hex('declared') };
    await expect(storage.put('a/new', lying)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
    await expect(storage.put('a/kept', lying)).rejects.toMatchObject({ code: StorageErrorCode.ChecksumMismatch });
    const controller = new AbortController();
    const endless: PutBody = {
      size: 1,
      sha256: sha256Hex('x'),
      open: () =>
        new Readable({
          read() {
            this.push('more');
            controller.abort();
          },
        }),
    };
    await expect(storage.put('a/aborted', endless, { signal: controller.signal })).rejects.toMatchObject({
      code: StorageErrorCode.Aborted,
    });
    expect(await filesBelow(root)).toEqual(['a', 'a/kept']);
  });

  it('keeps stray temporary files out of listings and refuses temporary names as keys', async () => {
    await storage.put('a/real', bufferBody('x'));
    await writeFile(join(root, 'a', '.real.stowage-tmp-0123456789ab'), 'partial');
    const keys: string[] = [];
    for await (const info of storage.list('')) keys.push(info.key);
    expect(keys).toEqual(['a/real']);
    await expect(storage.put('a/.real.stowage-tmp-0123456789ab', bufferBody('x'))).rejects.toMatchObject({
      code: StorageErrorCode.InvalidKey,
    });
  });

  it('makes ifNoneMatch atomic between two adapters over the same folder', async () => {
    const other = new LocalStorage(root);
    for (let round = 0; round < 20; round++) {
      const outcomes = await Promise.allSettled([
        storage.put(`lock-${round}`, bufferBody('one'), { ifNoneMatch: true }),
        other.put(`lock-${round}`, bufferBody('two'), { ifNoneMatch: true }),
      ]);
      expect(outcomes.filter((outcome) => outcome.status === 'fulfilled')).toHaveLength(1);
      expect(outcomes.find((outcome) => outcome.status === 'rejected')?.reason).toMatchObject({
        code: StorageErrorCode.AlreadyExists,
      });
    }
    expect(await filesBelow(root)).toHaveLength(20);
  });

  it('stat reports the SHA-256 of the bytes on disk, not of what was put', async () => {
    await storage.put('db', bufferBody('original'));
    await writeFile(join(root, 'db'), 'tampered');
    expect(await storage.stat('db')).toMatchObject({ size: 8, checksums: { sha256: sha256Hex('tampered') } });
  });

  it('put reads the file back after fsync: a write the disk got wrong fails the put instead of echoing the sent SHA-256', async () => {
    const probe = await open(join(dir, 'probe'), 'w');
    const handleProto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const write = handleProto.write;
    // The file system stores one bit differently from what it was given, and says all went well.
    const spy = vi.spyOn(handleProto, 'write').mockImplementation(function (this: FileHandle, buffer: unknown, ...rest: unknown[]) {
      const damaged = Buffer.from(buffer as Buffer);
      damaged[0]! ^= 1;
      return (write as (...args: unknown[]) => Promise<unknown>).call(this, damaged, ...rest);
    } as typeof write);
    try {
      await expect(storage.put('db', bufferBody('original'))).rejects.toMatchObject({
        code: StorageErrorCode.ChecksumMismatch,
        message: expect.stringContaining('reads back differently'),
      });
    } finally {
      spy.mockRestore();
    }
    expect(await filesBelow(root)).toEqual([]);
    const info = await storage.put('db', bufferBody('original'));
    expect(info.checksums.sha256).toBe(sha256Hex('original'));
  });

  it('copies a body backed by a file without reading it through open(): 0600, independent of the file, checked after the copy', async () => {
    const source = join(dir, 'staged');
    await writeFile(source, 'staged bytes', { mode: 0o644 });
    const unread = (): never => {
      throw new Error('open() was called');
    };
    const info = await storage.put('full/db', { ...bufferBody('staged bytes'), path: source, open: unread }, { ifNoneMatch: true });
    expect(info).toMatchObject({ size: 12, checksums: { sha256: sha256Hex('staged bytes') } });
    expect(await modeOf(join(root, 'full', 'db'))).toBe(0o600);
    await writeFile(source, 'changed afterwards');
    expect(await storage.stat('full/db')).toMatchObject({ checksums: { sha256: sha256Hex('staged bytes') } });
    await expect(storage.put('full/db', { ...bufferBody('changed afterwards'), path: source, open: unread }, { ifNoneMatch: true })).rejects.toMatchObject({
      code: StorageErrorCode.AlreadyExists,
    });
    // The file no longer holds what the body declares: refused after the copy, nothing left behind.
    await expect(storage.put('full/db', { ...bufferBody('staged bytes'), path: source, open: unread })).rejects.toMatchObject({
      code: StorageErrorCode.ChecksumMismatch,
    });
    await expect(storage.put('full/other', { ...bufferBody('staged bytes'), path: join(dir, 'absent'), open: unread })).rejects.toMatchObject({
      code: StorageErrorCode.Unavailable,
    });
    expect(await filesBelow(root)).toEqual(['full', 'full/db']);
    expect(await storage.stat('full/db')).toMatchObject({ checksums: { sha256: sha256Hex('staged bytes') } });
  });

  it('hard-links a file body it may claim, once: the object is the file until the file is removed; a second claim or another file system copies', async () => {
    const source = join(dir, 'staged');
    await writeFile(source, 'staged bytes', { mode: 0o644 });
    let claimed = false;
    const claimLink = () => !claimed && (claimed = true);
    const body = { ...bufferBody('staged bytes'), path: source, claimLink };
    const linked = await storage.put('full/db', body, { ifNoneMatch: true });
    expect(linked).toMatchObject({ size: 12, checksums: { sha256: sha256Hex('staged bytes') } });
    const [file, object] = await Promise.all([stat(source), stat(join(root, 'full', 'db'))]);
    expect(object.ino).toBe(file.ino);
    expect(object.nlink).toBe(2);
    expect(object.mode & 0o777).toBe(0o600);
    // Claimed already (another destination of the same backup): a copy of its own.
    await storage.put('mirror/db', body);
    expect((await stat(join(root, 'mirror', 'db'))).ino).not.toBe(file.ino);
    await rm(source);
    expect((await stat(join(root, 'full', 'db'))).nlink).toBe(1);
    expect(await storage.stat('full/db')).toMatchObject({ size: 12, checksums: { sha256: sha256Hex('staged bytes') } });
    // A file the body misdeclares is refused after the link, which is undone; the file stays as it was.
    await writeFile(source, 'staged bytes');
    claimed = false;
    await expect(storage.put('full/lie', { ...body, ...bufferBody('other bytes!'), path: source, claimLink })).rejects.toMatchObject({
      code: StorageErrorCode.ChecksumMismatch,
    });
    expect(claimed).toBe(true);
    expect((await stat(source)).nlink).toBe(1);
    expect(await filesBelow(join(root, 'full'))).toEqual(['db']);
  });

  it('copies a claimable file body that is on another file system', async () => {
    const shm = await mkdtemp('/dev/shm/stowage-local-');
    try {
      const source = join(shm, 'staged');
      await writeFile(source, 'staged bytes');
      const [file, rootDevice] = await Promise.all([stat(source), (await mkdir(root, { recursive: true }), stat(root))]);
      expect(file.dev).not.toBe(rootDevice.dev); // else this test would not cross file systems
      const info = await storage.put('full/db', { ...bufferBody('staged bytes'), path: source, claimLink: () => true });
      expect(info.checksums.sha256).toBe(sha256Hex('staged bytes'));
      expect((await stat(source)).nlink).toBe(1);
      await rm(source);
      expect(await storage.stat('full/db')).toMatchObject({ size: 12, checksums: { sha256: sha256Hex('staged bytes') } });
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
  });

  it('treats folders as no object, and refuses keys that clash with a folder or an object', async () => {
    await storage.put('a/b', bufferBody('x'));
    expect(await storage.stat('a')).toBeUndefined();
    await expect(storage.get('a')).rejects.toMatchObject({ code: StorageErrorCode.ObjectNotFound });
    await storage.delete(['a']);
    await expect(storage.put('a', bufferBody('x'))).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });
    await expect(storage.put('a/b/c', bufferBody('x'))).rejects.toMatchObject({ code: StorageErrorCode.Unsupported });
    expect(await filesBelow(root)).toEqual(['a', 'a/b']);
  });

  it('deletes nothing outside its root', async () => {
    await mkdir(root, { recursive: true });
    await writeFile(join(dir, 'outside'), 'precious');
    await expect(storage.delete(['../../outside'])).rejects.toMatchObject({ code: StorageErrorCode.InvalidKey });
    expect(await filesBelow(dir)).toContain('outside');
  });

  it('describes itself as the file: URL of its root', () => {
    expect(storage.description).toBe(pathToFileURL(root).href);
    expect(storage.description).toMatch(/^file:\/\/\//);
  });
});

describe('localStorageFactory', () => {
  const registry = new StorageRegistry().register(localStorageFactory);
  const baseDir = resolve('/srv/stowage');

  it('opens plain paths and file: URLs as LocalStorage', async () => {
    const relative = await registry.open({ url: './backups' }, { baseDir });
    expect(relative).toBeInstanceOf(LocalStorage);
    expect((relative as LocalStorage).root).toBe(join(baseDir, 'backups'));
    const url = await registry.open({ url: 'file:///var/backups/stowage', options: { fsync: false } }, { baseDir });
    expect((url as LocalStorage).root).toBe(resolve('/var/backups/stowage'));
  });

  it('rejects bad options and non-local file: URLs with invalid_config', async () => {
    await expect(registry.open({ url: './b', options: { fsync: 'yes' } }, { baseDir })).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringMatching(/^options\.fsync: /),
    });
    await expect(registry.open({ url: './b', options: { fsnyc: false } }, { baseDir })).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
      message: expect.stringContaining('fsnyc'),
    });
    await expect(registry.open({ url: 'file://elsewhere/backups' }, { baseDir })).rejects.toMatchObject({
      code: StorageErrorCode.InvalidConfig,
    });
  });
});
