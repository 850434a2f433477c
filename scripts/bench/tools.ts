import { join } from 'node:path';
import { dirBytes, fresh } from './files.js';
import { forgetInstalled, installed, run, runOk, sh, synced } from './measure.js';
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
    BORG_PASSPHRASE: 'stowage-bench',
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

/** borg 1.2: `borg init -e repokey` (AES-256 + HMAC, key in the repository), `create --compression zstd,3`. */
export function borgRepo(ctx: BenchContext, dir: string): Repo & { restore(target: string): string[] } {
  referenceEnv(ctx);
  return {
    tool: 'borg',
    init: async () => {
      await fresh(dir);
      await runOk(['borg', 'init', '-e', 'repokey', dir], ctx.root);
    },
    backup: (path) => synced(['borg', 'create', '--compression', 'zstd,3', `${dir}::{now:%Y%m%dT%H%M%S.%f}`, path]),
    // borg extracts into the working folder, under the archived path.
    restore: (target) => sh('cd "$2" && borg extract "$1::$(borg list --last 1 --short "$1")" && sync', dir, target),
    bytes: () => dirBytes(dir),
  };
}

/** The programs the references need, by the Debian package that installs each. */
const REFERENCE_PACKAGES: Record<string, string> = { borg: 'borgbackup', restic: 'restic', zstd: 'zstd', gpg: 'gnupg', sqlite3: 'sqlite3' };

/**
 * Installs the reference tools that are missing with apt-get (borg and restic above all: the
 * targets are ratios to them). Without apt-get or root, says which comparisons will be skipped.
 */
export async function ensureReferenceTools(root: string): Promise<void> {
  const missing: string[] = [];
  for (const [program, pkg] of Object.entries(REFERENCE_PACKAGES)) if (!(await installed(program))) missing.push(pkg);
  if (missing.length === 0) return;
  const canInstall = process.getuid?.() === 0 && (await installed('apt-get'));
  if (!canInstall) {
    console.log(`  not installed: ${missing.join(', ')} (run \`apt-get install ${missing.join(' ')}\` as root); the comparisons that need them are skipped`);
    return;
  }
  console.log(`  installing ${missing.join(', ')} with apt-get…`);
  const install = ['apt-get', 'install', '-y', '--no-install-recommends', ...missing];
  process.env.DEBIAN_FRONTEND = 'noninteractive';
  if ((await run(install, root)).code !== 0) {
    await runOk(['apt-get', 'update'], root);
    await runOk(install, root);
  }
  forgetInstalled();
}
