import { execFileSync } from 'node:child_process';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FileSetErrorCode } from './errors.js';
import { BLOCK, encodeTarHeader, END_OF_ARCHIVE, padding, readTar, type TarHeader, type TarMember } from './tar.js';
import { tempDir } from './test/harness.js';

const longName = `media/${'nested-folder/'.repeat(12)}${'n'.repeat(90)}.jpg`;
const headers: Array<[TarHeader, string]> = [
  [{ name: 'media/a.txt', type: 'file', size: 5, mode: 0o640, mtimeMs: 1_700_000_000_000 }, 'hello'],
  [{ name: 'media/ms.txt', type: 'file', size: 2, mode: 0o600, mtimeMs: 1_700_000_000_123 }, 'ms'],
  [{ name: 'media/old.txt', type: 'file', size: 3, mode: 0o644, mtimeMs: -1_500 }, 'old'],
  [{ name: `media/${'p'.repeat(120)}/${'q'.repeat(90)}.txt`, type: 'file', size: 0, mode: 0o644, mtimeMs: 0 }, ''],
  [{ name: longName, type: 'file', size: 1, mode: 0o644, mtimeMs: 0 }, 'l'],
  [{ name: 'media/ünïcödé 文件.txt', type: 'file', size: 1, mode: 0o644, mtimeMs: 0 }, 'u'],
  [{ name: 'media/sub/', type: 'directory', size: 0, mode: 0o750, mtimeMs: 1_600_000_000_999 }, ''],
  [{ name: 'media/link', type: 'symlink', size: 0, mode: 0o777, mtimeMs: 0, linkname: `${'../'.repeat(2)}${'t'.repeat(150)}` }, ''],
];

function archiveOf(entries: Array<[TarHeader, string]>): Buffer {
  return Buffer.concat([
    ...entries.flatMap(([header, content]) => [encodeTarHeader(header), Buffer.from(content), padding(Buffer.byteLength(content))]),
    END_OF_ARCHIVE,
  ]);
}

async function readAll(bytes: Buffer, chunk = 100): Promise<Array<TarMember & { content: string }>> {
  const parts = Array.from({ length: Math.ceil(bytes.length / chunk) }, (_, i) => bytes.subarray(i * chunk, (i + 1) * chunk));
  const out: Array<TarMember & { content: string }> = [];
  for await (const { member, content } of readTar(Readable.from(parts))) {
    const data: Buffer[] = [];
    for await (const part of content) data.push(part);
    out.push({ ...member, content: Buffer.concat(data).toString() });
  }
  return out;
}

describe('tar writer and reader', () => {
  it('round-trips long, non-ASCII and sub-second members, read in odd-sized chunks', async () => {
    const members = await readAll(archiveOf(headers), 77);
    expect(members.map((m) => [m.name, m.type, m.size, m.linkname, m.content])).toEqual(
      headers.map(([header, content]) => [header.name, header.type, header.size, header.linkname ?? '', content]),
    );
  });

  it('is read by GNU tar with the same names, modes, link targets and millisecond mtimes', async () => {
    const file = join(await tempDir(), 'a.tar');
    await writeFile(file, archiveOf(headers));
    const listing = execFileSync('tar', ['--utc', '--full-time', '-tvf', file], { encoding: 'utf8' }).trim().split('\n');
    // GNU tar lists the pre-1970 time oddly (as it does for its own archives), so it is checked by extracting below.
    expect(listing.map((line) => line.replace(/ +/g, ' ')).filter((line) => !line.endsWith('old.txt'))).toEqual([
      '-rw-r----- 0/0 5 2023-11-14 22:13:20 media/a.txt',
      '-rw------- 0/0 2 2023-11-14 22:13:20.123 media/ms.txt',
      `-rw-r--r-- 0/0 0 1970-01-01 00:00:00 media/${'p'.repeat(120)}/${'q'.repeat(90)}.txt`,
      `-rw-r--r-- 0/0 1 1970-01-01 00:00:00 ${longName}`,
      '-rw-r--r-- 0/0 1 1970-01-01 00:00:00 media/ünïcödé 文件.txt',
      'drwxr-x--- 0/0 0 2020-09-13 12:26:40.999 media/sub/',
      `lrwxrwxrwx 0/0 0 1970-01-01 00:00:00 media/link -> ../../${'t'.repeat(150)}`,
    ]);
    const out = await tempDir();
    execFileSync('tar', ['-xf', file, '-C', out, 'media/old.txt', 'media/ms.txt'], { stdio: 'ignore' });
    expect((await stat(join(out, 'media/old.txt'))).mtimeMs).toBe(-1_500);
    expect((await stat(join(out, 'media/ms.txt'))).mtimeMs).toBe(1_700_000_000_123);
  });

  it('stops at the end marker and ignores what follows', async () => {
    const bytes = Buffer.concat([archiveOf(headers.slice(0, 1)), Buffer.from('trailing garbage')]);
    expect(await readAll(bytes)).toHaveLength(1);
  });

  it('reports corruption: bad checksum, non-ustar header, truncation, missing end marker', async () => {
    const good = archiveOf(headers.slice(0, 1));
    const badSum = Buffer.from(good);
    badSum[0] = 'M'.charCodeAt(0);
    const gnuMagic = Buffer.from(good);
    gnuMagic.write('ustar  \0', 257, 'latin1');
    const cases = [badSum, gnuMagic, good.subarray(0, BLOCK + 3), good.subarray(0, 2 * BLOCK)];
    for (const bytes of cases) await expect(readAll(bytes)).rejects.toMatchObject({ code: FileSetErrorCode.Corrupt });
  });

  it('closes its source when the reader stops early', async () => {
    const source = Readable.from([archiveOf(headers)]);
    for await (const { member } of readTar(source)) if (member.name === 'media/a.txt') break;
    expect(source.destroyed).toBe(true);
  });
});
