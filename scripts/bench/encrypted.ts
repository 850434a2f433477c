import { existsSync } from 'node:fs';
import { chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { bytes, fresh } from './files.js';
import { installed, run, runOk, sh } from './measure.js';
import type { BenchContext, Figure, Section } from './section.js';
import { passphraseEncryption, storedBytes, stowageRig, type Manifest } from './stowage.js';
import { borgRepo, resticRepo } from './tools.js';

const GPG = 'gpg --batch --quiet --yes --pinentry-mode loopback --passphrase-file "$1"';
/** What one would script without Stowage: a consistent copy, compressed, encrypted (gpg's own compression off: zstd did it). */
const PIPELINE = `sqlite3 "$2" ".backup '$3'" && zstd -3 -q -c "$3" | ${GPG} --symmetric --cipher-algo AES256 --compress-algo none -o "$4" && sync`;
const DECRYPT = `${GPG} --decrypt "$2" | zstd -d -q -f -o "$3" && sync`;
const THROUGHPUT = 'packages/crypto/bench/throughput.ts';

/**
 * Issues 4 and 14. Full backup with zstd-3 + AES-256 (passphrase) vs borg 1.2 (`create --compression zstd,3`, repokey),
 * restic and `sqlite3 .backup | zstd -3 | gpg`; restore vs `borg extract`, restic and `gpg | zstd -d`.
 */
export async function encryptedBackup(ctx: BenchContext): Promise<Section> {
  const dir = join(ctx.work, 'encrypted');
  const out = join(dir, 'out');
  const gnupg = join(dir, 'gnupg');
  await fresh(dir, out, gnupg);
  await chmod(gnupg, 0o700);
  process.env.GNUPGHOME = gnupg;
  const encryption = await passphraseEncryption(dir);
  const keyFile = encryption.passphraseFile;

  const source = { database: ctx.fixture.path };
  const compression = { algorithm: 'zstd', level: 3 };
  const stowage = await stowageRig(ctx, join(dir, 'stowage'), { source, compression, encryption });
  const zstdOnly = await stowageRig(ctx, join(dir, 'stowage-zstd'), { source, compression });
  const restic = resticRepo(ctx, join(dir, 'restic'));
  const borg = borgRepo(ctx, join(dir, 'borg'));
  const outputs = { pipeline: join(out, 'db.sqlite3.zst.pgp'), zstd: join(out, 'db.sqlite3.zst') };

  const sizes = new Map<string, number>();
  const sizeOf = (name: string, measure: () => Promise<number>) => async () => void sizes.set(name, await measure());
  const fileSize = (path: string) => async () => (await stat(path)).size;
  let backup: Manifest | undefined;
  let artifact = '';

  return {
    title: 'Compressed and encrypted full backup',
    about:
      'A full backup of the idle fixture with zstd level 3 and AES-256 OpenPGP (passphrase mode, key file mode 600), to one local destination, ' +
      "against borg 1.2's first backup (`borg init -e repokey`, `borg create --compression zstd,3`: the target baseline), " +
      'what one would script without Stowage (`sqlite3 .backup`, then `zstd -3 | gpg --symmetric --cipher-algo AES256 --compress-algo none`), ' +
      "restic's first backup (repository format 2: zstd `auto` compression + AES-256), `zstd -3` alone (the size baseline) and Stowage with " +
      "zstd only (the cost of encryption inside Stowage). Writers held is how long the backup kept the database's writers waiting (the manifest's `source.lockMs`). " +
      'A restore of that backup, validated first (`stowage validate latest` in the setup: its manifest then records that the snapshot passed ' +
      '`integrity_check` and `foreign_key_check`, so the timed restore proves its bytes are that snapshot by SHA-256 and reads back only the header and schema), ' +
      'against `borg extract`, `restic restore latest` and `gpg --decrypt | zstd -d` ' +
      "of Stowage's own artifact (recovery without Stowage), and against `stowage restore --check full` (the same restore running both checks over the whole file). " +
      'References end with `sync`. Encoding throughputs come from ' +
      `\`${THROUGHPUT}\` run on the fixture (in-process streams, no I/O but the file's).`,
    cases: [
      {
        operation: 'full backup, zstd-3 + AES-256',
        maxRssMiB: 128,
        stowage: {
          label: 'stowage backup --type full',
          before: stowage.reset,
          argv: () => stowage.cli('backup', '--type', 'full'),
          after: async () => void (backup = (await stowage.manifests('full')).at(-1)),
        },
        references: [
          {
            label: 'sqlite3 .backup; zstd -3 | gpg',
            tools: ['sqlite3', 'zstd', 'gpg'],
            before: () => fresh(out),
            argv: () => sh(PIPELINE, keyFile, ctx.fixture.path, join(out, 'copy.sqlite3'), outputs.pipeline),
            after: sizeOf('pipeline', fileSize(outputs.pipeline)),
          },
          {
            label: 'borg create (1st)',
            tools: ['borg'],
            maxRatio: 0.8,
            before: borg.init,
            argv: () => borg.backup(ctx.fixture.path),
            after: sizeOf('borg', borg.bytes),
          },
          {
            label: 'restic backup (1st)',
            tools: ['restic'],
            before: restic.init,
            argv: () => restic.backup(ctx.fixture.path),
            after: sizeOf('restic', restic.bytes),
          },
          {
            label: 'zstd -3',
            tools: ['zstd'],
            before: () => fresh(out),
            argv: () => sh('zstd -3 -q -f "$1" -o "$2" && sync', ctx.fixture.path, outputs.zstd),
            after: sizeOf('zstd', fileSize(outputs.zstd)),
          },
          { label: 'stowage backup, zstd-3 only', before: zstdOnly.reset, argv: () => zstdOnly.cli('backup', '--type', 'full') },
        ],
      },
      {
        operation: 'restore, zstd-3 + AES-256',
        maxRssMiB: 128,
        setup: async () => {
          await stowage.reset();
          await runOk(stowage.cli('backup', '--type', 'full'), ctx.root);
          await runOk(stowage.cli('validate', 'latest'), ctx.root);
          const [manifest] = await stowage.manifests('full');
          const key = manifest?.artifacts.find((a) => a.role === 'database')?.key;
          if (!key) throw new Error(`no database artifact in the manifest at ${stowage.backups}`);
          artifact = join(stowage.backups, key);
          if (await installed('restic')) {
            await restic.init();
            await runOk(restic.backup(ctx.fixture.path), ctx.root);
          }
          if (await installed('borg')) {
            await borg.init();
            await runOk(borg.backup(ctx.fixture.path), ctx.root);
          }
        },
        stowage: {
          label: 'stowage restore latest',
          before: () => fresh(out),
          argv: () => stowage.cli('restore', 'latest', '--target', join(out, 'restored.sqlite3')),
        },
        references: [
          { label: 'borg extract', tools: ['borg'], maxRatio: 1, before: () => fresh(out), argv: () => borg.restore(out) },
          {
            label: 'stowage restore --check full',
            before: () => fresh(out),
            argv: () => stowage.cli('restore', 'latest', '--target', join(out, 'restored.sqlite3'), '--check', 'full'),
          },
          { label: 'restic restore latest', tools: ['restic'], before: () => fresh(out), argv: () => restic.restore(out) },
          {
            label: 'gpg --decrypt | zstd -d',
            tools: ['gpg', 'zstd'],
            before: () => fresh(out),
            argv: () => sh(DECRYPT, keyFile, artifact, join(out, 'db.sqlite3')),
          },
        ],
      },
    ],
    figures: async () => {
      const figures: Figure[] = [];
      const zstd = sizes.get('zstd');
      if (backup) {
        const total = storedBytes(backup);
        const off = zstd ? total / zstd - 1 : undefined;
        figures.push({
          name: 'Stowage stored (database + page-hash list)',
          value: `${bytes(total)}${off === undefined ? '' : ` (${off >= 0 ? '+' : ''}${(100 * off).toFixed(1)} % vs \`zstd -3\`)`}`,
          target:
            off === undefined
              ? undefined
              : { target: 'stored size within 5 % of `zstd -3` of the database', measured: `${(100 * off).toFixed(1)} %`, met: Math.abs(off) <= 0.05 },
        });
        figures.push({ name: '  of which the database', value: bytes(storedBytes(backup, 'database')) });
        const held = backup.source.lockMs;
        figures.push({
          name: 'writers held (manifest `source.lockMs`)',
          value: `${held} ms`,
          target: { target: 'writers held ≤ 500 ms', measured: `${held} ms`, met: held <= 500 },
        });
      }
      const labels: Record<string, string> = {
        zstd: '`zstd -3` of the database',
        pipeline: '`zstd -3 | gpg` output',
        restic: 'restic repository after the 1st backup',
        borg: 'borg repository after the 1st backup',
      };
      for (const [name, size] of sizes) figures.push({ name: labels[name] ?? name, value: bytes(size) });
      return [...figures, ...(await throughput(ctx))];
    },
    dispose: async () => {
      if (await installed('gpgconf')) await run(['gpgconf', '--kill', 'gpg-agent'], ctx.root);
    },
  };
}

/** Throughput of each encoding stage alone, from the crypto package's own benchmark run on the fixture. */
async function throughput(ctx: BenchContext): Promise<Figure[]> {
  if (!existsSync(join(ctx.root, THROUGHPUT))) return [{ name: 'encoding throughput', value: `not measured: ${THROUGHPUT} is missing` }];
  console.log(`  encoding throughput: ${THROUGHPUT} on the fixture…`);
  const { code, output } = await run([process.execPath, '--import', 'tsx', THROUGHPUT, ctx.fixture.path], ctx.root);
  const lines = output.split('\n').flatMap((line) => {
    const match = /^(\S.*?)\s{2,}(\d+) MiB\/s/.exec(line);
    return match ? [{ name: `throughput: ${match[1]}`, value: `${match[2]} MiB/s` }] : [];
  });
  return code === 0 && lines.length ? lines : [{ name: 'encoding throughput', value: `not measured: ${THROUGHPUT} exited ${code}` }];
}
