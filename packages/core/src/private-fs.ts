import { appendFile, chmod, mkdir, open, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ownerToken } from '@stowage/storage';

/** Creates `path` (and missing parents) with mode 700, whatever the umask. */
export async function ensurePrivateDir(path: string): Promise<void> {
  const first = await mkdir(path, { recursive: true, mode: 0o700 });
  if (first === undefined) return;
  // mkdir's mode is masked by the umask: fix every folder this call created.
  for (let dir = path; dir.length >= first.length; dir = dirname(dir)) {
    await chmod(dir, 0o700);
    if (dir === first) break;
  }
}

/** Appends text to a file created with mode 600. */
export async function appendPrivate(path: string, text: string): Promise<void> {
  await ensurePrivateDir(dirname(path));
  await appendFile(path, text, { mode: 0o600 });
  await chmod(path, 0o600);
}

/**
 * Writes a file atomically (temp, fsync, rename, fsync folder) with mode 600. `durable: false`
 * skips both fsyncs, for a file whose reader checks it (a cache): a power cut may lose or tear it.
 */
export async function writePrivateAtomic(path: string, data: string | Uint8Array, options: { durable?: boolean } = {}): Promise<void> {
  const durable = options.durable ?? true;
  await ensurePrivateDir(dirname(path));
  const temp = join(dirname(path), `.${basename(path)}.stowage-tmp-${ownerToken()}`);
  const handle = await open(temp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.chmod(0o600);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  if (durable) await fsyncDir(dirname(path));
}

/** Flushes a file's content to disk. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  await handle.sync().finally(() => handle.close());
}

export async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A name for a temporary file beside `path`, hidden, in the same folder (same filesystem), carrying
 * this process's owner token so the next command can remove it if this process dies.
 */
export function tempSibling(path: string, purpose: string): string {
  return join(dirname(path), `.${basename(path)}.stowage-${purpose}-${ownerToken()}`);
}

/** `YYYYMMDD_HHMMSS` in local time, as the seed's `date +%Y%m%d_%H%M%S`. */
export function localStamp(time: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${time.getFullYear()}${p(time.getMonth() + 1)}${p(time.getDate())}_${p(time.getHours())}${p(time.getMinutes())}${p(time.getSeconds())}`;
}

/** Creates a private scratch folder `<parent>/<purpose>-<owner token>` that the next command removes if this process dies. */
export async function ownedScratchDir(parent: string, purpose: string): Promise<string> {
  await ensurePrivateDir(parent);
  const path = join(parent, `${purpose}-${ownerToken()}`);
  await mkdir(path, { mode: 0o700 });
  return path;
}
