import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fresh } from './files.js';
import type { BenchContext } from './section.js';

/** The fields of a Stowage manifest the benchmarks read (docs/formats.md). */
export interface Manifest {
  id: string;
  seq: number;
  /** How long the backup held the database's writers off, in ms; the SHA-256 of the database it holds. */
  source: { lockMs: number; snapshotSha256: string };
  artifacts: Array<{ role: string; key: string; size: number }>;
}

/** A Stowage config in its own folder: one local destination `<dir>/backups` first, state in `<dir>/state`. */
export interface StowageRig {
  backups: string;
  /** argv of the CLI with this config. */
  cli(...args: string[]): string[];
  /** Empties the local destination and the state folder (remote destinations keep their objects). */
  reset(): Promise<void>;
  /** Committed backups of one type at the local destination, oldest first. */
  manifests(type: 'full' | 'incremental'): Promise<Manifest[]>;
}

export async function stowageRig(ctx: BenchContext, dir: string, settings: Record<string, unknown>, remotes: object[] = []): Promise<StowageRig> {
  const backups = join(dir, 'backups');
  const state = join(dir, 'state');
  const config = join(dir, 'stowage.config.json');
  await fresh(dir);
  await writeFile(config, `${JSON.stringify({ ...settings, stateDir: state, destinations: [{ name: 'local', url: backups }, ...remotes] }, null, 2)}\n`);
  return {
    backups,
    cli: (...args) => [...ctx.stowage, ...args, '--config', config],
    reset: () => fresh(backups, state),
    async manifests(type) {
      const folder = join(backups, type);
      const names = (await readdir(folder).catch(() => [])).filter((name) => name.endsWith('.manifest.json'));
      const manifests = await Promise.all(names.map(async (name) => JSON.parse(await readFile(join(folder, name), 'utf8')) as Manifest));
      return manifests.sort((a, b) => a.seq - b.seq);
    },
  };
}

/** A rig's `encryption` settings: AES-256 in passphrase mode, a random passphrase in `<dir>/passphrase` (mode 600). */
export async function passphraseEncryption(dir: string): Promise<{ mode: 'passphrase'; passphraseFile: string }> {
  const passphraseFile = join(dir, 'passphrase');
  await mkdir(dir, { recursive: true });
  await writeFile(passphraseFile, randomBytes(24).toString('base64url'), { mode: 0o600 });
  return { mode: 'passphrase', passphraseFile };
}

/** Bytes stored for one backup: all its artifacts, or those of one role (`database`, `delta`, `page-hashes`). */
export function storedBytes(manifest: Manifest, role?: string): number {
  return manifest.artifacts.filter((a) => role === undefined || a.role === role).reduce((sum, a) => sum + a.size, 0);
}
