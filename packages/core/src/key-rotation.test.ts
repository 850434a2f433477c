import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, generatePassphrase, writeKeyFile } from '@stowage/crypto';
import { simulateWarehouseActivity } from '@stowage/fixtures';
import { afterEach, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { listBackups } from './catalog.js';
import { resolveConfig, type ConfigFile } from './config.js';
import { openEngine, type Engine } from './engine.js';
import { checkChainKeys } from './key-match.js';
import { manifestKey } from './layout.js';
import { databaseArtifact, parseManifest, serializeManifest, type Manifest } from './manifest.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { verify } from './verify.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
let ws: Workspace;
const engines: Engine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
  await ws?.dispose();
});

const passphraseConfig = { encryption: { mode: 'passphrase', passphraseFile: 'backup.key' } } as const satisfies Partial<ConfigFile>;

/** A new engine over the workspace's config (keys are loaded once per engine, as in one CLI run). */
async function fresh(config = ws.config): Promise<Engine> {
  const engine = await openEngine(config, { retry: false, onWarning: (m) => ws.warnings.push(m) });
  engines.push(engine);
  return engine;
}

async function setPassphrase(passphrase: string): Promise<void> {
  await writeKeyFile(join(ws.dir, 'backup.key'), `${passphrase}\n`, { overwrite: true });
}

async function incrementalAfterActivity(engine: Engine, seed: number): Promise<Manifest> {
  simulateWarehouseActivity(ws.database, { seed, operations: 10 });
  return (await backup(engine, { type: 'incremental' })).manifest;
}

/** Rewrites a stored manifest as an older version wrote it: no passphrase verifier. */
async function dropVerifier(manifest: Manifest): Promise<void> {
  const path = join(ws.backups, manifestKey(manifest.type, manifest.id));
  const stored = JSON.parse(await readFile(path, 'utf8')) as Manifest;
  delete stored.encoding.encryption!.passphraseVerifier;
  delete stored.checksum; // older versions wrote neither
  await writeFile(path, `${JSON.stringify(stored, null, 2)}\n`);
}

/** The salt of the passphrase's session key packet that opens a stored artifact (SKESK v4, iterated+salted S2K). */
async function storedS2kSalt(key: string): Promise<string> {
  const head = (await readFile(join(ws.backups, key))).subarray(0, 14);
  expect([...head.subarray(0, 1), ...head.subarray(2, 6)]).toEqual([0xc3, 4, 9, 3, 8]);
  return head.subarray(6, 14).toString('hex');
}

describe('key changes never leave a chain that cannot be restored', () => {
  it('passphrase rotation: the manifest holds a verifier, not the passphrase; the next incremental is a full saying why, and restores', async () => {
    ws = await makeWorkspace({ config: passphraseConfig });
    const [oldPassphrase, newPassphrase] = [generatePassphrase(), generatePassphrase()];
    await setPassphrase(oldPassphrase);
    const full = (await backup(await fresh(), { type: 'full' })).manifest;
    const verifier = full.encoding.encryption?.passphraseVerifier;
    expect(verifier).toMatchObject({ kdf: 'scrypt', logN: 15, check: expect.stringMatching(/^[0-9a-f]{8}$/) });
    expect(JSON.stringify(full)).not.toContain(oldPassphrase);
    // Same passphrase: an incremental, sharing the chain's verifier (one scrypt checks the chain).
    const inc = await incrementalAfterActivity(await fresh(), 1);
    expect(inc).toMatchObject({ type: 'incremental', parent: full.id, encoding: { encryption: { passphraseVerifier: verifier } } });
    const hot = (await backup(await fresh(), { type: 'hot' })).manifest;
    expect(hot.encoding.encryption?.passphraseVerifier).toEqual(verifier); // one verifier per passphrase, not per backup

    await setPassphrase(newPassphrase);
    ws.warnings.length = 0;
    const rotated = await incrementalAfterActivity(await fresh(), 2);
    expect(rotated.type).toBe('full');
    expect(rotated.fullBecause).toBe(`the current key cannot decrypt the chain of ${inc.id}: ${full.id} was encrypted with another passphrase`);
    expect(ws.warnings).toContain(`taking a full backup instead of an incremental: ${rotated.fullBecause}`);
    expect(rotated.encoding.encryption?.passphraseVerifier?.salt).not.toBe(verifier?.salt);

    const next = await incrementalAfterActivity(await fresh(), 3);
    expect(next).toMatchObject({ type: 'incremental', parent: rotated.id });
    const restored = await restore(await fresh(), { testMode: true });
    expect(sha256(await readFile(restored.target!))).toBe(next.source.snapshotSha256);

    // key check: the new chain decrypts; the old one needs the old passphrase (an older chain: not a mix).
    const checks = await checkChainKeys(await fresh(), await listBackups(ws.engine));
    expect(checks).toEqual([
      { chain: full.id, newest: inc.id, checked: 'decrypted', ok: false, problem: `${inc.id} was encrypted with another passphrase` },
      { chain: hot.id, newest: hot.id, checked: 'decrypted', ok: false, problem: `${hot.id} was encrypted with another passphrase` },
      { chain: rotated.id, newest: next.id, checked: 'decrypted', ok: true },
    ]);
    expect((await verify(await fresh(), { all: true })).every((r) => r.ok)).toBe(true);
  });

  it('one S2K salt per passphrase: every artifact of its backups carries the salt their manifests record; another passphrase takes a new one', async () => {
    ws = await makeWorkspace({ config: passphraseConfig });
    await setPassphrase(generatePassphrase());
    const full = (await backup(await fresh(), { type: 'full' })).manifest;
    const salt = full.encoding.encryption?.s2kSalt;
    expect(salt).toMatch(/^[0-9a-f]{16}$/);
    const inc = await incrementalAfterActivity(await fresh(), 1);
    const hot = (await backup(await fresh(), { type: 'hot' })).manifest;
    for (const manifest of [full, inc, hot]) {
      expect(manifest.encoding.encryption?.s2kSalt).toBe(salt);
      const encrypted = manifest.artifacts.filter((a) => a.encoding.includes('pgp'));
      expect(encrypted.length).toBeGreaterThan(0);
      for (const artifact of encrypted) expect(await storedS2kSalt(artifact.key)).toBe(salt);
    }

    await setPassphrase(generatePassphrase());
    const rotated = (await backup(await fresh(), { type: 'full' })).manifest;
    const newSalt = rotated.encoding.encryption?.s2kSalt;
    expect(newSalt).toMatch(/^[0-9a-f]{16}$/);
    expect(newSalt).not.toBe(salt);
    expect(await storedS2kSalt(databaseArtifact(rotated).key)).toBe(newSalt);
    // A recorded salt that is not 8 bytes of hex makes the manifest unreadable, checksum or not: never a salt to reuse.
    for (const bad of ['00', 'Z'.repeat(16), '0'.repeat(18)]) {
      const text = serializeManifest({ ...rotated, encoding: { ...rotated.encoding, encryption: { ...rotated.encoding.encryption!, s2kSalt: bad } } });
      expect(() => parseManifest(text, 'hostile')).toThrow('an S2K salt is 8 bytes of lowercase hex');
    }
    // Back to nothing reusable (manifests of an older version): a fresh salt, recorded.
    await dropVerifier(rotated);
    const older = (await backup(await fresh(), { type: 'full' })).manifest;
    expect(older.encoding.encryption?.s2kSalt).not.toBe(newSalt);
    expect(await storedS2kSalt(databaseArtifact(older).key)).toBe(older.encoding.encryption?.s2kSalt);
    const restored = await restore(await fresh(), { testMode: true });
    expect(sha256(await readFile(restored.target!))).toBe(older.source.snapshotSha256);
  });

  it('manifests of older versions (no verifier) still work: the start of the artifact is decrypted instead', async () => {
    ws = await makeWorkspace({ config: passphraseConfig });
    await setPassphrase(generatePassphrase());
    const full = (await backup(await fresh(), { type: 'full' })).manifest;
    await dropVerifier(full);
    const inc = await incrementalAfterActivity(await fresh(), 1);
    expect(inc).toMatchObject({ type: 'incremental', parent: full.id });
    await dropVerifier(inc);

    await setPassphrase(generatePassphrase());
    const rotated = await incrementalAfterActivity(await fresh(), 2);
    expect(rotated.type).toBe('full');
    expect(rotated.fullBecause).toMatch(
      new RegExp(`^the current key cannot decrypt the chain of ${inc.id}: ${full.id} does not decrypt with this machine's key \\(wrong passphrase`),
    );
    const checks = await checkChainKeys(await fresh(), await listBackups(ws.engine));
    expect(checks.map((c) => [c.chain, c.ok])).toEqual([
      [full.id, false],
      [rotated.id, true],
    ]);
  });

  it('a key check needs a codec and the destinations to read, no engine; a probe through some destinations is not reused for others', async () => {
    ws = await makeWorkspace({ config: passphraseConfig });
    await setPassphrase(generatePassphrase());
    const full = (await backup(await fresh(), { type: 'full' })).manifest;
    await dropVerifier(full); // the start of the artifact is decrypted instead
    const { codec, destinations } = await fresh();
    const catalog = await listBackups(ws.engine);
    expect(await checkChainKeys({ codec, destinations }, catalog)).toEqual([{ chain: full.id, newest: full.id, checked: 'decrypted', ok: true }]);
    // Same codec, no destination to read from: the outcome of the probe above does not answer for it.
    expect(await checkChainKeys({ codec, destinations: [] }, catalog)).toEqual([
      {
        chain: full.id,
        newest: full.id,
        checked: 'decrypted',
        ok: false,
        problem: `the key of ${full.id} cannot be checked: ${databaseArtifact(full).key} cannot be read at any destination`,
      },
    ]);
  });

  it('verify and key check report a chain that mixes passphrases (as an older version built it), from either passphrase', async () => {
    ws = await makeWorkspace({ config: passphraseConfig });
    const [first, second] = [generatePassphrase(), generatePassphrase()];
    await setPassphrase(first);
    const full = (await backup(await fresh(), { type: 'full' })).manifest;
    await setPassphrase(second);
    // The old behaviour: an incremental on a parent the current key cannot decrypt.
    const blind = await fresh();
    blind.codec.passphraseMatches = async () => true;
    const mixed = await incrementalAfterActivity(blind, 1);
    expect(mixed).toMatchObject({ type: 'incremental', parent: full.id });

    for (const passphrase of [second, first]) {
      await setPassphrase(passphrase);
      const [result] = (await verify(await fresh(), { all: true })).filter((r) => r.backupId === mixed.id);
      expect(result?.ok).toBe(false);
      const problem = result?.artifacts.find((a) => !a.ok);
      expect(problem).toMatchObject({
        destination: 'this machine',
        problem: expect.stringMatching(
          new RegExp(`^the chain of ${mixed.id} mixes keys, so this machine cannot restore it: .* was encrypted with another passphrase`),
        ),
      });
      // The full alone is not a mix.
      expect((await verify(await fresh(), { backup: full.id }))[0]?.artifacts.every((a) => a.destination !== 'this machine')).toBe(true);
      const [check] = await checkChainKeys(await fresh(), await listBackups(ws.engine));
      expect(check).toMatchObject({ chain: full.id, newest: mixed.id, ok: false, mixed: expect.stringContaining('mixes keys') });
    }
    // And the next incremental does not build on it, whichever passphrase is configured.
    const next = await incrementalAfterActivity(await fresh(), 2);
    expect(next.type).toBe('full');
  });

  it('public-key rotation: an incremental after the recipients changed is a full naming both key sets', async () => {
    const [ops, successor] = await Promise.all([generateKeyPair({ userId: 'ops' }), generateKeyPair({ userId: 'successor' })]);
    const encryption = (recipient: string) => ({ encryption: { mode: 'public-key' as const, recipients: [recipient] } });
    ws = await makeWorkspace({ config: encryption('ops.asc') });
    await writeFile(join(ws.dir, 'ops.asc'), ops.publicKey);
    await writeFile(join(ws.dir, 'successor.asc'), successor.publicKey);
    const full = (await backup(await fresh(), { type: 'full' })).manifest;
    const inc = await incrementalAfterActivity(await fresh(), 1);
    expect(inc.type).toBe('incremental');

    const configWith = (encryptionSection: Partial<ConfigFile>) =>
      resolveConfig(
        { source: { database: 'db.sqlite3' }, destinations: [{ name: 'local', url: 'backups' }], compression: { algorithm: 'none' }, ...encryptionSection },
        ws.config.configPath,
      );
    const rotatedConfig = configWith(encryption('successor.asc'));
    simulateWarehouseActivity(ws.database, { seed: 2, operations: 10 });
    const rotated = (await backup(await fresh(rotatedConfig), { type: 'incremental' })).manifest;
    expect(rotated).toMatchObject({
      type: 'full',
      fullBecause: `the current key cannot decrypt the chain of ${inc.id}: ${full.id} is encrypted to ${ops.fingerprint}, and this config encrypts to ${successor.fingerprint}`,
    });

    // A restore machine holding only the successor's private key restores the new chain, and key check says which chain needs the old key.
    await writeKeyFile(join(ws.dir, 'successor.key'), successor.privateKey);
    const restorer = configWith({ encryption: { mode: 'public-key', recipients: ['successor.asc'], privateKeyFile: 'successor.key' } });
    const checks = await checkChainKeys(await fresh(restorer), await listBackups(ws.engine));
    expect(checks).toMatchObject([
      {
        chain: full.id,
        ok: false,
        checked: 'decrypted',
        problem: `${inc.id} is encrypted to ${ops.fingerprint}; this machine's private keys are ${successor.fingerprint}`,
      },
      { chain: rotated.id, ok: true },
    ]);
    // The backup host (public keys only) compares recipients instead.
    expect((await checkChainKeys(await fresh(rotatedConfig), await listBackups(ws.engine))).map((c) => [c.checked, c.ok])).toEqual([
      ['recipients', false],
      ['recipients', true],
    ]);
  });
});
