import { join } from 'node:path';
import { dirBytes, fresh } from './files.js';
import { runOk, synced } from './measure.js';
import type { BenchContext } from './section.js';

/** A restic or borg repository in a folder of the bench's scratch space. */
export interface Repo {
  tool: 'restic' | 'borg';
  /** A new empty repository (untimed setup). */
  init(): Promise<void>;
  /** argv of one backup of `path`, synced. */
  backup(path: string): string[];
  /** Size of the repository folder. */
  bytes(): Promise<number>;
}

/** Passwords, caches and GnuPG's home inside the scratch folder, for every reference tool the bench spawns. */
function referenceEnv(ctx: BenchContext): void {
  Object.assign(process.env, {
    RESTIC_PASSWORD: 'stowage-bench',
    RESTIC_CACHE_DIR: join(ctx.work, 'restic-cache'),
    BORG_PASSPHRASE: '',
    BORG_BASE_DIR: join(ctx.work, 'borg-base'),
    BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
    BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
  });
}

/** restic 0.14: repository format 2 (compression `auto`, zstd), AES-256 always on. */
export function resticRepo(ctx: BenchContext, dir: string): Repo & { restore(target: string): string[] } {
  referenceEnv(ctx);
  const restic = (...args: string[]) => ['restic', '--repo', dir, '--quiet', ...args];
  return {
    tool: 'restic',
    init: async () => {
      await fresh(dir);
      await runOk(restic('init'), ctx.root);
    },
    backup: (path) => synced(restic('backup', path)),
    restore: (target) => synced(restic('restore', 'latest', '--target', target)),
    bytes: () => dirBytes(dir),
  };
}

/** borg 1.2: `borg init -e none`, default lz4 compression. */
export function borgRepo(ctx: BenchContext, dir: string): Repo {
  referenceEnv(ctx);
  return {
    tool: 'borg',
    init: async () => {
      await fresh(dir);
      await runOk(['borg', 'init', '-e', 'none', dir], ctx.root);
    },
    backup: (path) => synced(['borg', 'create', `${dir}::{now:%Y%m%dT%H%M%S.%f}`, path]),
    bytes: () => dirBytes(dir),
  };
}
