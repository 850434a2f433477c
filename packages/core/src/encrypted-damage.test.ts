/*
 * Damage at the start of an encrypted artifact, in both encryption modes. A flipped byte in the
 * session-key packet (passphrase mode: S2K salt, count; public-key mode: recipient key id, wrapped
 * key) fails decryption exactly as a wrong key does, so decryption alone cannot tell them apart:
 * only the manifest's SHA-256 of the stored bytes can. Every cell damages the database artifact of
 * the newest full backup at one byte position, at one destination or at both, and runs restore,
 * drill (from the damaged destination), validate, verify --deep and key check (see `EVERY`). Damage must read as
 * damage naming the file and destination (the good copy serves restore and validate), never as a
 * wrong key; a really wrong key must still read as one, damaged copies or not.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStowageError } from '@stowage/errors';
import { generateKeyPair, generatePassphrase, writeKeyFile } from '@stowage/crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from './backup.js';
import { resolveConfig, type ConfigFile } from './config.js';
import { drill } from './drill.js';
import { openEngine } from './engine.js';
import { checkChainKeys } from './key-match.js';
import { listBackups } from './catalog.js';
import type { Manifest } from './manifest.js';
import { restore } from './restore.js';
import { makeWorkspace, type Workspace } from './test/harness.js';
import { validate } from './validate.js';
import { verify } from './verify.js';

const MODES = ['passphrase', 'public-key'] as const;
const SCOPES = ['one', 'all'] as const;
/** Every byte of the packet headers and session-key packet, then some inside the encrypted data and its end (the MDC). */
const positions = (size: number) => [...Array.from({ length: 32 }, (_, i) => i), 40, 64, 100, size >> 1, size - 22, size - 1];
const COMMANDS = ['restore', 'validate', 'drill', 'verify --deep', 'key check'] as const;
/**
 * Restore and drill run at every position. Within the first 32 bytes, validate (which reads as
 * restore does) and verify --deep (which only hashes) run at every fourth, key check (a scrypt per
 * engine in passphrase mode) at every second.
 */
const EVERY: Partial<Record<Command, number>> = { validate: 4, 'verify --deep': 4, 'key check': 2 };
const runs = (command: Command, position: number) => position >= 32 || position % (EVERY[command] ?? 1) === 0;
type Mode = (typeof MODES)[number];
type Scope = (typeof SCOPES)[number];
type Command = (typeof COMMANDS)[number];
const DESTINATIONS = [
  { name: 'dest-a', url: 'a' },
  { name: 'dest-b', url: 'b' },
];
const WRONG_KEY = 'stowage.crypto.wrong_key';
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

interface Setup {
  ws: Workspace;
  manifest: Manifest;
  key: string;
  original: Buffer;
  /** The config that decrypts these backups, and one whose key is another. */
  right: Partial<ConfigFile>;
  wrong: Partial<ConfigFile>;
}

async function setUp(mode: Mode): Promise<Setup> {
  let right: Partial<ConfigFile>;
  let wrong: Partial<ConfigFile>;
  const files: Array<[string, string]> = [];
  if (mode === 'passphrase') {
    right = { encryption: { mode, passphraseFile: 'backup.key' } };
    wrong = { encryption: { mode, passphraseFile: 'other.key' } };
    files.push(['backup.key', `${generatePassphrase()}\n`], ['other.key', `${generatePassphrase()}\n`]);
  } else {
    const [ops, other] = await Promise.all([generateKeyPair({ userId: 'ops' }), generateKeyPair({ userId: 'other' })]);
    right = { encryption: { mode, recipients: ['ops.pub.asc'], privateKeyFile: 'ops.key.asc' } };
    wrong = { encryption: { mode, recipients: ['ops.pub.asc'], privateKeyFile: 'other.key.asc' } };
    files.push(['ops.pub.asc', ops.publicKey], ['ops.key.asc', ops.privateKey], ['other.key.asc', other.privateKey]);
  }
  const base = { destinations: DESTINATIONS, compression: { algorithm: 'zstd', level: 3 } } as const satisfies Partial<ConfigFile>;
  right = { ...base, ...right };
  wrong = { ...base, ...wrong };
  const ws = await makeWorkspace({ config: right, seed: 5 });
  for (const [name, text] of files) await writeKeyFile(join(ws.dir, name), text);
  const { manifest } = await backup(ws.engine, { type: 'full' });
  const key = manifest.artifacts.find((a) => a.role === 'database')!.key;
  return { ws, manifest, key, original: await readFile(join(ws.dir, 'a', key)), right, wrong };
}

const engineWith = (s: Setup, config: Partial<ConfigFile>, warnings: string[]) =>
  openEngine(resolveConfig({ source: { database: 'db.sqlite3', busyTimeoutMs: 5000 }, ...config }, s.ws.config.configPath), {
    retry: false,
    onWarning: (m) => warnings.push(m),
  });

async function damage(s: Setup, position: number, at: readonly string[]): Promise<void> {
  const bytes = Buffer.from(s.original);
  bytes[position]! ^= 0x01;
  for (const d of DESTINATIONS.filter((x) => at.includes(x.name))) await writeFile(join(s.ws.dir, d.url, s.key), bytes);
}

async function heal(s: Setup): Promise<void> {
  for (const d of DESTINATIONS) await writeFile(join(s.ws.dir, d.url, s.key), s.original);
}

/**
 * Runs `command` and describes what it did: `ok` (the good copy served; a warning named the damaged
 * one), `damaged` (failed as damage, naming the file and a damaged destination), `wrong key`, or
 * anything else verbatim.
 */
async function observe(s: Setup, command: Command, config: Partial<ConfigFile>, damagedAt: readonly string[]): Promise<string> {
  const warnings: string[] = [];
  const engine = await engineWith(s, config, warnings);
  const names = (text: string) => text.includes(s.key) && damagedAt.some((d) => text.includes(d));
  const warned = () => (damagedAt.length === 0 || names(warnings.join('\n')) ? 'ok' : `unwarned: ${warnings.join(' | ')}`);
  try {
    switch (command) {
      case 'restore': {
        const r = await restore(engine, { testMode: true });
        if (sha256(await readFile(r.target!)) !== s.manifest.source.snapshotSha256) return 'wrong bytes';
        if (damagedAt.includes(r.source)) return `restored from damaged ${r.source}`;
        return warned();
      }
      case 'validate': {
        const v = await validate(engine, 'latest');
        if (!v.ok) return `invalid: ${JSON.stringify(v.checks)}`;
        if (damagedAt.includes(v.source)) return `validated from damaged ${v.source}`;
        return warned();
      }
      case 'drill': {
        const d = await drill(engine, { destination: 'dest-a' });
        if (d.ok) return damagedAt.includes('dest-a') ? 'drill passed on a damaged copy' : 'ok';
        return classify(d.problems.join('\n'), names);
      }
      case 'verify --deep': {
        const [v] = await verify(engine, { backup: s.manifest.id, deep: true });
        if (v!.ok) return damagedAt.length ? 'verify passed damage' : 'ok';
        const problems = v!.artifacts.filter((a) => !a.ok);
        if (problems.some((p) => !damagedAt.includes(p.destination))) return `blamed ${problems.map((p) => p.destination).join(',')}`;
        return classify(problems.map((p) => `${p.destination}: ${p.problem}`).join('\n'), names);
      }
      case 'key check': {
        const [chain] = await checkChainKeys(engine, await listBackups(engine));
        if (chain!.ok) return 'ok';
        return classify(chain!.problem ?? chain!.mixed ?? '', names);
      }
    }
  } catch (error) {
    if (isStowageError(error, WRONG_KEY)) return 'wrong key';
    return classify(`${(error as Error).message}\n${warnings.join('\n')}`, names, (error as { code?: string }).code);
  } finally {
    await engine.close();
  }
}

function classify(text: string, names: (text: string) => boolean, code?: string): string {
  if (/wrong passphrase|does not decrypt with this machine|none of the private keys|not with a passphrase|not to a public key/i.test(text)) return 'wrong key';
  if (code !== undefined && code !== 'stowage.backup.corrupt') return `${code}: ${text.slice(0, 160)}`;
  return names(text) && /damaged|corrupt|differs/i.test(text) ? 'damaged' : `unnamed: ${text.slice(0, 200)}`;
}

/**
 * What every cell must show: the good copy serves reads, damage is reported as damage where it is.
 * (`key check` reads the start of the data only: damage past the session key is not its to find.)
 */
function expected(scope: Scope, command: Command): string[] {
  if (command === 'verify --deep' || command === 'drill') return ['damaged'];
  if (scope === 'one') return ['ok'];
  return command === 'key check' ? ['damaged', 'ok'] : ['damaged'];
}

describe.each(MODES)('damage at the start of an encrypted artifact (%s mode)', (mode) => {
  let s: Setup;
  beforeAll(async () => {
    s = await setUp(mode);
  }, 60_000);
  afterAll(async () => s?.ws.dispose());

  it('every flipped byte, at one destination or at both, reads as damage at that destination, never as a wrong key', async () => {
    const rows: string[] = [];
    const unexpected: string[] = [];
    let cells = 0;
    const spent = new Map<Command, number>();
    for (const position of positions(s.original.length)) {
      for (const scope of SCOPES) {
        const damagedAt = scope === 'one' ? ['dest-a'] : DESTINATIONS.map((d) => d.name);
        await damage(s, position, damagedAt);
        const outcomes: string[] = [];
        for (const command of COMMANDS) {
          if (!runs(command, position)) {
            outcomes.push('-'.padEnd(14));
            continue;
          }
          const began = performance.now();
          const outcome = await observe(s, command, s.right, damagedAt);
          spent.set(command, (spent.get(command) ?? 0) + performance.now() - began);
          cells++;
          const want = expected(scope, command);
          const good = want.includes(outcome);
          if (!good) unexpected.push(`byte ${position} × ${scope} × ${command}: ${outcome} (want ${want.join('|')})`);
          outcomes.push((good ? outcome : `✗ ${outcome}`).slice(0, 14).padEnd(14));
        }
        await heal(s);
        rows.push(`${String(position).padStart(6)} ${scope.padEnd(4)} ${outcomes.join(' ')}`);
      }
    }
    console.log(
      [
        `${mode} mode: ${cells} cells (byte × scope × command) on ${s.key} (${s.original.length} bytes)`,
        `${'byte'.padStart(6)} at   ${COMMANDS.map((c) => c.padEnd(14)).join(' ')}`,
        ...rows,
        `time per command: ${[...spent].map(([c, ms]) => `${c} ${(ms / 1000).toFixed(1)} s`).join(', ')}`,
        ...unexpected,
      ].join('\n'),
    );
    expect(unexpected).toEqual([]);
  }, 600_000);

  it('a wrong key reads as a wrong key: intact copies, or one copy damaged too (the intact one decides)', async () => {
    for (const damagedAt of [[], ['dest-a'], ['dest-b']]) {
      await damage(s, 20, damagedAt);
      for (const command of ['restore', 'validate'] as const)
        expect(await observe(s, command, s.wrong, damagedAt), `${command} ${damagedAt}`).toBe('wrong key');
      await heal(s);
    }
    // And with the right key, intact copies pass everything.
    for (const command of COMMANDS) expect(await observe(s, command, s.right, []), command).toBe('ok');
  }, 120_000);
});
