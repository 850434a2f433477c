import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createCompressStream, createDecompressStream } from '@stowage/compression';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecryptionKeys, EncryptionKeys, generateKeyPair, type GeneratedKeyPair } from './keys.js';
import { writeKeyFile } from './secrets.js';
import { createDecryptStream, createEncryptStream } from './streams.js';
import { cleanup, gnupg, run, tempDir } from './test/helpers.js';

// The backup encoding end to end on a real SQLite file: zstd, then OpenPGP, recovered by the
// stock tools alone (gpg --decrypt, zstd -d, sqlite3) and by Stowage's own streams.

const KNOWN_ROW = 'Stowage known row: pallet 7741 in bin B-03-02';
const PASSPHRASE = 'pipeline passphrase';

let dir: string;
let database: string;
let ops: GeneratedKeyPair;

beforeAll(async () => {
  dir = await tempDir();
  database = join(dir, 'db.sqlite3');
  const db = new Database(database);
  db.exec('CREATE TABLE stock (id INTEGER PRIMARY KEY, bin TEXT NOT NULL, note TEXT NOT NULL, qty INTEGER NOT NULL)');
  const insert = db.prepare('INSERT INTO stock (bin, note, qty) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (let i = 0; i < 20_000; i++) insert.run(`B-${i % 97}-${i % 13}`, i === 12_345 ? KNOWN_ROW : `goods ${i} 上海仓库 shelf ${i % 50}`, i % 400);
  })();
  db.close();
  ops = await generateKeyPair({ userId: 'ops <ops@example.com>' });
  await writeKeyFile(join(dir, 'passphrase'), `${PASSPHRASE}\n`);
});
afterAll(cleanup);

async function encode(keys: EncryptionKeys, name: string): Promise<string> {
  const target = join(dir, name);
  await pipeline(createReadStream(database), createCompressStream(), createEncryptStream(keys), createWriteStream(target, { mode: 0o600 }));
  return target;
}

describe('compress → encrypt of a real SQLite file', () => {
  it.each(['passphrase', 'public-key'] as const)('%s mode: gpg --decrypt, zstd -d and sqlite3 recover it', async (mode) => {
    const keys = mode === 'passphrase' ? EncryptionKeys.fromPassphrase(PASSPHRASE) : await EncryptionKeys.fromPublicKeys([ops.publicKey]);
    const encoded = await encode(keys, `full_backup_${mode}.sqlite3.zst.pgp`);

    const bytes = await readFile(encoded);
    expect(bytes.includes(Buffer.from(KNOWN_ROW))).toBe(false);
    expect(bytes.includes(Buffer.from('SQLite format 3'))).toBe(false);

    const { gpg } = await gnupg();
    if (mode === 'public-key') await gpg(['--import'], Buffer.from(ops.privateKey));
    const compressed = join(dir, `restored-${mode}.sqlite3.zst`);
    const decrypted = await gpg([
      ...(mode === 'passphrase' ? ['--passphrase-file', join(dir, 'passphrase')] : []),
      '--output',
      compressed,
      '--decrypt',
      encoded,
    ]);
    expect(decrypted.code, decrypted.stderr).toBe(0);
    const restored = join(dir, `restored-${mode}.sqlite3`);
    const unzstd = await run('zstd', ['-q', '-d', compressed, '-o', restored]);
    expect(unzstd.code, unzstd.stderr).toBe(0);

    expect((await readFile(restored)).equals(await readFile(database))).toBe(true);
    expect((await run('sqlite3', [restored, 'PRAGMA integrity_check'])).stdout.toString().trim()).toBe('ok');
    expect((await run('sqlite3', [restored, 'SELECT note FROM stock WHERE id = 12346'])).stdout.toString().trim()).toBe(KNOWN_ROW);
  });

  it('Stowage restores it: decrypt → decompress into a temp file, renamed only on success', async () => {
    const encoded = await encode(EncryptionKeys.fromPassphrase(PASSPHRASE), 'full_backup.sqlite3.zst.pgp');
    const keys = DecryptionKeys.fromPassphrase(PASSPHRASE);
    const target = join(dir, 'restored.sqlite3');

    async function restore(from: string): Promise<void> {
      const partial = `${target}.partial`;
      try {
        await pipeline(createReadStream(from), createDecryptStream(keys), createDecompressStream(), createWriteStream(partial, { mode: 0o600 }));
      } catch (error) {
        await rm(partial, { force: true });
        throw error;
      }
      await rename(partial, target);
    }

    const tampered = join(dir, 'tampered.pgp');
    const bytes = await readFile(encoded);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
    await writeFile(tampered, bytes);
    await expect(restore(tampered)).rejects.toMatchObject({ code: expect.stringMatching(/^stowage\.(crypto\.integrity|compression\.corrupt)$/) });
    await expect(readFile(target)).rejects.toMatchObject({ code: 'ENOENT' });

    await restore(encoded);
    expect((await readFile(target)).equals(await readFile(database))).toBe(true);
  });
});
