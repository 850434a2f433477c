import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { appendFile, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeFileSetArchive, type ArchiveProgress } from './archive.js';
import { CHUNK_BYTES } from './file-io.js';
import { diffIndexes, type FileEntry } from './fileset-index.js';
import { restoreFileSets } from './restore.js';
import { scanFileSets } from './scan.js';
import { backup, fromFile, sha256, tempDir, writeTree } from './test/harness.js';

const media = { media: { path: 'media' } };
const fast = { attempts: 3, delayMs: 1 };

function entry(index: { sets: Record<string, { entries: Array<{ path: string }> }> }, path: string): FileEntry | undefined {
  return index.sets.media?.entries.find((e) => e.path === path) as FileEntry | undefined;
}

function membersOf(archive: string): string[] {
  return execFileSync('tar', ['-tf', archive], { encoding: 'utf8' }).trim().split('\n');
}

describe('a file that changes while it is read', () => {
  it('is read again, and only the stable read is recorded', async () => {
    const base = await tempDir();
    const big = randomBytes(2 * CHUNK_BYTES + 5);
    await writeTree(join(base, 'media'), { 'busy.bin': big, 'calm.txt': 'calm' });
    const seen: ArchiveProgress[] = [];
    const archive = join(base, 'full.tar');
    const result = await backup(media, base, archive, undefined, {
      retry: fast,
      onProgress: async (progress) => {
        seen.push(progress);
        // A writer appends to the file in the middle of the first read.
        if (progress.path === 'busy.bin' && progress.attempt === 1 && progress.fileBytes === CHUNK_BYTES) {
          await appendFile(join(base, 'media/busy.bin'), 'more');
        }
      },
    });
    const final = Buffer.concat([big, Buffer.from('more')]);
    expect(result.warnings).toEqual([]);
    expect(entry(result.index, 'busy.bin')).toMatchObject({ size: final.length, sha256: sha256(final) });
    expect(seen.filter((p) => p.path === 'busy.bin').map((p) => p.attempt)).toEqual([1, 1, 1, 2, 2, 2]);
    expect(membersOf(archive).filter((name) => name === 'media/busy.bin')).toHaveLength(2);

    const target = await tempDir('restore');
    await restoreFileSets({ archives: [fromFile(archive)], targetDir: target });
    expect(sha256(await readFile(join(target, 'media/busy.bin')))).toBe(sha256(final));
    const gnu = await tempDir('gnu');
    execFileSync('tar', ['-xf', archive, '-C', gnu]);
    expect(sha256(await readFile(join(gnu, 'media/busy.bin')))).toBe(sha256(final));
  });

  it('is reported unstable and left out of a full backup when no read is stable', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), { 'log.txt': 'start\n', 'calm.txt': 'calm' });
    const archive = join(base, 'full.tar');
    const result = await backup(media, base, archive, undefined, {
      retry: fast,
      onProgress: (progress) => (progress.path === 'log.txt' ? appendFile(join(base, 'media/log.txt'), 'x') : undefined),
    });
    expect(result.warnings).toMatchObject([{ code: 'unstable', set: 'media', path: 'log.txt', keptPrevious: false }]);
    expect(result.warnings[0]?.message).toMatch(/3 attempts/);
    expect(entry(result.index, 'log.txt')).toBeUndefined();
    expect(entry(result.index, 'calm.txt')).toBeDefined();

    const target = await tempDir('restore');
    await restoreFileSets({ archives: [fromFile(archive)], targetDir: target });
    await expect(readFile(join(target, 'media/log.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(target, 'media/calm.txt'), 'utf8')).toBe('calm');
  });

  it("keeps the parent's version in an incremental, never the torn bytes", async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), { 'log.txt': 'version 1\n' });
    const out = await tempDir('out');
    const full = await backup(media, base, join(out, 'full.tar'));
    await writeFile(join(base, 'media/log.txt'), 'version 2, being written\n');
    const inc = await backup(media, base, join(out, 'inc.tar'), full.index, {
      retry: fast,
      onProgress: () => appendFile(join(base, 'media/log.txt'), 'more\n'),
    });
    expect(inc.warnings).toMatchObject([{ code: 'unstable', path: 'log.txt', keptPrevious: true }]);
    expect(entry(inc.index, 'log.txt')).toEqual(entry(full.index, 'log.txt'));
    expect(membersOf(join(out, 'inc.tar')).filter((name) => name === 'media/log.txt')).toHaveLength(3);

    const target = await tempDir('restore');
    await restoreFileSets({ archives: [fromFile(join(out, 'full.tar')), fromFile(join(out, 'inc.tar'))], targetDir: target });
    expect(await readFile(join(target, 'media/log.txt'), 'utf8')).toBe('version 1\n');
  });
});

describe('a file that vanishes between scan and archive', () => {
  it('is left out with a warning, which an incremental records as a deletion', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), { 'a.txt': 'a', 'b.txt': 'b', 'c.txt': 'c' });
    const out = await tempDir('out');
    const full = await backup(media, base, join(out, 'full.tar'));

    await writeFile(join(base, 'media/b.txt'), 'b changed');
    await writeFile(join(base, 'media/c.txt'), 'c changed');
    const scan = await scanFileSets(media, { baseDir: base, parent: full.index });
    await rm(join(base, 'media/b.txt'));
    await rm(join(base, 'media/c.txt'));
    await symlink('a.txt', join(base, 'media/c.txt'));
    const inc = await writeFileSetArchive(scan, createWriteStream(join(out, 'inc.tar')));

    expect(inc.warnings).toMatchObject([
      { code: 'vanished', path: 'b.txt' },
      { code: 'vanished', path: 'c.txt' },
    ]);
    expect(diffIndexes(full.index, inc.index).deleted.map((item) => item.path)).toEqual(['b.txt', 'c.txt']);
    const target = await tempDir('restore');
    await restoreFileSets({ archives: [fromFile(join(out, 'full.tar')), fromFile(join(out, 'inc.tar'))], targetDir: target });
    expect(await readFile(join(target, 'media/a.txt'), 'utf8')).toBe('a');
    await expect(readFile(join(target, 'media/b.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('writing the archive', () => {
  it('keeps memory bounded by honouring backpressure of a slow output', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), { 'big.bin': randomBytes(8 * CHUNK_BYTES) });
    const scan = await scanFileSets(media, { baseDir: base });
    let received = 0;
    let peakAhead = 0;
    let produced = 0;
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        setTimeout(done, 1);
      },
    });
    const result = await writeFileSetArchive(scan, slow, {
      onProgress: (progress) => {
        produced = progress.archiveBytes;
        peakAhead = Math.max(peakAhead, produced - received);
      },
    });
    expect(received).toBe(result.archiveBytes);
    expect(peakAhead).toBeLessThanOrEqual(3 * CHUNK_BYTES);
  });

  it('fails, and ends the output, when the output fails', async () => {
    const base = await tempDir();
    await writeTree(join(base, 'media'), { 'a.bin': randomBytes(CHUNK_BYTES) });
    const scan = await scanFileSets(media, { baseDir: base });
    const broken = new Writable({
      write(_chunk, _encoding, done) {
        done(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
      },
    });
    await expect(writeFileSetArchive(scan, broken)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(broken.destroyed).toBe(true);
  });
});
