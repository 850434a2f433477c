import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CryptoErrorCode, isCryptoError } from './errors.js';
import { generatePassphrase, readKeyFile, readPassphrase, writeKeyFile } from './secrets.js';
import { cleanup, tempDir } from './test/helpers.js';

afterAll(cleanup);

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    if (isCryptoError(error)) return error.code;
    throw error;
  }
  return undefined;
}

describe('writeKeyFile', () => {
  it('creates the file with mode 600 whatever the umask', async () => {
    const dir = await tempDir();
    const previous = process.umask(0);
    try {
      await writeKeyFile(join(dir, 'key'), 'secret\n');
    } finally {
      process.umask(previous);
    }
    expect((await stat(join(dir, 'key'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(dir, 'key'), 'utf8')).toBe('secret\n');
  });

  it('refuses to overwrite a key unless asked, and then resets a loose mode to 600', async () => {
    const dir = await tempDir();
    const path = join(dir, 'key');
    await writeFile(path, 'old');
    await chmod(path, 0o644);
    expect(await codeOf(writeKeyFile(path, 'new'))).toBe(CryptoErrorCode.InvalidKey);
    expect(await readFile(path, 'utf8')).toBe('old');
    await writeKeyFile(path, 'new', { overwrite: true });
    expect(await readFile(path, 'utf8')).toBe('new');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });
});

describe('readKeyFile', () => {
  it('reads files of mode 600 and 400', async () => {
    const dir = await tempDir();
    const path = join(dir, 'key');
    await writeKeyFile(path, 'k');
    expect(await readKeyFile(path)).toBe('k');
    await chmod(path, 0o400);
    expect(await readKeyFile(path)).toBe('k');
  });

  it.each([0o644, 0o640, 0o604, 0o660, 0o620])('refuses mode %o and says how to fix it', async (mode) => {
    const dir = await tempDir();
    const path = join(dir, 'key');
    await writeKeyFile(path, 'very-secret-value');
    await chmod(path, mode);
    const error = await readKeyFile(path).catch((e: unknown) => e);
    expect(isCryptoError(error, CryptoErrorCode.KeyFilePermissions)).toBe(true);
    const message = (error as Error).message;
    expect(message).toContain(`chmod 600 ${path}`);
    expect(message).toContain(mode.toString(8));
    expect(message).not.toContain('very-secret-value');
  });

  it('reports a missing file or a folder as key_missing', async () => {
    const dir = await tempDir();
    expect(await codeOf(readKeyFile(join(dir, 'absent')))).toBe(CryptoErrorCode.KeyMissing);
    await mkdir(join(dir, 'folder'), { mode: 0o700 });
    expect(await codeOf(readKeyFile(join(dir, 'folder')))).toBe(CryptoErrorCode.KeyMissing);
  });

  it('refuses a named pipe at once instead of waiting for a writer that never comes', async () => {
    const dir = await tempDir();
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    await expect(readKeyFile(fifo)).rejects.toMatchObject({ code: CryptoErrorCode.KeyMissing, message: expect.stringMatching(/not a regular file/) });
  }, 5000);
});

describe('readPassphrase', () => {
  it('takes the first line of a file as gpg --passphrase-file does, trimming nothing else', async () => {
    const dir = await tempDir();
    await writeKeyFile(join(dir, 'p1'), 'correct horse\nsecond line\n');
    await writeKeyFile(join(dir, 'p2'), ' spaced \r\n');
    await writeKeyFile(join(dir, 'p3'), 'no newline');
    expect(await readPassphrase({ file: 'p1' }, 'passphrase', { baseDir: dir })).toBe('correct horse');
    expect(await readPassphrase({ file: 'p2' }, 'passphrase', { baseDir: dir })).toBe(' spaced \r');
    expect(await readPassphrase({ file: join(dir, 'p3') }, 'passphrase')).toBe('no newline');
  });

  it('reads environment variables as they are, and reports unset or empty ones', async () => {
    expect(await readPassphrase({ env: 'PASS' }, 'passphrase', { env: { PASS: 'from env\n' } })).toBe('from env\n');
    const unset = await readPassphrase({ env: 'PASS' }, 'passphrase', { env: {} }).catch((e: unknown) => e);
    expect(isCryptoError(unset, CryptoErrorCode.KeyMissing)).toBe(true);
    expect((unset as Error).message).toBe('the passphrase is configured to come from environment variable PASS, which is not set');
    expect(await codeOf(readPassphrase({ env: 'PASS' }, 'passphrase', { env: { PASS: '' } }))).toBe(CryptoErrorCode.KeyMissing);
  });

  it('reports a file whose first line is empty', async () => {
    const dir = await tempDir();
    await writeKeyFile(join(dir, 'p'), '\nsecret on line two');
    expect(await codeOf(readPassphrase({ file: join(dir, 'p') }, 'passphrase'))).toBe(CryptoErrorCode.KeyMissing);
  });
});

describe('generatePassphrase', () => {
  it('makes 256-bit base64url passphrases, different each time', () => {
    const seen = new Set(Array.from({ length: 100 }, generatePassphrase));
    expect(seen.size).toBe(100);
    for (const passphrase of seen) expect(passphrase).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});
