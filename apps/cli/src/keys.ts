import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { checkChainKeys, listBackups, type Engine } from '@stowage/core';
import { ExitCode, UsageError } from './exit-codes.js';
import type { Output } from './output.js';

/**
 * `stowage key generate`: a passphrase file (600), or with `publicKey` an OpenPGP key pair whose
 * public half goes on backup hosts and private half (600) on restore machines only.
 */
export async function runKeyGenerate(out: Output, baseDir: string, options: { publicKey?: boolean; out?: string; userId?: string }): Promise<ExitCode> {
  const { generateKeyPair, generatePassphrase, writeKeyFile } = await import('@stowage/crypto');
  if (!options.publicKey) {
    const path = options.out ?? join(baseDir, 'stowage-passphrase.key');
    await writeKeyFile(path, `${generatePassphrase()}\n`);
    out.result({ mode: 'passphrase', passphraseFile: path });
    out.say(`wrote a new passphrase to ${path} (mode 600)`);
    out.say(`  config: "encryption": { "mode": "passphrase", "passphraseFile": "${path}" }`);
    out.say('  keep a copy somewhere other than this machine and its backups: without it no backup can be restored');
    return ExitCode.Ok;
  }
  const stem = options.out ?? join(baseDir, 'stowage');
  const pair = await generateKeyPair({ userId: options.userId ?? 'Stowage backups' });
  await writeFile(`${stem}-public.asc`, pair.publicKey, { mode: 0o644, flag: 'wx' });
  await writeKeyFile(`${stem}-private.asc`, pair.privateKey);
  await writeKeyFile(`${stem}-revocation.asc`, pair.revocationCertificate);
  out.result({ mode: 'public-key', fingerprint: pair.fingerprint, publicKey: `${stem}-public.asc`, privateKey: `${stem}-private.asc` });
  out.say(`generated key ${pair.fingerprint}`);
  out.say(`  public key:  ${stem}-public.asc — for backup hosts: "encryption": { "mode": "public-key", "recipients": ["${stem}-public.asc"] }`);
  out.say(`  private key: ${stem}-private.asc (mode 600) — move it OFF this host to the machines that restore ("privateKeyFile")`);
  return ExitCode.Ok;
}

/** `stowage key show`: the configured mode and key fingerprints — never a secret. */
export async function runKeyShow(engine: Engine, out: Output): Promise<ExitCode> {
  const encryption = engine.config.encryption;
  if (!encryption) {
    out.result({ encryption: null });
    out.say('backups are not encrypted (no encryption section in the config); `stowage key generate` makes a key');
    return ExitCode.Ok;
  }
  const keys = await engine.codec.encryptionKeys();
  const source =
    encryption.mode === 'passphrase'
      ? encryption.passphraseFile
        ? `file ${encryption.passphraseFile}`
        : `environment variable ${encryption.passphraseEnv}`
      : `recipients ${encryption.recipients.join(', ')}`;
  out.result({ encryption: { ...keys.toJSON(), source } });
  out.say(`encryption: AES-256 OpenPGP, ${keys.mode} mode (${keys.aead ? 'AEAD, not readable by gpg 2.2/2.4' : 'gpg-compatible'}), from ${source}`);
  for (const fingerprint of keys.fingerprints) out.say(`  recipient ${fingerprint}`);
  return ExitCode.Ok;
}

/**
 * `stowage key check`: can this machine encrypt backups? decrypt them? A round trip of a sample,
 * then the newest backup of every chain decrypted at its start (see `checkChainKeys`).
 * Exit 1: cannot encrypt, or a chain mixes keys; exit 3: a chain needs another (rotated) key.
 */
export async function runKeyCheck(engine: Engine, out: Output): Promise<ExitCode> {
  const config = engine.config.encryption;
  if (!config) throw new UsageError('there is no encryption section in the config; nothing to check');
  const { createDecryptStream, createEncryptStream, loadDecryptionKeys, loadEncryptionKeys } = await import('@stowage/crypto');
  const sample = Buffer.from(`stowage key check ${Date.now()}`);
  const encrypted: Buffer[] = [];
  const encrypt = await loadEncryptionKeys(config, { baseDir: engine.config.baseDir }).then(
    async (keys) => {
      await pipeline(Readable.from([sample]), createEncryptStream(keys), async (chunks: AsyncIterable<Buffer>) => {
        for await (const chunk of chunks) encrypted.push(chunk);
      });
      return { ok: true as const };
    },
    (error: Error) => ({ ok: false as const, problem: error.message }),
  );
  const decrypt = await loadDecryptionKeys(config, { baseDir: engine.config.baseDir }).then(
    async (keys) => {
      if (!encrypt.ok) return { ok: true as const, problem: 'keys load, but nothing to decrypt (encryption failed)' };
      const plain: Buffer[] = [];
      await pipeline(Readable.from([Buffer.concat(encrypted)]), createDecryptStream(keys), async (chunks: AsyncIterable<Buffer>) => {
        for await (const chunk of chunks) plain.push(chunk);
      });
      return Buffer.concat(plain).equals(sample) ? { ok: true as const } : { ok: false as const, problem: 'the round trip returned other bytes' };
    },
    (error: Error) => ({ ok: false as const, problem: error.message }),
  );
  const chains = await checkChainKeys(engine, await listBackups(engine));
  // A chain wholly under another (rotated) key restores with that key: listed, exit 3. A chain
  // mixing keys restores with no single key: exit 1.
  const code = !encrypt.ok || chains.some((c) => c.mixed) ? ExitCode.Failed : chains.some((c) => !c.ok) ? ExitCode.Degraded : ExitCode.Ok;
  out.result({ canEncrypt: encrypt, canDecrypt: decrypt, chains });
  out.say(`can encrypt: ${encrypt.ok ? 'yes' : `NO — ${encrypt.problem}`}`);
  out.say(`can decrypt: ${decrypt.ok ? 'yes' : `no — ${decrypt.problem}`}`);
  for (const c of chains) {
    const what = c.checked === 'decrypted' ? 'decrypts here' : 'encrypted to the configured recipients';
    out.say(`chain ${c.chain} (newest ${c.newest}): ${c.ok ? what : `NO — ${[c.problem, c.mixed].filter(Boolean).join('; ')}`}`);
  }
  if (chains.length === 0) out.say('no backups yet: nothing stored to check against');
  return code;
}
