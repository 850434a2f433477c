/*
 * Which key each backup was encrypted with, against the keys of this machine. A chain is restored
 * with one set of keys, so an incremental is built only on a chain encrypted exactly as this
 * config encrypts now, and verify and `key check` report a chain that mixes keys.
 * Manifests name the key: the recipients' fingerprints, or a passphrase verifier. Passphrase-mode
 * manifests of older versions have no verifier: the first 64 KiB of their database artifact are
 * decrypted instead (the session key and the quick check come before any data); a start that
 * does not decrypt is judged by the whole artifact's SHA-256, so damage reads as damage, not as
 * another key.
 */
import { createHash } from 'node:crypto';
import type { CatalogEntry } from './catalog.js';
import type { Codec } from './encoding.js';
import type { Destination, Engine } from './engine.js';
import { databaseArtifact, type Artifact } from './manifest.js';

/** `encrypt`: encrypted as this config encrypts now; `decrypt`: decryptable with this machine's keys. */
export type KeySide = 'encrypt' | 'decrypt';

/** What checking keys needs of a run (an `Engine` is one): its codec (the config's encryption and this machine's keys) and the destinations to read. */
export type KeyCheckRun = Pick<Engine, 'codec' | 'destinations'>;

const PROBE_BYTES = 64 * 1024;
/** Probe outcomes by the keys they were decrypted with, then by backup and the destinations read. */
const probes = new WeakMap<Codec, Map<string, Promise<string | undefined>>>();

/** Why the artifacts of `entry` do not match this machine's keys on `side`; undefined when they do. */
export async function keyProblem(run: KeyCheckRun, entry: CatalogEntry, side: KeySide): Promise<string | undefined> {
  const { id } = entry.manifest;
  const recorded = entry.manifest.encoding.encryption;
  const current = run.codec.config.encryption;
  if (!recorded) return current ? `${id} is not encrypted, and this config encrypts` : undefined;
  if (!current) return `${id} is encrypted (${recorded.mode} mode), and this config has no encryption section`;
  if (recorded.mode !== current.mode) return `${id} was encrypted in ${recorded.mode} mode, and this config uses ${current.mode} mode`;
  if (recorded.mode === 'public-key') return recipientProblem(run.codec, id, recorded.fingerprints, side);
  if (recorded.passphraseVerifier) {
    // A verifier with parameters outside the accepted bounds is not trusted: the probe decides.
    const matches = await run.codec.passphraseMatches(recorded.passphraseVerifier).catch(() => undefined);
    if (matches !== undefined) return matches ? undefined : `${id} was encrypted with another passphrase`;
  }
  return probeDecryption(run, entry);
}

/**
 * Decrypts the start of the database artifact of `entry` with this machine's keys (once per
 * codec, backup and set of destinations holding it): undefined when it opens, else why not.
 */
export function probeDecryption(run: KeyCheckRun, entry: CatalogEntry): Promise<string | undefined> {
  const holders = run.destinations.filter((d) => entry.destinations.includes(d.name));
  const done = probes.get(run.codec) ?? new Map<string, Promise<string | undefined>>();
  probes.set(run.codec, done);
  const key = `${entry.manifest.id} ${holders.map((d) => d.name).join(',')}`;
  let probe = done.get(key);
  if (!probe) {
    probe = probeOnce(run.codec, holders, entry);
    done.set(key, probe);
  }
  return probe;
}

async function probeOnce(codec: Codec, holders: readonly Destination[], entry: CatalogEntry): Promise<string | undefined> {
  const { id } = entry.manifest;
  const artifact = databaseArtifact(entry.manifest);
  if (!artifact.encoding.includes('pgp')) return undefined; // nothing to decrypt; keyProblem compares with the config
  const keys = await codec.decryptionKeys().catch((error: Error) => error);
  if (keys instanceof Error) return `${id} cannot be decrypted here: ${keys.message}`;
  const { probeDecryption: probe } = await import('@stowage/crypto');
  const damaged: string[] = [];
  for (const destination of holders) {
    let outcome: Awaited<ReturnType<typeof probe>>;
    try {
      outcome = await probe(keys, await readHead(destination, artifact.key));
      // Damage at the start of the data fails as a wrong key does: judge it by bytes that hash as the manifest says.
      if (!outcome.ok) {
        const head = await intactHead(destination, artifact);
        if (!head) {
          damaged.push(destination.name);
          continue;
        }
        outcome = await probe(keys, head);
      }
    } catch {
      continue; // another destination may serve it
    }
    return outcome.ok ? undefined : `${id} does not decrypt with this machine's key (${outcome.message})`;
  }
  const why = damaged.length ? `is damaged at ${damaged.join(', ')} (its SHA-256 differs from the manifest's)` : 'cannot be read at any destination';
  return `the key of ${id} cannot be checked: ${artifact.key} ${why}`;
}

/** The first `PROBE_BYTES` of `key` at `destination`. */
async function readHead(destination: Destination, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await destination.adapter.get(key, { range: { offset: 0, length: PROBE_BYTES } })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** The first bytes of `artifact` at `destination`, read whole and hashed: undefined when they are not the manifest's bytes. */
async function intactHead(destination: Destination, artifact: Artifact): Promise<Buffer | undefined> {
  const hash = createHash('sha256');
  const head: Buffer[] = [];
  let size = 0;
  for await (const chunk of await destination.adapter.get(artifact.key)) {
    hash.update(chunk as Buffer);
    if (size < PROBE_BYTES) head.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return size === artifact.size && hash.digest('hex') === artifact.sha256 ? Buffer.concat(head).subarray(0, PROBE_BYTES) : undefined;
}

async function recipientProblem(codec: Codec, id: string, recorded: readonly string[], side: KeySide): Promise<string | undefined> {
  if (side === 'encrypt') {
    const keys = await codec.encryptionKeys().catch((error: Error) => error);
    if (keys instanceof Error) return `the recipients of ${id} cannot be compared: ${keys.message}`;
    const { fingerprints } = keys;
    const same = recorded.length === fingerprints.length && recorded.every((f) => fingerprints.includes(f));
    return same ? undefined : `${id} is encrypted to ${recorded.join(', ')}, and this config encrypts to ${fingerprints.join(', ')}`;
  }
  const keys = await codec.decryptionKeys().catch((error: Error) => error);
  if (keys instanceof Error) return `${id} cannot be decrypted here: ${keys.message}`;
  return recorded.some((f) => keys.fingerprints.includes(f))
    ? undefined
    : `${id} is encrypted to ${recorded.join(', ')}; this machine's private keys are ${keys.fingerprints.join(', ')}`;
}

/** The chain of `entry` (full first) as far as `catalog` holds it. */
export function chainIn(catalog: ReadonlyMap<string, CatalogEntry>, entry: CatalogEntry): CatalogEntry[] {
  const chain = [entry];
  for (let parent = entry.manifest.parent; parent !== null && chain.length <= catalog.size; ) {
    const link = catalog.get(parent);
    if (!link) break;
    chain.unshift(link);
    parent = link.manifest.parent;
  }
  return chain;
}

/**
 * Why the next incremental must not be built on `chain` (full first): a link that this config's
 * key did not encrypt — a restore would need two keys at once. Undefined when every link matches.
 */
export async function chainKeyProblem(run: KeyCheckRun, chain: readonly CatalogEntry[]): Promise<string | undefined> {
  const problem = (await Promise.all(chain.map((link) => keyProblem(run, link, 'encrypt')))).find((p) => p !== undefined);
  return problem && `the current key cannot decrypt the chain of ${chain.at(-1)!.manifest.id}: ${problem}`;
}

/**
 * For verify: why `chain` (full first) cannot be restored here because it mixes keys — some links
 * open with this machine's keys and others do not, or links were encrypted to different keys.
 * A chain wholly under another key (a rotated one) is not a mix; `key check` reports it.
 */
export async function mixedKeyProblem(run: KeyCheckRun, chain: readonly CatalogEntry[]): Promise<string | undefined> {
  if (chain.length < 2) return undefined;
  const problems = await Promise.all(chain.map((link) => keyProblem(run, link, decryptsHere(run.codec) ? 'decrypt' : 'encrypt')));
  const failing = problems.filter((p): p is string => p !== undefined);
  const recordedKeys = new Set(chain.map(({ manifest: { encoding } }) => keyLabel(encoding.encryption)).filter((label) => label !== undefined));
  if (failing.length === 0 || (failing.length === chain.length && recordedKeys.size <= 1)) return undefined;
  return `the chain of ${chain.at(-1)!.manifest.id} mixes keys, so this machine cannot restore it: ${failing.join('; ')}. Take a full backup now; restoring this chain needs every key it was encrypted with`;
}

/** True when this machine is set up to decrypt (a passphrase, or a private key); a public-key-only host is not. */
export function decryptsHere(codec: Codec): boolean {
  const encryption = codec.config.encryption;
  return encryption?.mode === 'passphrase' || encryption?.privateKeyFile !== undefined || encryption?.privateKeyEnv !== undefined;
}

/** Which key a manifest records; undefined when a passphrase manifest has no verifier (older versions). */
function keyLabel(encryption: CatalogEntry['manifest']['encoding']['encryption']): string | undefined {
  if (!encryption) return 'none';
  if (encryption.mode === 'public-key') return `public-key:${[...encryption.fingerprints].sort().join(',')}`;
  const verifier = encryption.passphraseVerifier;
  return verifier && `passphrase:${verifier.salt}:${verifier.check}`;
}

/** What `key check` found for one chain. */
export interface ChainKeyCheck {
  /** The chain's first backup (its full, or a hot backup alone). */
  chain: string;
  newest: string;
  /** `decrypted`: the newest backup's start was decrypted here; `recipients`: compared with the configured recipients (a host holding only public keys). */
  checked: 'decrypted' | 'recipients';
  ok: boolean;
  problem?: string;
  /** Set when the chain mixes keys (see `mixedKeyProblem`). */
  mixed?: string;
}

/**
 * For `key check`: the newest backup of every chain in `catalog` (oldest first) is decrypted at
 * its start with this machine's keys — on a host holding only public keys, compared with the
 * configured recipients instead — and every chain is checked for mixed keys. Newest chain last.
 */
export async function checkChainKeys(run: KeyCheckRun, catalog: readonly CatalogEntry[]): Promise<ChainKeyCheck[]> {
  const byId = new Map(catalog.map((e) => [e.manifest.id, e]));
  const chains = new Map<string, CatalogEntry[]>();
  for (const entry of catalog) {
    const chain = chainIn(byId, entry);
    chains.delete(chain[0]!.manifest.id); // re-inserted, so the chain of the newest backup ends the list
    chains.set(chain[0]!.manifest.id, chain);
  }
  const checked = decryptsHere(run.codec) ? 'decrypted' : 'recipients';
  return Promise.all(
    [...chains.values()].map(async (chain) => {
      const newest = chain.at(-1)!;
      const problem =
        checked === 'decrypted'
          ? ((await keyProblem(run, newest, 'decrypt')) ?? (await probeDecryption(run, newest)))
          : await keyProblem(run, newest, 'encrypt');
      const mixed = await mixedKeyProblem(run, chain);
      return {
        chain: chain[0]!.manifest.id,
        newest: newest.manifest.id,
        checked,
        ok: !problem && !mixed,
        ...(problem ? { problem } : {}),
        ...(mixed ? { mixed } : {}),
      };
    }),
  );
}
