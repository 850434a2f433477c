import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StorageErrorCode, bufferBody } from '@stowage/storage';
import { LocalStorage } from './local.js';

/** Simulated file-system failures: function name (`open`, `write`, …) → errno it rejects with. */
const failures = vi.hoisted(() => new Map<string, string>());

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const simulated = (name: string) => {
    const errno = failures.get(name);
    return errno && Promise.reject(Object.assign(new Error(`${errno}: simulated failure, ${name}`), { code: errno }));
  };
  return {
    ...fs,
    mkdir: ((...args: Parameters<typeof fs.mkdir>) => simulated('mkdir') || fs.mkdir(...args)) as typeof fs.mkdir,
    opendir: ((...args: Parameters<typeof fs.opendir>) => simulated('opendir') || fs.opendir(...args)) as typeof fs.opendir,
    unlink: ((...args: Parameters<typeof fs.unlink>) => simulated('unlink') || fs.unlink(...args)) as typeof fs.unlink,
    copyFile: ((...args: Parameters<typeof fs.copyFile>) => simulated('copyFile') || fs.copyFile(...args)) as typeof fs.copyFile,
    open: (async (...args: Parameters<typeof fs.open>) => {
      const file = await (simulated('open') || fs.open(...args));
      const write = file.write.bind(file) as (...a: unknown[]) => Promise<unknown>;
      return Object.assign(file, { write: (...a: unknown[]) => simulated('write') || write(...a) });
    }) as typeof fs.open,
  };
});

describe('LocalStorage maps file-system errors', () => {
  let dir: string;
  let storage: LocalStorage;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-errno-'));
    storage = new LocalStorage(dir);
    await storage.put('existing', bufferBody('x'));
  });
  afterEach(async () => {
    failures.clear();
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['ENOSPC', StorageErrorCode.NoSpace],
    ['EDQUOT', StorageErrorCode.NoSpace],
    ['EACCES', StorageErrorCode.PermissionDenied],
    ['EPERM', StorageErrorCode.PermissionDenied],
    ['EROFS', StorageErrorCode.PermissionDenied],
    ['EMFILE', StorageErrorCode.Transient],
    ['EAGAIN', StorageErrorCode.Transient],
    ['EBUSY', StorageErrorCode.Transient],
    ['EIO', StorageErrorCode.Unavailable],
  ])('%s from open → %s', async (errno, code) => {
    failures.set('open', errno);
    await expect(storage.put('new', bufferBody('x'))).rejects.toMatchObject({ code, context: { errno, key: 'new' } });
    await expect(storage.get('existing')).rejects.toMatchObject({ code });
  });

  it('a disk filling up mid-write fails with no_space and leaves no temporary file', async () => {
    failures.set('write', 'ENOSPC');
    await expect(storage.put('big', bufferBody('payload'))).rejects.toMatchObject({ code: StorageErrorCode.NoSpace });
    expect(await readdir(dir)).toEqual(['existing']);
  });

  it('says a full disk with the numbers, also for a body streamed from a file (not "operation aborted")', async () => {
    const source = join(dir, 'staged');
    await writeFile(source, Buffer.alloc(300_000, 1));
    const body = {
      size: 300_000,
      sha256: createHash('sha256').update(Buffer.alloc(300_000, 1)).digest('hex'),
      open: () => createReadStream(source, { highWaterMark: 4096 }),
    };
    failures.set('write', 'ENOSPC');
    const error = await storage.put('big', body).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: StorageErrorCode.NoSpace, context: { errno: 'ENOSPC', key: 'big', needed: 300_000, free: expect.any(Number) } });
    expect((error as Error).message).toMatch(new RegExp(`^disk full at ${dir}: needed 300000 bytes for 'big', free \\d+ bytes$`));
  });

  it('says a full disk with the numbers when copying a body backed by a file, and leaves no temporary file', async () => {
    const source = join(dir, 'staged');
    await writeFile(source, Buffer.alloc(300_000, 1));
    failures.set('copyFile', 'ENOSPC');
    const error = await storage.put('big', { ...bufferBody(Buffer.alloc(300_000, 1)), path: source }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: StorageErrorCode.NoSpace, context: { errno: 'ENOSPC', key: 'big', needed: 300_000, free: expect.any(Number) } });
    expect((await readdir(dir)).sort()).toEqual(['existing', 'staged']);
  });

  it('maps errors of listing, deleting and creating folders too', async () => {
    failures.set('opendir', 'EACCES');
    await expect(storage.list('')[Symbol.asyncIterator]().next()).rejects.toMatchObject({
      code: StorageErrorCode.PermissionDenied,
    });
    failures.set('unlink', 'EROFS');
    await expect(storage.delete(['existing'])).rejects.toMatchObject({ code: StorageErrorCode.PermissionDenied });
    failures.set('mkdir', 'ENOSPC');
    await expect(storage.put('a/b', bufferBody('x'))).rejects.toMatchObject({ code: StorageErrorCode.NoSpace });
  });
});
