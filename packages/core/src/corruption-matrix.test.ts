/*
 * The corruption matrix (issue 11): every stored file kind × damage × scope × command, run through
 * the core API against two local destinations holding a tiny database and a media file set. Each
 * scenario damages a copy of one prepared repository; the expected outcome of every cell is
 * computed from the rules below (never typed in), the table is printed, and any unexpected cell
 * fails the test. Invariants checked in every cell: damage is detected with a message naming the
 * file and the destination, repaired from a good copy where one exists, never restored as success,
 * never deleted as an orphan.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtinRegistry } from '@stowage/adapters';
import { createGreaterWmsDatabase, simulateWarehouseActivity, writeSampleMedia } from '@stowage/fixtures';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { bufferBody } from '@stowage/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runArchive } from './archive.js';
import { AUDIT_FILE } from './audit.js';
import { backup } from './backup.js';
import { cleanup } from './cleanup.js';
import { resolveConfig, type ResolvedConfig } from './config.js';
import { drill } from './drill.js';
import { CoreErrorCode } from './errors.js';
import { openEngine, type Engine } from './engine.js';
import { manifestKey } from './layout.js';
import { acquireDestinationLock, DESTINATION_LOCK_KEY, type Lock } from './lock.js';
import { parseManifest, type Artifact, type Manifest } from './manifest.js';
import { restore } from './restore.js';
import { sync } from './sync.js';
import { validate } from './validate.js';
import { verify } from './verify.js';

const KINDS = ['database', 'delta', 'page-hashes', 'files', 'files-index', 'manifest', 'lock', 'audit-copy'] as const;
const DAMAGES = ['flip', 'truncate', 'delete', 'replace'] as const;
const SCOPES = ['one', 'all'] as const;
const COMMANDS = ['verify', 'verify --deep', 'validate', 'restore', 'drill', 'cleanup', 'sync', 'next incremental'] as const;
type Kind = (typeof KINDS)[number];
type DamageKind = (typeof DAMAGES)[number];
type Scope = (typeof SCOPES)[number];
type Command = (typeof COMMANDS)[number];

/**
 * - `ok`: succeeded, untouched by the damage; `detected`: failed, naming the file and a damaged destination;
 * - `fallback`: succeeded from the good destination, a warning naming the damaged file and destination;
 * - `older`: restored the previous backup (the damaged one is not committed where it looked), a warning naming it;
 * - `repaired`: the damaged file is back, byte for byte; `taken over`: a damaged lock was judged stale and replaced;
 * - `full`: the next backup was taken as a full; anything else (`BAD …`) is a bug.
 */
type Outcome = 'ok' | 'detected' | 'fallback' | 'older' | 'repaired' | 'taken over' | 'full' | `BAD ${string}`;

const DESTINATIONS = [
  { name: 'dest-a', url: 'a' },
  { name: 'dest-b', url: 'b' },
];
/** What each restoring command reads of the newest chain (validate checks the database only). */
const READS: Partial<Record<Command, readonly Kind[]>> = {
  validate: ['database', 'delta', 'manifest'],
  restore: ['database', 'delta', 'files', 'manifest'],
  drill: ['database', 'delta', 'files', 'manifest'],
};
// (The file-set index and the page-hash list only serve the next incremental, which finds both in its local cache.)
/** The destination locks each command takes, as the CLI does (verify and validate take none). */
const TAKES_LOCKS: readonly Command[] = ['restore', 'drill', 'cleanup', 'sync', 'next incremental'];

/** The rules: what every cell must show. */
function expected(kind: Kind, damage: DamageKind, scope: Scope, command: Command): Outcome[] {
  if (kind === 'lock') return TAKES_LOCKS.includes(command) && damage !== 'delete' ? ['taken over'] : ['ok'];
  if (kind === 'audit-copy') return command === 'next incremental' ? ['repaired'] : ['ok']; // `audit verify` is what reads copies
  switch (command) {
    case 'verify':
    case 'verify --deep':
      return ['detected'];
    case 'validate':
    case 'restore':
    case 'drill': {
      if (!READS[command]!.includes(kind)) return ['ok'];
      // The drill reads the damaged destination alone; the others fall back to the good one.
      const noGoodCopy = scope === 'all' || command === 'drill';
      if (kind === 'manifest') return noGoodCopy ? ['older'] : damage === 'delete' ? ['ok'] : ['fallback'];
      return noGoodCopy ? ['detected'] : ['fallback'];
    }
    case 'cleanup':
      // Cleanup reads manifests only: it repairs them from a good copy or reports them, and deletes nothing of the chain.
      if (kind !== 'manifest') return ['ok'];
      return scope === 'all' ? ['detected'] : damage === 'delete' ? ['ok'] : ['repaired'];
    case 'sync':
      return scope === 'one' ? ['repaired'] : ['detected'];
    case 'next incremental':
      // Never built on a damaged parent: a link damaged everywhere means a full (saying why); damaged at one
      // destination, the link is first copied there from the good one. An unreadable newest manifest leaves
      // the backup before it as the parent.
      return kind === 'manifest' || scope === 'one' ? ['ok'] : ['full'];
  }
}

interface Template {
  dir: string;
  /** F0 → I0 (an older chain, past retention) and F → I (the newest chain). */
  manifests: Record<'F0' | 'I0' | 'F' | 'I', Manifest>;
  /** The audit copy as it was after I0 (another backup's copy). */
  olderAuditCopy: Buffer;
}

const AUDIT_COPY_KEY = `audit/${hostname().replace(/[^A-Za-z0-9._-]/g, '_')}.audit.jsonl`;
const at = (day: number, hour: number) => new Date(2024, 0, day, hour, 0, 0);
let template: Template;
let scratch: string;
const clock = { now: at(1, 2) };

async function open(dir: string, warnings: string[]): Promise<Engine> {
  return openEngine(configFor(dir), { retry: false, now: () => clock.now, onWarning: (m) => warnings.push(m) });
}

function configFor(dir: string): ResolvedConfig {
  return resolveConfig(
    {
      source: { database: 'db.sqlite3', busyTimeoutMs: 5000, files: { media: { path: 'media' } } },
      destinations: DESTINATIONS,
      compression: { algorithm: 'none' },
    },
    join(dir, 'stowage.config.json'),
  );
}

async function prepare(): Promise<Template> {
  const dir = join(scratch, 'template');
  await mkdir(dir, { recursive: true });
  createGreaterWmsDatabase(join(dir, 'db.sqlite3'), { seed: 11, scale: 0.02 });
  writeSampleMedia(join(dir, 'media'), { seed: 1, count: 4, maxBytes: 4096 });
  const engine = await open(dir, []);
  const manifests = {} as Template['manifests'];
  let olderAuditCopy = Buffer.alloc(0);
  const steps = [
    ['F0', 'full', at(1, 2)],
    ['I0', 'incremental', at(1, 3)],
    ['F', 'full', at(2, 2)],
    ['I', 'incremental', at(2, 3)],
  ] as const;
  for (const [label, type, when] of steps) {
    clock.now = when;
    simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: when.getTime() % 997, operations: 5 });
    writeSampleMedia(join(dir, 'media'), { seed: when.getTime() % 991, count: 1, maxBytes: 2048 });
    const result = await backup(engine, { type });
    expect(result.outcome).toBe('ok');
    expect(result.manifest.type).toBe(type);
    manifests[label] = result.manifest;
    if (label === 'I0') olderAuditCopy = await readFile(join(dir, 'a', AUDIT_COPY_KEY));
  }
  await engine.close();
  return { dir, manifests, olderAuditCopy };
}

const roleOf: Partial<Record<Kind, { backup: 'F' | 'I'; role: Artifact['role'] }>> = {
  database: { backup: 'F', role: 'database' },
  delta: { backup: 'I', role: 'delta' },
  'page-hashes': { backup: 'F', role: 'page-hashes' },
  files: { backup: 'F', role: 'files' },
  'files-index': { backup: 'I', role: 'files-index' },
};
const OLDER = { F: 'F0', I: 'I0' } as const;

/** The key a kind damages, and the bytes of another backup's file of the same kind. */
async function target(kind: Kind): Promise<{ key: string; other: Buffer }> {
  const { manifests } = template;
  const read = (key: string) => readFile(join(template.dir, 'a', key));
  const artifactKey = (label: keyof Template['manifests'], role: Artifact['role']) => manifests[label].artifacts.find((a) => a.role === role)!.key;
  const I0manifest = manifestKey('incremental', manifests.I0.id);
  switch (kind) {
    case 'manifest':
      return { key: manifestKey('incremental', manifests.I.id), other: await read(I0manifest) };
    case 'lock':
      return { key: DESTINATION_LOCK_KEY, other: await read(I0manifest) };
    case 'audit-copy':
      return { key: AUDIT_COPY_KEY, other: template.olderAuditCopy };
    default: {
      const { backup: label, role } = roleOf[kind]!;
      return { key: artifactKey(label, role), other: await read(artifactKey(OLDER[label], role)) };
    }
  }
}

function damaged(bytes: Buffer, damage: DamageKind, other: Buffer): Buffer | undefined {
  switch (damage) {
    case 'flip': {
      const copy = Buffer.from(bytes);
      copy[copy.length >> 1]! ^= 0x01;
      return copy;
    }
    case 'truncate':
      return bytes.subarray(0, bytes.length >> 1);
    case 'delete':
      return undefined;
    case 'replace':
      return other;
  }
}

/** A lock left by a crashed process: its pid is gone and its lease long expired. */
function crashedLock(): string {
  const pid = spawnSync(process.execPath, ['-e', '0']).pid!;
  return JSON.stringify({
    id: 'crashed-holder',
    host: hostname(),
    pid,
    operation: 'backup',
    command: 'stowage backup --type full',
    startedAt: '2024-01-01T02:00:00.000Z',
    expiresAt: '2024-01-01T02:10:00.000Z',
  });
}

interface Scenario {
  kind: Kind;
  damage: DamageKind;
  scope: Scope;
  key: string;
  original: Buffer;
  damagedAt: string[];
}

/** A fresh copy of the template with the scenario's damage applied; with `aged`, every file made two hours old (past the orphan grace). */
async function damagedCopy(s: Omit<Scenario, 'original'>, name: string, aged: boolean): Promise<{ dir: string; original: Buffer }> {
  const dir = join(scratch, name);
  await cp(template.dir, dir, { recursive: true });
  if (s.kind === 'lock') {
    for (const d of DESTINATIONS.filter((x) => s.damagedAt.includes(x.name))) {
      await mkdir(join(dir, d.url, 'locks'), { recursive: true });
      await writeFile(join(dir, d.url, s.key), crashedLock());
    }
  }
  const original = await readFile(join(dir, DESTINATIONS.find((d) => d.name === s.damagedAt[0])!.url, s.key));
  const { other } = await target(s.kind);
  for (const d of DESTINATIONS.filter((x) => s.damagedAt.includes(x.name))) {
    const bytes = damaged(original, s.damage, other);
    if (bytes === undefined) await rm(join(dir, d.url, s.key));
    else await writeFile(join(dir, d.url, s.key), bytes);
  }
  const old = new Date(Date.now() - 2 * 3_600_000);
  for (const d of aged ? DESTINATIONS : []) {
    for (const entry of await readdir(join(dir, d.url), { recursive: true, withFileTypes: true }))
      if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), old, old);
  }
  return { dir, original };
}

/** Whether `text` names the damaged file and one of the destinations where it is damaged. */
const names = (s: Scenario, text: string) => text.includes(s.key) && s.damagedAt.some((d) => text.includes(d));
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Whether the damaged file holds its original bytes again at every damaged destination. */
async function isRepaired(s: Scenario, dir: string): Promise<boolean> {
  for (const d of DESTINATIONS.filter((x) => s.damagedAt.includes(x.name))) {
    const now = await readFile(join(dir, d.url, s.key)).catch(() => undefined);
    if (!now || !(s.kind === 'manifest' ? sameBackup(now, s.original) : now.equals(s.original))) return false;
  }
  return true;
}

/** A repaired manifest is the original but for the repaired destination's replica record (and so its checksum). */
function sameBackup(repaired: Buffer, original: Buffer): boolean {
  const content = (bytes: Buffer) => {
    const { replicas: _, checksum: __, ...rest } = parseManifest(bytes.toString('utf8'), 'manifest');
    return JSON.stringify(rest);
  };
  return content(repaired) === content(original);
}

/** Takes the destination locks as the CLI would; `taken over` when a damaged lock had to be judged stale. */
async function withLocks(s: Scenario, engine: Engine, command: Command, run: () => Promise<Outcome>): Promise<Outcome> {
  if (!TAKES_LOCKS.includes(command)) return run();
  const held: Lock[] = [];
  try {
    for (const destination of engine.destinations) held.push(await acquireDestinationLock(destination, { operation: command }, { waitMs: 0 }));
  } catch (error) {
    for (const lock of held) await lock.release();
    const message = (error as Error).message;
    return s.kind === 'lock' && s.damagedAt.some((d) => message.includes(d)) ? 'detected' : `BAD lock refused: ${message}`;
  }
  try {
    const outcome = await run();
    const tookOver = held.filter((l) => l.broke).map((l) => l.name);
    if (outcome !== 'ok' || s.kind !== 'lock' || tookOver.length === 0) return outcome;
    return s.damagedAt.every((d) => tookOver.includes(d)) ? 'taken over' : `BAD lock not judged at ${s.damagedAt.join(',')}`;
  } finally {
    for (const lock of held) await lock.release();
  }
}

/** Runs one command on a damaged copy and classifies what it did. */
async function observe(s: Scenario, command: Command, dir: string): Promise<Outcome> {
  const warnings: string[] = [];
  const engine = await open(dir, warnings);
  const { manifests } = template;
  try {
    return await withLocks(s, engine, command, async () => {
      const failed = (text: string): Outcome => (names(s, text) ? 'detected' : `BAD unnamed: ${text.slice(0, 160)}`);
      const restored = async (id: string, targetPath: string | undefined, snapshotSha256: string): Promise<Outcome> => {
        if (targetPath && sha256(await readFile(targetPath)) !== snapshotSha256) return 'BAD restored wrong bytes';
        const warned = names(s, warnings.join('\n'));
        if (id === manifests.I.id) return warned ? 'fallback' : 'ok';
        return warned ? 'older' : `BAD restored ${id} instead of ${manifests.I.id} without a word`;
      };
      try {
        switch (command) {
          case 'verify':
          case 'verify --deep': {
            const results = await verify(engine, { all: true, deep: command === 'verify --deep' });
            const problems = results.flatMap((r) => r.artifacts.filter((a) => !a.ok).map((a) => `${a.destination} ${a.key}: ${a.problem}`));
            return problems.length ? failed(problems.join('\n')) : 'ok';
          }
          case 'validate': {
            const v = await validate(engine, 'latest');
            if (!v.ok) return `BAD validate found invalid data: ${JSON.stringify(v).slice(0, 160)}`;
            return restored(v.backupId, undefined, '');
          }
          case 'restore': {
            const r = await restore(engine, { backup: 'latest', testMode: true });
            return restored(r.manifest.id, r.target, r.manifest.source.snapshotSha256);
          }
          case 'drill': {
            const d = await drill(engine, { destination: 'dest-a' });
            if (!d.ok) return failed(d.problems.join('\n'));
            return restored(d.backupId, undefined, '');
          }
          case 'cleanup': {
            const before = await chainObjects(dir);
            const r = await cleanup(engine, { asOf: at(180, 0) });
            const after = await chainObjects(dir);
            const deleted = [...before].filter((path) => !after.has(path));
            if (deleted.length) return `BAD deleted ${deleted.join(', ')}`;
            const problems = [...r.damaged.map((d) => `${d.destination} ${d.key}: ${d.problem}`), ...r.failures.map((f) => `${f.destination}: ${f.message}`)];
            if (problems.length) return failed(problems.join('\n'));
            if (r.repaired.length) return (await isRepaired(s, dir)) ? 'repaired' : 'BAD said repaired, bytes differ';
            return 'ok';
          }
          case 'sync': {
            const r = await sync(engine);
            const failures = r.actions.filter((a) => a.outcome === 'failed');
            if (failures.length) return failed(failures.map((a) => `${a.destination} ${a.backupId}: ${a.detail ?? a.problem} — ${a.message}`).join('\n'));
            if (r.actions.length === 0) return 'ok';
            return (await isRepaired(s, dir)) ? 'repaired' : 'BAD sync said repaired, bytes differ';
          }
          case 'next incremental': {
            clock.now = at(2, 4);
            simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: 4242, operations: 5 });
            const result = await backup(engine, { type: 'incremental' });
            if (result.outcome !== 'ok') return failed(result.failures.map((f) => `${f.destination}: ${f.message}`).join('\n'));
            if (s.kind === 'audit-copy') {
              const log = await readFile(join(engine.logDir, AUDIT_FILE));
              for (const d of DESTINATIONS) if (!(await readFile(join(dir, d.url, s.key))).equals(log)) return 'BAD audit copy not rewritten';
            }
            // "Stored and verified" must mean restorable.
            const r = await restore(engine, { backup: result.manifest.id, testMode: true }).catch((error: unknown) => error as Error);
            if (r instanceof Error) return `BAD stored and verified but not restorable: ${r.message.slice(0, 120)}`;
            if (sha256(await readFile(r.target!)) !== result.manifest.source.snapshotSha256) return 'BAD restored wrong bytes';
            if (s.kind === 'audit-copy') return 'repaired';
            return result.manifest.type === 'full' ? 'full' : 'ok';
          }
        }
      } catch (error) {
        return failed(`${(error as Error).message}\n${warnings.join('\n')}`);
      }
    });
  } finally {
    await engine.close();
  }
}

/** Every object of the newest chain (F, I) at every destination, as `dest/key`. */
async function chainObjects(dir: string): Promise<Set<string>> {
  const ids = [template.manifests.F.id, template.manifests.I.id];
  const found = new Set<string>();
  for (const d of DESTINATIONS) {
    for (const folder of ['full', 'incremental']) {
      for (const name of await readdir(join(dir, d.url, folder)).catch(() => [] as string[]))
        if (ids.some((id) => name.startsWith(`${id}.`))) found.add(`${d.name}/${folder}/${name}`);
    }
  }
  return found;
}

describe('corruption matrix', () => {
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'stowage-corruption-'));
    template = await prepare();
  }, 60_000);
  afterAll(async () => rm(scratch, { recursive: true, force: true }));

  it('detects, repairs or refuses every damage to every stored file, never restoring or deleting what it could not read', async () => {
    const scenarios = KINDS.flatMap((kind) => DAMAGES.flatMap((damage) => SCOPES.map((scope) => ({ kind, damage, scope }))));
    const rows: string[] = new Array(scenarios.length);
    const unexpected: string[] = [];
    const counts = new Map<string, number>();
    const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
    let next = 0;
    // A few scenarios at once: most of a cell's time is spent waiting on files.
    const worker = async () => {
      for (let i = next++; i < scenarios.length; i = next++) {
        const { kind, damage, scope } = scenarios[i]!;
        const { key } = await target(kind);
        const damagedAt = scope === 'one' ? ['dest-a'] : DESTINATIONS.map((d) => d.name);
        const labels: string[] = [];
        // Read-only commands share one copy; each command that writes gets its own.
        let shared: { dir: string; original: Buffer } | undefined;
        for (const command of COMMANDS) {
          // (A command taking locks replaces a damaged lock.)
          const writes = ['cleanup', 'sync', 'next incremental'].includes(command) || (kind === 'lock' && TAKES_LOCKS.includes(command));
          const copy =
            writes || !shared
              ? await damagedCopy({ kind, damage, scope, key, damagedAt }, `s${i}-${command.replace(/\W+/g, '-')}`, command === 'cleanup')
              : shared;
          if (!writes) shared = copy;
          const outcome = await observe({ kind, damage, scope, key, original: copy.original, damagedAt }, command, copy.dir);
          const allowed = expected(kind, damage, scope, command);
          const good = allowed.includes(outcome);
          count(good ? outcome : 'unexpected');
          if (!good) unexpected.push(`${kind} × ${damage} × ${scope} × ${command}: ${outcome} (want ${allowed.join('|')})`);
          labels.push((good ? outcome : `✗ ${outcome.slice(0, 13)}`).padEnd(16));
          if (writes) await rm(copy.dir, { recursive: true, force: true });
        }
        if (shared) await rm(shared.dir, { recursive: true, force: true });
        rows[i] = `${kind.padEnd(12)} ${damage.padEnd(9)} ${scope.padEnd(4)} ${labels.join(' ')}`;
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    const header = `${'kind'.padEnd(12)} ${'damage'.padEnd(9)} ${'at'.padEnd(4)} ${COMMANDS.map((c) => c.padEnd(16)).join(' ')}`;
    const cells = scenarios.length * COMMANDS.length;
    console.log(
      [
        `corruption matrix: ${KINDS.length} kinds × ${DAMAGES.length} damages × ${SCOPES.length} scopes × ${COMMANDS.length} commands = ${cells} cells ("✗ x": unexpected)`,
        header,
        ...rows,
        `outcomes: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`,
        ...unexpected,
      ].join('\n'),
    );
    expect(unexpected).toEqual([]);
  }, 600_000);
});

/*
 * The archive rows: the same damages to copies moved to an archive class (OSS ColdArchive on the
 * OSS test server, through the real SDK client: the memory adapter offers no way to damage an
 * archived object behind its API), against the commands that meet archived copies. Damages: bit rot
 * behind the API that leaves the destination's recorded checksum as it was (`flip`) or shortens the
 * object (`truncate`); the object written over with other bytes (`replace`, which also makes it hot)
 * or deleted; and the tier record lost (`unarchive`: the same bytes written back, hot again — the
 * catalog knows an artifact's class only from the destination). Invariants: a damage is reported
 * naming the file and the destination, or, where only a read could see it, reported by the commands
 * that read; a restore never returns wrong bytes; `archive run` never leaves a damaged copy as
 * archived-and-checked.
 */
const ARCHIVE_KINDS = ['database', 'delta', 'files'] as const;
const ARCHIVE_DAMAGES = ['flip', 'truncate', 'replace', 'delete', 'unarchive'] as const;
const ARCHIVE_COMMANDS = ['verify', 'verify --deep --thaw', 'restore --thaw', 'archive run'] as const;
type ArchiveDamage = (typeof ARCHIVE_DAMAGES)[number];
type ArchiveCommand = (typeof ARCHIVE_COMMANDS)[number];
const OSS_CREDENTIALS = { accessKeyId: 'corruption-matrix-id', accessKeySecret: 'corruption-matrix-secret' };
const OSS_BUCKET = 'corruption';
const COLD = 'ColdArchive';
const HOUR = 3_600_000;

/** The rules of the archive rows. */
function expectedArchived(damage: ArchiveDamage, command: ArchiveCommand): Outcome[] {
  if (damage === 'unarchive') return command === 'archive run' ? ['repaired'] : ['ok'];
  switch (command) {
    case 'verify':
      // Size and the destination's checksum, without a read: bit rot under an unchanged checksum needs --deep.
      return damage === 'flip' ? ['ok'] : ['detected'];
    case 'verify --deep --thaw':
    case 'restore --thaw':
      return ['detected'];
    case 'archive run':
      // It never reads an archived copy (verify --deep does); a copy made hot again is checked when moved back.
      return damage === 'flip' || damage === 'truncate' ? ['ok'] : ['detected'];
  }
}

describe('corruption matrix: archived copies', () => {
  let oss: OssTestServer;
  let dir: string;
  let next = 0;
  const t0 = Date.now();
  const thaw = { tier: 'expedited', days: 30 } as const;

  beforeAll(async () => {
    oss = await startOssTestServer({ ...OSS_CREDENTIALS, buckets: [OSS_BUCKET] });
    Object.assign(process.env, { CORRUPTION_OSS_ID: OSS_CREDENTIALS.accessKeyId, CORRUPTION_OSS_SECRET: OSS_CREDENTIALS.accessKeySecret });
    dir = await mkdtemp(join(tmpdir(), 'stowage-corruption-archive-'));
  }, 60_000);
  afterAll(async () => {
    await oss?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** A repository of one chain (full + incremental, with a file set) at its own prefix, moved to ColdArchive. */
  async function archivedChain(): Promise<{ engine: Engine; warnings: string[]; prefix: string; full: Manifest; inc: Manifest }> {
    const prefix = `s${next++}`;
    const here = join(dir, prefix);
    await mkdir(here);
    createGreaterWmsDatabase(join(here, 'db.sqlite3'), { seed: 12, scale: 0.02 });
    writeSampleMedia(join(here, 'media'), { seed: 2, count: 3, maxBytes: 2048 });
    let now = t0;
    const warnings: string[] = [];
    const engine = await openEngine(
      resolveConfig(
        {
          source: { database: 'db.sqlite3', busyTimeoutMs: 5000, files: { media: { path: 'media' } } },
          destinations: [
            {
              name: 'cold',
              url: `oss://${OSS_BUCKET}/${prefix}`,
              options: {
                region: 'oss-cn-hangzhou',
                endpoint: oss.endpoint,
                secure: false,
                accessKeyIdEnv: 'CORRUPTION_OSS_ID',
                accessKeySecretEnv: 'CORRUPTION_OSS_SECRET',
              },
              archive: { after: '2d', storageClass: COLD, types: ['full', 'incremental'] },
            },
          ],
          compression: { algorithm: 'none' },
        },
        join(here, 'stowage.config.json'),
      ),
      { registry: builtinRegistry(), retry: false, now: () => new Date(now), onWarning: (m) => warnings.push(m) },
    );
    const full = (await backup(engine, { type: 'full' })).manifest;
    simulateWarehouseActivity(join(here, 'db.sqlite3'), { seed: 3, operations: 5 });
    writeSampleMedia(join(here, 'media'), { seed: 4, count: 1, maxBytes: 2048 });
    now = t0 + HOUR;
    const inc = (await backup(engine, { type: 'incremental' })).manifest;
    now = t0 + 10 * 86_400_000;
    expect((await runArchive(engine)).moved).toHaveLength(4);
    return { engine, warnings, prefix, full, inc };
  }

  it('reports, refuses or repairs every damage to an archived copy, and never restores wrong bytes', async () => {
    const rows: string[] = [];
    const unexpected: string[] = [];
    for (const kind of ARCHIVE_KINDS) {
      for (const damage of ARCHIVE_DAMAGES) {
        const { engine, warnings, prefix, full, inc } = await archivedChain();
        const artifact = (kind === 'delta' ? inc : full).artifacts.find((a) => a.role === kind)!;
        const { key } = artifact;
        const adapter = engine.destinations[0]!.adapter;
        const stored = oss.object(OSS_BUCKET, `${prefix}/${key}`)!;
        if (damage === 'flip' || damage === 'truncate') oss.corruptObject(OSS_BUCKET, `${prefix}/${key}`, damage === 'flip' ? 'flip-byte' : 'truncate');
        if (damage === 'replace') await adapter.put(key, bufferBody(Buffer.from(stored.bytes).reverse()));
        if (damage === 'unarchive') await adapter.put(key, bufferBody(stored.bytes));
        if (damage === 'delete') await adapter.delete([key]);
        const named = (text: string): Outcome => (text.includes(key) && text.includes('cold') ? 'detected' : `BAD unnamed: ${text.slice(0, 160)}`);
        const verified = async (deep: boolean): Promise<Outcome> => {
          if (deep) {
            await verify(engine, { all: true, deep, thaw: { ...thaw, wait: false } });
            oss.clock.advance(HOUR); // ColdArchive's expedited thaw
          }
          const results = await verify(engine, { all: true, deep, ...(deep && { thaw: { ...thaw, wait: true, pollMs: 10, timeoutMs: 5000 } }) });
          const problems = results.flatMap((r) => r.artifacts.filter((a) => !a.ok).map((a) => `${a.destination} ${a.key}: ${a.problem}`));
          return problems.length ? named(problems.join('\n')) : 'ok';
        };
        const observe = async (command: ArchiveCommand): Promise<Outcome> => {
          try {
            switch (command) {
              case 'verify':
                return await verified(false);
              case 'verify --deep --thaw':
                return await verified(true);
              case 'restore --thaw': {
                await restore(engine, { backup: inc.id, testMode: true, thaw: { ...thaw, wait: false } }).catch((error: unknown) => {
                  if ((error as { code?: unknown }).code !== CoreErrorCode.ThawPending) throw error;
                });
                oss.clock.advance(HOUR);
                const r = await restore(engine, { backup: inc.id, testMode: true, thaw: { ...thaw, wait: true, pollMs: 10, timeoutMs: 5000 } });
                if (sha256(await readFile(r.target!)) !== r.manifest.source.snapshotSha256) return 'BAD restored wrong bytes';
                return r.manifest.id === inc.id ? 'ok' : `BAD restored ${r.manifest.id}`;
              }
              case 'archive run': {
                const r = await runArchive(engine);
                if (r.failures.length) return named(r.failures.map((f) => `${f.destination} ${f.key}: ${f.message}`).join('\n'));
                if (r.moved.length === 0) return 'ok';
                const now = oss.object(OSS_BUCKET, `${prefix}/${key}`);
                return r.moved.every((m) => m.key === key) && now?.storageClass === COLD && now.bytes.equals(stored.bytes)
                  ? 'repaired'
                  : 'BAD moved a bad copy';
              }
            }
          } catch (error) {
            return named(`${(error as Error).message}\n${warnings.join('\n')}`);
          }
        };
        const labels: string[] = [];
        for (const command of ARCHIVE_COMMANDS) {
          const outcome = await observe(command);
          const allowed = expectedArchived(damage, command);
          if (!allowed.includes(outcome)) unexpected.push(`${kind} × ${damage} × ${command}: ${outcome} (want ${allowed.join('|')})`);
          labels.push((allowed.includes(outcome) ? outcome : `✗ ${outcome.slice(0, 18)}`).padEnd(21));
        }
        await engine.close();
        rows.push(`${kind.padEnd(9)} ${damage.padEnd(10)} ${labels.join(' ')}`);
      }
    }
    console.log(
      [
        `corruption matrix, archived copies: ${ARCHIVE_KINDS.length} kinds × ${ARCHIVE_DAMAGES.length} damages × ${ARCHIVE_COMMANDS.length} commands ("✗ x": unexpected)`,
        `${'kind'.padEnd(9)} ${'damage'.padEnd(10)} ${ARCHIVE_COMMANDS.map((c) => c.padEnd(21)).join(' ')}`,
        ...rows,
        ...unexpected,
      ].join('\n'),
    );
    expect(unexpected).toEqual([]);
  }, 600_000);
});
