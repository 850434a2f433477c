import { randomUUID } from 'node:crypto';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileSetErrorCode } from './errors.js';
import { INDEX_FORMAT, INDEX_VERSION, type FileEntry, type FileSetEntry, type FileSetIndex } from './fileset-index.js';
import { restoreFileSets } from './restore.js';
import { craftArchive, fromFile, member, sha256, snapshotTree, tempDir } from './test/harness.js';

const evil = Buffer.from('pwned\n');

/** An index whose one folder set `media` lists `entries` (the root is added). */
function indexOf(entries: FileSetEntry[], path = 'media'): FileSetIndex {
  return {
    format: INDEX_FORMAT,
    version: INDEX_VERSION,
    id: randomUUID(),
    parentId: null,
    createdAt: new Date(0).toISOString(),
    sets: { media: { kind: 'folder', path, entries: [{ path: '.', type: 'dir', mode: 0o755, mtimeMs: 0 }, ...entries] } },
  };
}

const file = (path: string, content = evil): FileEntry => ({
  path,
  type: 'file',
  mode: 0o644,
  mtimeMs: 0,
  size: content.length,
  sha256: sha256(content),
  ctimeMs: 0,
});

/**
 * Restores `archive` into `<sandbox>/target` and expects `code`; the sandbox (target included)
 * must look exactly as before: nothing written inside or outside the target.
 */
async function expectRefused(archive: Buffer, code: string, prepare?: (sandbox: string) => Promise<void>): Promise<void> {
  const sandbox = await tempDir('sandbox');
  const target = join(sandbox, 'target');
  await mkdir(join(sandbox, 'outside'), { recursive: true });
  await mkdir(target);
  await writeFile(join(target, 'keep.txt'), 'kept');
  await prepare?.(sandbox);
  const archiveFile = join(await tempDir('archives'), 'evil.tar');
  await writeFile(archiveFile, archive);
  // The target's own mtime moves: the restore's work folder was made and removed inside it.
  const state = async () => ({ ...(await snapshotTree(sandbox)), target: 'the target folder' });
  const before = await state();

  await expect(restoreFileSets({ archives: [fromFile(archiveFile)], targetDir: target })).rejects.toMatchObject({ code });
  expect(await state()).toEqual(before);
  expect(await readdir('/etc')).not.toContain('evil');
}

describe('restore refuses hostile archives and writes nothing', () => {
  it("refuses a member named '../evil'", async () => {
    const archive = craftArchive([{ header: member('media/', 'directory') }, { header: member('../evil'), content: evil }], indexOf([]));
    await expectRefused(archive, FileSetErrorCode.UnsafePath);
  });

  it("refuses '..' hidden inside a member name", async () => {
    const archive = craftArchive([{ header: member('media/a/../../../outside/evil'), content: evil }], indexOf([]));
    await expectRefused(archive, FileSetErrorCode.UnsafePath);
  });

  it('refuses an absolute member name', async () => {
    const archive = craftArchive([{ header: member('/tmp/evil'), content: evil }], indexOf([]));
    await expectRefused(archive, FileSetErrorCode.UnsafePath);
  });

  it('refuses a symlink to /etc followed by a file under it', async () => {
    const archive = craftArchive(
      [{ header: member('media/', 'directory') }, { header: member('media/etc', 'symlink', '/etc') }, { header: member('media/etc/evil'), content: evil }],
      indexOf([{ path: 'etc', type: 'symlink', mtimeMs: 0, linkTarget: '/etc' }]),
    );
    await expectRefused(archive, FileSetErrorCode.UnsafePath);
  });

  it('refuses a relative symlink climbing out of its set, then a file through it', async () => {
    const archive = craftArchive(
      [{ header: member('media/up', 'symlink', '../../outside') }, { header: member('media/up/evil'), content: evil }],
      indexOf([{ path: 'up', type: 'symlink', mtimeMs: 0, linkTarget: '../../outside' }]),
    );
    await expectRefused(archive, FileSetErrorCode.UnsafePath);
  });

  it('refuses hard links', async () => {
    const archive = craftArchive([{ header: { ...member('media/passwd'), type: 'file' } }], indexOf([]));
    // Turn the member into a hard link to /etc/passwd (typeflag '1'), fixing the checksum.
    const header = archive.subarray(0, 512);
    header.write('1', 156);
    header.write('/etc/passwd', 157);
    header.fill(0x20, 148, 156);
    const sum = header.reduce((total, byte) => total + byte, 0);
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    await expectRefused(archive, FileSetErrorCode.UnsafePath);
  });

  it('refuses an index whose entries escape, even when every member looks harmless', async () => {
    const content = Buffer.from('harmless');
    const harmless = [{ header: member('media/ok.txt'), content }];
    const cases: FileSetIndex[] = [
      indexOf([file('../evil', content)]),
      indexOf([file('/abs', content)]),
      indexOf([{ path: 'l', type: 'symlink', mtimeMs: 0, linkTarget: '/etc' }]),
      indexOf([
        { path: 'here', type: 'symlink', mtimeMs: 0, linkTarget: '.' },
        { path: 'out', type: 'symlink', mtimeMs: 0, linkTarget: 'here/..' },
      ]),
      indexOf([
        { path: 'l', type: 'symlink', mtimeMs: 0, linkTarget: 'sub' },
        { path: 'sub', type: 'dir', mode: 0o755, mtimeMs: 0 },
        file('l/ok.txt', content),
      ]),
      indexOf([file('ok.txt', content)], '../outside'),
      {
        ...indexOf([file('ok.txt', content)]),
        sets: { ...indexOf([]).sets, inner: { kind: 'folder', path: 'media/x', entries: [{ path: '.', type: 'dir', mode: 0o755, mtimeMs: 0 }] } },
      },
      { ...indexOf([]), sets: { config: { kind: 'files', entries: [file('../../etc/evil', content)] } } },
    ];
    for (const index of cases) await expectRefused(craftArchive(harmless, index), FileSetErrorCode.UnsafePath);
  });

  it('refuses to restore through a symlink the target folder already holds', async () => {
    const content = Buffer.from('photo');
    const archive = craftArchive(
      [{ header: member('media/', 'directory') }, { header: member('media/a.jpg'), content }],
      indexOf([file('a.jpg', content)], 'uploads/media'),
    );
    await expectRefused(archive, FileSetErrorCode.UnsafePath, async (sandbox) => {
      await symlink(join(sandbox, 'outside'), join(sandbox, 'target/uploads'));
    });
  });

  it('refuses members of unknown kinds and archives that are not Stowage archives', async () => {
    await expectRefused(craftArchive([{ header: member('README'), content: evil }], indexOf([])), FileSetErrorCode.Corrupt);
    await expectRefused(Buffer.from('this is not a tar archive'.padEnd(2048, '!')), FileSetErrorCode.Corrupt);
    await expectRefused(craftArchive([], { format: INDEX_FORMAT, version: 99 }), FileSetErrorCode.Corrupt);
    await expectRefused(
      craftArchive([{ header: member('media/x.txt'), content: evil }], indexOf([file('x.txt', Buffer.from('other'))])),
      FileSetErrorCode.Corrupt,
    );
  });
});
