import { copyFile, open, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { bytes, evictFromPageCache, fresh } from './files.js';
import { mutate } from './fixture.js';
import { installed, runOk } from './measure.js';
import { positive, type BenchContext, type Figure, type Reference, type Section } from './section.js';
import { passphraseEncryption, storedBytes, stowageRig, type Manifest } from './stowage.js';
import { borgRepo, resticRepo, type Repo } from './tools.js';

const PAGE = 4096;

/** Pages of `after` that differ from `before`'s page at the same index (or lie past its end), written one after another to `out`. */
async function changedPages(before: string, after: string, out: string): Promise<{ pages: number; changed: number }> {
  const [a, b, o] = await Promise.all([open(before), open(after), open(out, 'w')]);
  try {
    const chunk = 256 * PAGE;
    const bufA = Buffer.alloc(chunk);
    const bufB = Buffer.alloc(chunk);
    let pages = 0;
    let changed = 0;
    for (let offset = 0; ; offset += chunk) {
      const { bytesRead } = await b.read(bufB, 0, chunk, offset);
      if (bytesRead === 0) break;
      const { bytesRead: baseRead } = await a.read(bufA, 0, chunk, offset);
      for (let p = 0; p < bytesRead; p += PAGE, pages++) {
        const page = bufB.subarray(p, p + PAGE);
        if (p >= baseRead || !page.equals(bufA.subarray(p, p + PAGE))) {
          changed++;
          await o.write(page);
        }
      }
    }
    return { pages, changed };
  } finally {
    await Promise.all([a.close(), b.close(), o.close()]);
  }
}

const times = (a: number, b: number) => `${(a / b).toFixed(2)}×`;

/**
 * Issue 3. One simulated hour (≈1 % of pages) after a full: Stowage's incremental vs restic's and borg's second backup,
 * in time and bytes added, and vs the changed pages themselves. Then a chain of incrementals restored vs the full alone.
 */
export async function incrementalBackups(ctx: BenchContext): Promise<Section> {
  const chainLength = Math.round(positive('BENCH_CHAIN_LENGTH', process.env.BENCH_CHAIN_LENGTH, 24));
  const dir = join(ctx.work, 'incremental');
  const base = ctx.fixture.path;
  const mutated = join(dir, 'mutated.sqlite3');
  const live = join(dir, 'live', 'db.sqlite3');
  const out = join(dir, 'out');
  const restored = join(out, 'restored.sqlite3');
  // Default compression (zstd level 3) and AES-256 in passphrase mode: restic and borg encrypt too.
  const stowage = await stowageRig(ctx, join(dir, 'stowage'), { source: { database: live }, encryption: await passphraseEncryption(dir) });
  const restic = resticRepo(ctx, join(dir, 'restic'));
  const borg = borgRepo(ctx, join(dir, 'borg'));

  let delta: { pages: number; changed: number; raw: number; zstd?: number } | undefined;
  let incremental: Manifest | undefined;
  const added = new Map<string, number>();
  let chain: { fullId: string; sameStateFullId: string; incrementals: Manifest[]; resticBytes?: number | undefined } | undefined;
  /** Before a chain restore: an empty output folder, and every backup to be read from the disk. */
  const coldRestore = async () => {
    await fresh(out);
    await evictFromPageCache(ctx.root, stowage.backups, join(dir, 'restic'));
  };

  /** The db at `live` as it was before the hour, backed up once by `first`; then the hour's changes, untimed. */
  const beforeTheHour = async (first: string[]) => {
    await copyFile(base, live);
    await runOk(first, ctx.root);
    await copyFile(mutated, live);
  };
  const secondBackup = (repo: Repo, maxRatio?: number): Reference => {
    let size = 0;
    return {
      label: `${repo.tool} backup (2nd)`,
      tools: [repo.tool],
      maxRatio,
      before: async () => {
        await repo.init();
        await beforeTheHour(repo.backup(live));
        size = await repo.bytes();
      },
      argv: () => repo.backup(live),
      after: async () => void added.set(repo.tool, (await repo.bytes()) - size),
    };
  };

  return {
    title: 'Incremental backups and chain restore',
    about:
      `zstd level 3 and AES-256 OpenPGP encryption (passphrase mode; restic and borg encrypt too), one local destination. **Incremental**: a full backup of the fixture, then one simulated hour ` +
      '(`gen.py mutate --seed 1`, about 1 % of the pages changed, scattered), then the timed `stowage backup --type incremental`; ' +
      'restic and borg back up the same file before and after the same hour, and their second backup is timed (restic: repository format 2, ' +
      'zstd `auto` compression, AES-256; borg 1.2: `init -e repokey`, `create --compression zstd,3`). Bytes added are the growth of each repository folder; ' +
      "Stowage's are its incremental's artifacts (delta + page-hash list) from the manifest. The changed pages are found by comparing " +
      `the two files 4 KiB page by page and compressed together with \`zstd -3\`. **Chain restore**: a full, then ${chainLength} ` +
      `incrementals with \`gen.py mutate --seed 1..${chainLength}\` between them (restic backs up the same states), then ` +
      `the restore of the last incremental (full + ${chainLength} deltas) vs that of a full backup taken of the same state (the target: ` +
      "the same bytes written and checked), that of the chain's own full (the fixture before the changes: its `integrity_check` is " +
      'about 1 s shorter on this machine) and `restic restore latest`; every Stowage restore runs `--check full`, as the first ' +
      "restore of a snapshot does by default (`BENCH_CHAIN_LENGTH`, default 24). Before each of these restores, Stowage's backups and " +
      "restic's repository are dropped from the page cache (`dd iflag=nocache`), so each reads its backup from the disk: the full taken " +
      'last would otherwise still be in memory while the chain, written earlier, is not.',
    cases: [
      {
        operation: 'incremental backup (1 h of changes)',
        maxRssMiB: 128,
        setup: async () => {
          await fresh(dirname(live), out);
          await copyFile(base, mutated);
          await mutate(ctx.root, mutated, 1);
          const pagesFile = join(dir, 'changed-pages.bin');
          delta = { ...(await changedPages(base, mutated, pagesFile)), raw: (await stat(pagesFile)).size };
          if (await installed('zstd')) {
            await runOk(['zstd', '-3', '-q', '-f', pagesFile, '-o', `${pagesFile}.zst`], ctx.root);
            delta.zstd = (await stat(`${pagesFile}.zst`)).size;
          }
          console.log(
            `  ${delta.changed} of ${delta.pages} pages changed: ${bytes(delta.raw)} raw, ${delta.zstd === undefined ? 'zstd not installed' : `${bytes(delta.zstd)} zstd -3`}`,
          );
        },
        stowage: {
          label: 'stowage backup --type incremental',
          before: async () => {
            await stowage.reset();
            await beforeTheHour(stowage.cli('backup', '--type', 'full'));
          },
          argv: () => stowage.cli('backup', '--type', 'incremental'),
          after: async () => void (incremental = (await stowage.manifests('incremental')).at(-1)),
        },
        references: [secondBackup(restic, 0.25), secondBackup(borg)],
      },
      {
        operation: `restore, full + ${chainLength} incrementals`,
        setup: async () => {
          const withRestic = await installed('restic');
          await stowage.reset();
          if (withRestic) await restic.init();
          await copyFile(base, live);
          const backUp = async (type: string) => {
            await runOk(stowage.cli('backup', '--type', type), ctx.root);
            if (withRestic) await runOk(restic.backup(live), ctx.root);
          };
          await backUp('full');
          const resticStart = await restic.bytes();
          for (let seed = 1; seed <= chainLength; seed++) {
            await mutate(ctx.root, live, seed);
            await backUp('incremental');
            console.log(`  chain: incremental ${seed}/${chainLength} taken`);
          }
          const [full] = await stowage.manifests('full');
          const incrementals = await stowage.manifests('incremental');
          if (!full || incrementals.length !== chainLength)
            throw new Error(`expected 1 full and ${chainLength} incrementals, found ${full ? 1 : 0} and ${incrementals.length}`);
          const resticBytes = withRestic ? (await restic.bytes()) - resticStart : undefined;
          // The chain's last state as a full backup: the same bytes to write and check as the chain's restore.
          await runOk(stowage.cli('backup', '--type', 'full'), ctx.root);
          const sameState = (await stowage.manifests('full')).find((m) => m.id !== full.id);
          if (!sameState || sameState.source.snapshotSha256 !== incrementals.at(-1)!.source.snapshotSha256)
            throw new Error('the full taken after the chain is not of the state its last incremental holds');
          chain = { fullId: full.id, sameStateFullId: sameState.id, incrementals, resticBytes };
        },
        // `--check full` everywhere: the first restore of a snapshot runs it anyway (`auto`), and the
        // same-state full must not skip it because the chain's restore passed it.
        stowage: {
          label: 'stowage restore <the last incremental> --check full',
          argv: () => stowage.cli('restore', chain!.incrementals.at(-1)!.id, '--check', 'full', '--target', restored),
          before: coldRestore,
        },
        references: [
          {
            label: 'stowage restore <a full of the same state> --check full',
            argv: () => stowage.cli('restore', chain!.sameStateFullId, '--check', 'full', '--target', restored),
            before: coldRestore,
            maxRatio: 1.2,
          },
          {
            label: "stowage restore <the chain's full> --check full",
            argv: () => stowage.cli('restore', chain!.fullId, '--check', 'full', '--target', restored),
            before: coldRestore,
          },
          { label: 'restic restore latest', tools: ['restic'], argv: () => restic.restore(out), before: coldRestore },
        ],
      },
    ],
    figures: async () => {
      const figures: Figure[] = [];
      if (delta) {
        figures.push(
          { name: 'pages changed by the hour', value: `${delta.changed} of ${delta.pages} (${((100 * delta.changed) / delta.pages).toFixed(2)} %)` },
          { name: 'changed pages, raw', value: bytes(delta.raw) },
          { name: 'changed pages, `zstd -3`', value: delta.zstd === undefined ? 'not measured: `zstd` is not installed' : bytes(delta.zstd) },
        );
      }
      if (incremental) {
        const total = storedBytes(incremental);
        const z = delta?.zstd;
        figures.push({
          name: "Stowage's incremental, stored (delta + page-hash list)",
          value: `${bytes(total)}${z ? ` = ${times(total, z)} the changed pages' \`zstd -3\`` : ''}`,
          target: z ? { target: 'incremental stored ≤ 1.1× `zstd -3` of the changed pages', measured: times(total, z), met: total <= 1.1 * z } : undefined,
        });
        for (const role of ['delta', 'page-hashes']) {
          const part = storedBytes(incremental, role);
          figures.push({ name: `  of which ${role}`, value: `${bytes(part)}${z ? ` = ${times(part, z)}` : ''}` });
        }
        for (const [tool, growth] of added)
          figures.push({ name: `${tool}: repository growth on the 2nd backup`, value: `${bytes(growth)}; Stowage stores ${times(total, growth)} of it` });
      }
      if (chain) {
        const total = chain.incrementals.reduce((sum, m) => sum + storedBytes(m), 0);
        figures.push({ name: `Stowage: ${chainLength} incrementals, stored`, value: bytes(total) });
        if (chain.resticBytes !== undefined)
          figures.push({ name: `restic: repository growth over the same ${chainLength} backups`, value: bytes(chain.resticBytes) });
      }
      return figures;
    },
  };
}
