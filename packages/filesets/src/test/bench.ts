/**
 * Throughput of file-set backup and restore on a generated media folder, with GNU tar on the same
 * files as the yardstick. Run: `npx tsx packages/filesets/src/test/bench.ts [MiB]` (default 200).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { writeFileSetArchive } from '../archive.js';
import { restoreFileSets } from '../restore.js';
import { scanFileSets } from '../scan.js';

const totalMiB = Number(process.argv[2] ?? 200);
const dir = await mkdtemp(join(tmpdir(), 'stowage-filesets-bench-'));
const mib = (bytes: number, ms: number): string => `${(bytes / 1024 / 1024 / (ms / 1000)).toFixed(0)} MiB/s`;
const timed = async <T>(work: () => Promise<T> | T): Promise<[T, number]> => {
  const start = performance.now();
  const value = await work();
  return [value, performance.now() - start];
};

try {
  // Photos of 256 KiB to 4 MiB, plus a few 16 MiB videos: a GreaterWMS media folder writ large.
  let written = 0;
  for (let i = 0; written < totalMiB * 1024 * 1024; i++) {
    const size = i % 25 === 24 ? 16 * 1024 * 1024 : (256 + ((i * 997) % 3840)) * 1024;
    await mkdir(join(dir, 'media', `batch-${i % 10}`), { recursive: true });
    await writeFile(join(dir, 'media', `batch-${i % 10}`, `item-${i}.bin`), randomBytes(size));
    written += size;
  }
  const config = { media: { path: 'media' } };
  const [scan, scanMs] = await timed(() => scanFileSets(config, { baseDir: dir }));
  const files = scan.sets.media?.entries.filter((entry) => entry.type === 'file').length ?? 0;
  console.log(`media: ${(written / 1024 / 1024).toFixed(0)} MiB in ${files} files; scan ${scanMs.toFixed(0)} ms`);

  const discard = () => new Writable({ write: (_chunk, _encoding, done) => done() });
  const [, nullMs] = await timed(() => writeFileSetArchive(scan, discard()));
  console.log(`archive → /dev/null (read + SHA-256 + tar): ${mib(written, nullMs)}`);

  const staged = join(dir, 'full.files.tar');
  const [result, fileMs] = await timed(() => writeFileSetArchive(scan, createWriteStream(staged)));
  console.log(`archive → staging file: ${mib(written, fileMs)} (${result.archiveBytes} bytes)`);

  const [, gnuMs] = await timed(() => execFileSync('tar', ['-cf', join(dir, 'gnu.tar'), '-C', dir, 'media']));
  console.log(`GNU tar -cf of the same folder: ${mib(written, gnuMs)}`);
  const [, catMs] = await timed(() => execFileSync('sh', ['-c', `find '${join(dir, 'media')}' -type f -exec cat {} + > /dev/null`]));
  console.log(`cat of every file to /dev/null: ${mib(written, catMs)}`);

  const [, restoreMs] = await timed(() => restoreFileSets({ archives: [async () => createReadStream(staged)], targetDir: join(dir, 'restore') }));
  console.log(`restore (spool + verify + place): ${mib(written, restoreMs)}`);
  const [, gnuRestoreMs] = await timed(() => {
    execFileSync('mkdir', ['-p', join(dir, 'gnu-restore')]);
    execFileSync('tar', ['-xf', join(dir, 'gnu.tar'), '-C', join(dir, 'gnu-restore')]);
  });
  console.log(`GNU tar -xf: ${mib(written, gnuRestoreMs)}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
