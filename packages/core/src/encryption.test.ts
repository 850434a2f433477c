import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPair, generatePassphrase, writeKeyFile } from '@stowage/crypto';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { resolveConfig, type ConfigFile } from './config.js';
import { openEngine } from './engine.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
let ws: Workspace;
let gnupgHome: string | undefined;
afterEach(async () => {
  await ws?.dispose();
  if (gnupgHome) await rm(gnupgHome, { recursive: true, force: true });
  gnupgHome = undefined;
});

const passphraseConfig = {
  compression: { algorithm: 'zstd', level: 3 },
  encryption: { mode: 'passphrase', passphraseFile: 'backup.key' },
} as const satisfies Partial<ConfigFile>;

async function passphraseWorkspace(): Promise<Workspace> {
  const workspace = await makeWorkspace({ config: passphraseConfig });
  await writeKeyFile(join(workspace.dir, 'backup.key'), `${generatePassphrase()}\n`);
  return workspace;
}

/** Every stored byte under the backups folder, concatenated. */
async function allStoredBytes(dir: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && !entry.name.endsWith('.log')) parts.push(await readFile(join(entry.parentPath, entry.name)));
  }
  return Buffer.concat(parts);
}

async function scratchGnupg(): Promise<string> {
  gnupgHome = await mkdtemp(join(tmpdir(), 'stowage-gnupg-'));
  await chmod(gnupgHome, 0o700);
  return gnupgHome;
}

describe('encrypted, compressed backups', () => {
  it('passphrase mode: stock gpg and zstd recover a database sqlite3 accepts, and no plaintext is stored', async () => {
    ws = await passphraseWorkspace();
    const known =
      (new Database(ws.database, { readonly: true }).prepare('SELECT goods_desc FROM goods WHERE length(goods_desc) > 8 LIMIT 1').pluck().get() as string) ??
      '';
    expect(known.length).toBeGreaterThan(8);
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const artifact = manifest.artifacts.find((a) => a.role === 'database')!;
    expect(artifact).toMatchObject({ key: `full/${manifest.id}.sqlite3.zst.pgp`, encoding: ['zstd', 'pgp'] });
    expect(manifest.encoding).toMatchObject({
      compression: { algorithm: 'zstd', level: 3 },
      encryption: { cipher: 'AES-256', mode: 'passphrase', fingerprints: [] },
    });
    expect(JSON.stringify(manifest)).not.toContain(await readFile(join(ws.dir, 'backup.key'), 'utf8').then((t) => t.trim()));

    const home = await scratchGnupg();
    const out = join(ws.dir, 'recovered.sqlite3');
    const zst = execFileSync(
      'gpg',
      [
        '--homedir',
        home,
        '--batch',
        '--quiet',
        '--pinentry-mode',
        'loopback',
        '--passphrase-file',
        join(ws.dir, 'backup.key'),
        '--decrypt',
        join(ws.backups, artifact.key),
      ],
      { maxBuffer: 1 << 28 },
    );
    await writeFile(`${out}.zst`, zst);
    execFileSync('zstd', ['-q', '-d', `${out}.zst`, '-o', out]);
    expect(execFileSync('sqlite3', [out, 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim()).toBe('ok');
    expect(sha256(await readFile(out))).toBe(manifest.source.snapshotSha256);

    expect((await allStoredBytes(ws.backups)).includes(Buffer.from(known))).toBe(false);
    const restored = await restore(ws.engine, { testMode: true });
    expect(sha256(await readFile(restored.target!))).toBe(manifest.source.snapshotSha256);
  });

  it('public-key mode: the backup host encrypts but cannot decrypt, by design; the private key elsewhere restores (and gpg does too)', async () => {
    const pair = await generateKeyPair({ userId: 'Stowage restore <ops@example.com>' });
    const escrow = await generateKeyPair({ userId: 'Offline escrow <escrow@example.com>' });
    const recipients = {
      compression: { algorithm: 'zstd' as const, level: 3 },
      encryption: { mode: 'public-key' as const, recipients: ['ops.pub.asc', 'escrow.pub.asc'] },
    };
    ws = await makeWorkspace({ config: recipients });
    await writeFile(join(ws.dir, 'ops.pub.asc'), pair.publicKey);
    await writeFile(join(ws.dir, 'escrow.pub.asc'), escrow.publicKey);
    const full = await backup(ws.engine, { type: 'full' });
    expect(full.manifest.encoding.encryption).toMatchObject({ mode: 'public-key', fingerprints: [pair.fingerprint, escrow.fingerprint] });
    // With its cache gone, the host still takes incrementals: page hashes are not encrypted.
    await rm(join(ws.config.stateDir, 'cache'), { recursive: true, force: true });
    simulateWarehouseActivity(ws.database, { seed: 3, operations: 10 });
    const inc = await backup(ws.engine, { type: 'incremental' });
    expect(inc.manifest.type).toBe('incremental');

    const live = sha256(await readFile(ws.database));
    await expect(restore(ws.engine, {})).rejects.toMatchObject({
      code: 'stowage.crypto.cannot_decrypt',
      message: expect.stringMatching(/only public keys, by design/),
    });
    expect(sha256(await readFile(ws.database))).toBe(live);

    await writeKeyFile(join(ws.dir, 'escrow.key.asc'), escrow.privateKey);
    const restorer = await openEngine(
      resolveConfig(
        {
          source: { database: 'db.sqlite3' },
          destinations: [{ name: 'local', url: 'backups' }],
          ...recipients,
          encryption: { ...recipients.encryption, privateKeyFile: 'escrow.key.asc' },
        },
        ws.config.configPath,
      ),
    );
    const restored = await restore(restorer, { backup: inc.manifest.id, testMode: true });
    expect(sha256(await readFile(restored.target!))).toBe(inc.manifest.source.snapshotSha256);

    const home = await scratchGnupg();
    execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--import', join(ws.dir, 'escrow.key.asc')], { stdio: 'ignore' });
    const artifact = full.manifest.artifacts.find((a) => a.role === 'database')!;
    const zst = execFileSync('gpg', ['--homedir', home, '--batch', '--quiet', '--pinentry-mode', 'loopback', '--decrypt', join(ws.backups, artifact.key)], {
      maxBuffer: 1 << 28,
    });
    expect(sha256(execFileSync('zstd', ['-q', '-d', '-c'], { input: zst, maxBuffer: 1 << 28 }))).toBe(full.manifest.source.snapshotSha256);
  });

  it('bad input: wrong passphrase, key file readable by others, a flipped or truncated artifact, encryption mismatches — nothing partial left, live database untouched', async () => {
    ws = await passphraseWorkspace();
    const { manifest } = await backup(ws.engine, { type: 'full' });
    const live = sha256(await readFile(ws.database));
    const keyFile = join(ws.dir, 'backup.key');
    const good = await readFile(keyFile, 'utf8');
    const fresh = () => openEngine(ws.config, { retry: false });

    await writeFile(keyFile, 'not the passphrase\n');
    await expect(restore(await fresh(), {})).rejects.toMatchObject({ code: 'stowage.crypto.wrong_key' });
    await chmod(keyFile, 0o644);
    await expect(restore(await fresh(), {})).rejects.toMatchObject({
      code: 'stowage.crypto.key_file_permissions',
      message: expect.stringContaining('chmod 600'),
    });
    await writeFile(keyFile, good, { mode: 0o600 });
    await chmod(keyFile, 0o600);

    const stored = join(ws.backups, manifest.artifacts.find((a) => a.role === 'database')!.key);
    const bytes = await readFile(stored);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length >> 1]! ^= 0x04;
    await writeFile(stored, flipped);
    await expect(restore(await fresh(), {})).rejects.toMatchObject({ code: 'stowage.backup.corrupt' });
    await writeFile(stored, bytes.subarray(0, bytes.length - 100));
    await expect(restore(await fresh(), {})).rejects.toMatchObject({ code: 'stowage.backup.corrupt' });
    await writeFile(stored, bytes);

    const plainConfig = resolveConfig({ source: { database: 'db.sqlite3' }, destinations: [{ name: 'local', url: 'backups' }] }, ws.config.configPath);
    await expect(restore(await openEngine(plainConfig), {})).rejects.toMatchObject({
      code: 'stowage.backup.encryption_mismatch',
      message: expect.stringContaining('is encrypted'),
    });
    const plain = await backup(await openEngine(plainConfig), { type: 'hot' });
    await expect(restore(await fresh(), { backup: plain.manifest.id })).rejects.toMatchObject({
      code: 'stowage.backup.encryption_mismatch',
      message: expect.stringContaining('is not encrypted'),
    });

    expect(sha256(await readFile(ws.database))).toBe(live);
    expect((await readdir(ws.dir)).filter((name) => name.includes('stowage-restore'))).toEqual([]);
    expect((await verify(await fresh(), { backup: manifest.id, deep: true }))[0]?.ok).toBe(true);
  });
});
