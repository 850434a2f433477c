/*
 * The crash matrix (issue 10). The real CLI is SIGKILLed right after every commit step of every
 * operation — each name in CRASH_POINTS, through the test-only STOWAGE_CRASH_AT hook — plus at
 * seeded random times, and while an application writer holds the database. After each kill:
 * the live database is byte-identical to before or to the restored backup (never a mix, no foreign
 * journal beside it); the next command (the same operation again; `list` after a restore, whose
 * rerun would hide what the crash left) succeeds and repairs; afterwards the live database
 * and file sets are both old or both new, every kept `damaged_<stamp>` copy passes integrity_check,
 * no owner-named temp file or restore journal is left, every backup `list` shows passes a deep
 * verify at each destination holding it and restores byte-exact. The CLI is bundled once with esbuild (what tsx runs, without tsx's start-up per run).
 */
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isDeepStrictEqual } from 'node:util';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { builtinRegistry } from '@stowage/adapters';
import {
  backup,
  CoreErrorCode,
  CRASH_POINTS,
  listBackups,
  openEngine,
  resolveConfig,
  restore,
  runArchive,
  thawStatus,
  verify,
  type CrashPointName,
  type Engine,
} from '@stowage/core';
import { checkWriterInvariants, createGreaterWmsDatabase, simulateWarehouseActivity, startWriterProcess, writeSampleMedia } from '@stowage/fixtures';
import { startOssTestServer, type OssTestServer } from '@stowage/oss-test-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const DAY = 86_400_000;

type Operation = 'backup-full' | 'backup-full-wal' | 'backup-incremental' | 'backup-hot' | 'cleanup' | 'sync' | 'restore' | 'restore-large' | 'restore-target';

/** The crash points an operation names for itself (`restore.…`), in the order it meets them, but those of `except`. */
const stepsOf = (prefix: string, except: readonly CrashPointName[] = []): CrashPointName[] =>
  CRASH_POINTS.filter((step) => step.startsWith(`${prefix}.`) && !except.includes(step));
/** The `n`-th pass of a crash point (`STOWAGE_CRASH_AT=<step>@<n>`). */
const nth = (step: CrashPointName, n: number) => `${step}@${n}`;
/** Steps every operation passes: its locks, and the local adapter's put of the destination lock. */
const COMMON: CrashPointName[] = [
  'lock.source-taken',
  'lock.destination-taken',
  'local.temp-written',
  'local.linked',
  'lock.destination-released',
  'lock.source-released',
];
/**
 * The backup steps: the artifacts are staged files the local adapter hard-links (the first local
 * destination) or copies in the kernel (`local.copied`, before their read-back check) and links into place (`local.linked`: passes 1
 * and 2 are the two destination locks, 3 is the first artifact).
 */
const BACKUP_STEPS: string[] = [...COMMON, 'local.copied', 'local.renamed', 'backup.snapshot-staged', 'backup.artifacts-stored', 'backup.manifest-written'];
/**
 * Fulls and hots read the live database (rollback-journal mode) and encode it on the way, like
 * incrementals, which stage a delta instead. In WAL mode they copy it, encode the copy and remove it
 * at once (`backup.snapshot-removed`).
 */
const ENCODED_STEPS = ['backup.database-reading', nth('local.linked', 3)];
/**
 * The commit steps each operation reaches, and its command line; `template: 'large'` runs it on a
 * database larger than the restore's flush interval (64 MiB), so a restore flushes its image midway;
 * `randomKill: false` leaves out its kill at a random time.
 */
const OPERATIONS: Record<Operation, { argv: string[]; steps: string[]; template?: TemplateName; randomKill?: false }> = {
  'backup-full': { argv: ['backup', '--type', 'full'], steps: [...BACKUP_STEPS, ...ENCODED_STEPS, 'backup.cache-written'] },
  'backup-full-wal': { argv: ['backup', '--type', 'full'], steps: ['backup.snapshot-staged', 'backup.snapshot-removed'], template: 'wal', randomKill: false },
  // Incrementals (and fulls) read the live database under its read lock: killed mid-read, they leave the database as it was.
  'backup-incremental': { argv: ['backup', '--type', 'incremental'], steps: [...BACKUP_STEPS, 'backup.database-reading', 'backup.cache-written'] },
  'backup-hot': { argv: ['backup', '--type', 'hot'], steps: [...BACKUP_STEPS, ...ENCODED_STEPS] },
  cleanup: { argv: ['cleanup'], steps: [...COMMON, ...stepsOf('cleanup')] },
  sync: { argv: ['sync'], steps: [...COMMON, 'local.copied', 'local.renamed', ...stepsOf('sync')] },
  restore: { argv: ['restore', 'latest', '--yes'], steps: [...COMMON, ...stepsOf('restore', ['restore.image-flushed'])] },
  'restore-large': { argv: ['restore', 'latest', '--yes'], steps: ['restore.image-flushed'], template: 'large' },
  // A restore into another folder, killed before its switch: what it rebuilt there must not outlive the next command.
  // (Killed later, the switch is finished into that folder, which the checks of the live database do not follow.)
  'restore-target': {
    argv: ['restore', 'latest', '--yes', '--target', join('restored', 'db.sqlite3')],
    steps: ['restore.temp-written', 'restore.files-staged'],
    randomKill: false,
  },
};

interface Case {
  operation: Operation;
  /** A crash point, `random@<ms>`, or `writer:<crash point>`. */
  step: string;
  env: Record<string, string>;
  killAfterMs?: number;
  writer?: boolean;
}

interface Outcome {
  case: Pick<Case, 'step'> & { operation: string };
  /** `killed` at the step, `finished` before a random kill, or what went wrong. */
  killed: boolean;
  problems: string[];
}

let bin: string;
type TemplateName = 'small' | 'large' | 'wal';
/** A folder every case starts from (copied), and its state. */
interface Template {
  dir: string;
  before: { dbSha: string; media: string; backups: string[]; doomed: string; latestSha: string; latestMedia: string };
}
const templates = {} as Record<TemplateName, Template>;
/** What the large template adds to the database: more than the restore's flush interval (64 MiB), as zeros. */
const BALLAST_BYTES = 72 << 20;

const sha256 = async (path: string) =>
  existsSync(path)
    ? createHash('sha256')
        .update(await readFile(path))
        .digest('hex')
    : 'missing';

/** SHA-256 over the media tree (paths and contents). */
async function treeHash(folder: string): Promise<string> {
  const hash = createHash('sha256');
  const entries = existsSync(folder) ? await readdir(folder, { recursive: true, withFileTypes: true }) : [];
  for (const entry of entries.filter((e) => e.isFile()).sort((a, b) => join(a.parentPath, a.name).localeCompare(join(b.parentPath, b.name)))) {
    const path = join(entry.parentPath, entry.name);
    hash.update(`${relative(folder, path)}\0${await sha256(path)}\0`);
  }
  return hash.digest('hex');
}

function config(dir: string) {
  return resolveConfig(JSON.parse(readFileSync(join(dir, 'stowage.config.json'), 'utf8')), join(dir, 'stowage.config.json'));
}

function runCli(
  dir: string,
  argv: string[],
  env: Record<string, string> = {},
  killAfterMs?: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, ...argv], { cwd: dir, env: { ...process.env, STOWAGE_CONFIG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.once('error', fail);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      done({ code, signal, stdout, stderr });
    });
  });
}

/** Bundles the CLI with its native modules left outside and linked beside the bundle. */
async function bundleCli(): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'stowage-crash-bin-'));
  await build({
    entryPoints: [join(REPO, 'apps/cli/src/bin/stowage.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(out, 'bin', 'stowage.mjs'),
    external: ['better-sqlite3', 'zstd-napi', 'proxy-agent'],
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'error',
  });
  await mkdir(join(out, 'node_modules'));
  for (const [name, owner] of [
    ['better-sqlite3', 'packages/core'],
    ['zstd-napi', 'packages/compression'],
  ] as const) {
    const found = createRequire(join(REPO, owner, 'package.json')).resolve(`${name}/package.json`);
    await symlink(await realpath(dirname(found)), join(out, 'node_modules', name));
  }
  await writeFile(
    join(out, 'package.json'),
    JSON.stringify({ type: 'module', version: JSON.parse(await readFile(join(REPO, 'packages/core/package.json'), 'utf8')).version }),
  );
  return join(out, 'bin', 'stowage.mjs');
}

/**
 * A small GreaterWMS database with media (`large`: and a table of `BALLAST_BYTES`; `wal`: in WAL mode), backed up to
 * two local destinations: full, hot (past retention), hot, incremental.
 */
async function makeTemplate(name: TemplateName): Promise<void> {
  const template = await mkdtemp(join(tmpdir(), `stowage-crash-template-${name}-`));
  const database = join(template, 'db.sqlite3');
  createGreaterWmsDatabase(database, { seed: 5, scale: 0.05 });
  if (name === 'large') execFileSync('sqlite3', [database, `CREATE TABLE ballast (bytes BLOB); INSERT INTO ballast VALUES (zeroblob(${BALLAST_BYTES}));`]);
  if (name === 'wal') execFileSync('sqlite3', [database, 'PRAGMA journal_mode = WAL;']);
  writeSampleMedia(join(template, 'media'), { count: 4, maxBytes: 2048 });
  const file = {
    source: { database: 'db.sqlite3', busyTimeoutMs: 8000, files: { media: { path: 'media' } } },
    destinations: [
      { name: 'a', url: 'backups-a' },
      { name: 'b', url: 'backups-b' },
    ],
    compression: { algorithm: 'zstd', level: 1 },
  };
  await writeFile(join(template, 'stowage.config.json'), JSON.stringify(file, null, 2));
  const at = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY);
  const ids: string[] = [];
  for (const [type, daysAgo] of [
    ['full', 5],
    ['hot', 4],
    ['hot', 1.1],
    ['incremental', 1],
  ] as const) {
    simulateWarehouseActivity(database, { seed: ids.length + 1, operations: 10 });
    await writeFile(join(template, 'media', `added-${ids.length}.txt`), `media file ${ids.length}\n`);
    const engine = await openEngine(config(template), { now: () => at(daysAgo), retry: false });
    ids.push((await backup(engine, { type })).manifest.id);
    await engine.close();
  }
  const engine = await openEngine(config(template), { retry: false });
  const latest = (await listBackups(engine)).at(-1)!;
  await engine.close();
  const latestMedia = await treeHash(join(template, 'media'));
  simulateWarehouseActivity(database, { seed: 9, operations: 10 });
  await writeFile(join(template, 'media', 'after-the-last-backup.txt'), 'new since\n');
  templates[name] = {
    dir: template,
    before: {
      dbSha: await sha256(database),
      media: await treeHash(join(template, 'media')),
      backups: ids,
      doomed: ids[1]!,
      latestSha: latest.manifest.source.snapshotSha256,
      latestMedia,
    },
  };
}

/** Sync needs a replica to copy: the newest backup is taken away from destination b. A restore to another folder needs it. */
async function prepare(dir: string, operation: Operation): Promise<void> {
  if (operation === 'restore-target') await mkdir(join(dir, 'restored'));
  if (operation !== 'sync') return;
  const folder = join(dir, 'backups-b', 'incremental');
  for (const name of await readdir(folder)) await rm(join(folder, name));
}

/** Owner-named temp files and folders (host_pid_start_tag) and the restore journal: none may outlive the next command. */
async function leftovers(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((path) => /_\d+_\d+_[0-9a-f]{8}/.test(path.split('/').at(-1)!) || path.endsWith('restore-journal.json'));
}

const integrity = (path: string) => execFileSync('sqlite3', [path, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim();

/** Runs a case in its folder `dir`, removed afterwards: `body` notes problems and says whether the first command was killed. */
async function inCaseFolder(c: Outcome['case'], dir: string, body: (problems: string[]) => Promise<boolean>): Promise<Outcome> {
  const problems: string[] = [];
  try {
    return { case: c, killed: await body(problems), problems };
  } catch (error) {
    return { case: c, killed: false, problems: [...problems, `the checks failed: ${(error as Error).message}`] };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Restores the database of each of `entries` (test mode) into `folder`: a problem for each that does not come back byte-exact. */
async function restoreEach(engine: Engine, entries: Awaited<ReturnType<typeof listBackups>>, folder: string): Promise<string[]> {
  const problems: string[] = [];
  for (const { manifest } of entries) {
    const r = await restore(engine, { backup: manifest.id, testMode: true, only: ['database'], target: join(folder, `check-${manifest.id}.sqlite3`) });
    if ((await sha256(r.target!)) !== manifest.source.snapshotSha256) problems.push(`${manifest.id} does not restore byte-exact`);
  }
  return problems;
}

async function runCase(c: Case): Promise<Outcome> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-crash-'));
  const database = join(dir, 'db.sqlite3');
  const { dir: template, before } = templates[OPERATIONS[c.operation].template ?? 'small'];
  return inCaseFolder(c, dir, async (problems) => {
    await cp(template, dir, { recursive: true });
    await prepare(dir, c.operation);
    const writer = c.writer ? await startWriterProcess(database, { intervalMs: 3 }) : undefined;
    const first = await runCli(dir, OPERATIONS[c.operation].argv, c.env, c.killAfterMs);
    const killed = first.signal === 'SIGKILL';
    if (!killed && (c.killAfterMs === undefined || first.code !== 0))
      problems.push(`not killed: exit ${first.code}: ${first.stderr.trim().split('\n').at(-1)}`);

    // At the instant of the kill: the whole old database or the whole new one, no journal of the other.
    const liveSha = await sha256(database);
    const restored = liveSha === before.latestSha;
    if (!c.writer && liveSha !== before.dbSha && !restored) problems.push('live database is neither the old one nor the backup');
    if (c.writer && !restored && (!existsSync(database) || !checkWriterInvariants(database).ok))
      problems.push('live database (old, with the writer) is inconsistent');
    if (restored && existsSync(`${database}-journal`)) problems.push('a journal sits beside the restored database');
    const journaled = existsSync(join(dir, '.stowage', 'restore-journal.json'));

    const next = await runCli(dir, c.operation.startsWith('restore') ? ['list', '--json'] : OPERATIONS[c.operation].argv);
    const tallies = await writer?.stop();
    // A backup only makes writers wait.
    if (tallies?.errors && c.operation.startsWith('backup')) problems.push(`the writer failed ${tallies.errors} transactions`);
    if (next.code !== 0) problems.push(`next command failed (${next.code}): ${next.stderr.trim()}`);
    if (journaled && !/restore of \S+ was interrupted; (completed it|.*rolled it back)/.test(next.stderr))
      problems.push('an interrupted restore was repaired without saying so');
    const left = await leftovers(dir);
    if (left.length) problems.push(`left behind: ${left.join(', ')}`);

    // After the repair: database and file sets both old or both new; every kept copy whole.
    const dbNew = (await sha256(database)) === before.latestSha;
    const media = await treeHash(join(dir, 'media'));
    if (dbNew ? media !== before.latestMedia : media !== before.media)
      problems.push(
        `database ${dbNew ? 'restored' : 'old'} but media ${media === before.latestMedia ? 'restored' : media === before.media ? 'old' : 'neither'}`,
      );
    if (!dbNew && !c.writer && (await sha256(database)) !== before.dbSha) problems.push('live database changed though not restored');
    if (journaled && !dbNew) problems.push('an interrupted restore was not completed');
    if (integrity(database) !== 'ok') problems.push('live database fails integrity_check');
    for (const name of (await readdir(dir)).filter((n) => /^db\.sqlite3\.damaged_[\d_]+$/.test(n))) {
      if (integrity(join(dir, name)) !== 'ok') problems.push(`${name} fails integrity_check`);
      if (c.writer && !checkWriterInvariants(join(dir, name)).ok) problems.push(`${name} breaks the writer's invariants`);
    }
    for (const name of (await readdir(dir)).filter((n) => /^db\.sqlite3\.damaged_.*-(journal|wal|shm)$/.test(n))) {
      if (!existsSync(join(dir, name.replace(/-(journal|wal|shm)$/, '')))) problems.push(`${name} kept without its database`);
    }

    // Every backup listed verifies deep where it is committed and restores byte-exact.
    const engine = await openEngine(config(dir), { retry: false });
    try {
      const entries = await listBackups(engine);
      const ids = entries.map((e) => e.manifest.id);
      for (const id of before.backups) if (!ids.includes(id) && !(c.operation === 'cleanup' && id === before.doomed)) problems.push(`backup ${id} lost`);
      for (const result of await verify(engine, { all: true, deep: true })) {
        const bad = result.artifacts.filter((a) => !a.ok && !/no committed replica/.test(a.problem ?? ''));
        if (bad.length) problems.push(`${result.backupId} fails verify --deep: ${bad.map((a) => a.problem).join('; ')}`);
      }
      problems.push(...(await restoreEach(engine, entries, join(dir, '.stowage'))));
    } catch (error) {
      problems.push(`checking the backups: ${(error as Error).message}`);
    } finally {
      await engine.close();
    }
    return killed;
  });
}

/** A seeded PRNG (mulberry32), so the random kills are the same every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function cases(): Case[] {
  const all: Case[] = [];
  for (const [operation, { steps }] of Object.entries(OPERATIONS) as Array<[Operation, { steps: string[] }]>) {
    for (const step of steps) all.push({ operation, step, env: { STOWAGE_CRASH_AT: step } });
  }
  const next = random(10);
  for (const operation of (Object.keys(OPERATIONS) as Operation[]).filter((o) => OPERATIONS[o].randomKill ?? true)) {
    const ms = 150 + Math.floor(next() * 900);
    all.push({ operation, step: `random@${ms}ms`, env: {}, killAfterMs: ms });
  }
  for (const step of ['restore.journal-written', 'restore.db-linked-aside'] as const) {
    all.push({ operation: 'restore', step: `writer:${step}`, env: { STOWAGE_CRASH_AT: step }, writer: true });
  }
  const reading = 'backup.database-reading';
  for (const operation of ['backup-full', 'backup-incremental'] as const)
    all.push({ operation, step: `writer:${reading}`, env: { STOWAGE_CRASH_AT: reading }, writer: true });
  return all;
}

async function inBatches<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = [];
  let index = 0;
  await Promise.all(
    Array.from({ length: size }, async () => {
      while (index < items.length) {
        const i = index++;
        results[i] = await fn(items[i]!);
      }
    }),
  );
  return results;
}

function table(outcomes: readonly Outcome[], operations: readonly string[] = Object.keys(OPERATIONS)): string {
  const steps = [...new Set(outcomes.map((o) => o.case.step))];
  const cell = (o: Outcome | undefined) => (!o ? '' : o.problems.length ? 'FAIL' : o.killed ? 'ok' : 'ok (done)');
  const rows = steps.map((step) => [step, ...operations.map((op) => cell(outcomes.find((o) => o.case.step === step && o.case.operation === op)))]);
  const widths = ['step', ...operations].map((head, i) => Math.max(head.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((text, i) => text.padEnd(widths[i]!)).join(' | ');
  return [line(['step', ...operations]), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

/*
 * The archive rows: `archive run`, a thaw (`restore --thaw`, which requests the thaws and exits
 * saying they are pending) and `destinations lifecycle apply`, against the OSS test server (archive
 * classes, a thaw clock, bucket lifecycles), each case over its own prefix or bucket. After the kill
 * and the same command again: the repository converges (a further `archive run` moves nothing,
 * every artifact a thaw asked for is thawing or thawed, the bucket holds exactly the policy's rules
 * beside the foreign one, untouched), no lock is left, `verify` passes without reading, and every
 * backup restores byte-exact once what it needs is thawed.
 */
type ArchiveOperation = 'archive' | 'thaw' | 'lifecycle';
const OSS_ENV = { CRASH_OSS_ID: 'crash-matrix-id', CRASH_OSS_SECRET: 'crash-matrix-secret' };
const ARCHIVE_CLASS = 'ColdArchive';
/** Chain 1 (full + incremental, each with the media file set): the artifacts `archive run` moves and a restore of it thaws. */
const CHAIN_ARTIFACTS = 4;
const passesOf = (step: CrashPointName, n: number) => Array.from({ length: n }, (_, i) => nth(step, i + 1));
const ARCHIVE_OPERATIONS: Record<ArchiveOperation, { argv: (ids: string[]) => string[]; steps: string[] }> = {
  archive: {
    argv: () => ['archive', 'run'],
    steps: [
      'lock.source-taken',
      'lock.destination-taken',
      ...passesOf('archive.artifact-copied', CHAIN_ARTIFACTS),
      'lock.destination-released',
      'lock.source-released',
    ],
  },
  thaw: {
    argv: (ids) => ['restore', ids[1]!, '--test-mode', '--thaw', '--tier', 'expedited', '--days', '30', '--json'],
    steps: ['lock.destination-taken', ...passesOf('thaw.requested', CHAIN_ARTIFACTS), 'lock.destination-released'],
  },
  // Its one lock is the bucket's lifecycle lock.
  lifecycle: {
    argv: () => ['destinations', 'lifecycle', 'apply', '--yes'],
    steps: ['lock.destination-taken', 'lifecycle.written', 'lock.destination-released'],
  },
};

let oss: OssTestServer;
/** The database and media every archive case starts from. */
let archiveBase: string;
let caseNumber = 0;
const FOREIGN_RULE = { id: 'logs-expire', prefix: 'logs/', status: 'Enabled', expiration: { days: 30 } };

/** The ali-oss lifecycle calls the lifecycle rows use (the CLI package has ali-oss but not its types). */
interface OssAdmin {
  getBucketLifecycle(bucket: string): Promise<{ rules: Array<{ id: string; prefix: string; transition?: { days: string; storageClass: string } }> }>;
  putBucketLifecycle(bucket: string, rules: object[]): Promise<unknown>;
}
const ossAdmin = () =>
  new (createRequire(import.meta.url)('ali-oss') as new (options: object) => OssAdmin)({
    accessKeyId: OSS_ENV.CRASH_OSS_ID,
    accessKeySecret: OSS_ENV.CRASH_OSS_SECRET,
    endpoint: oss.endpoint,
    region: 'oss-cn-hangzhou',
  });

/**
 * A case's folder and repository: chain 1 (full 10 days old, incremental 9 days old) and chain 2 (a
 * full a day old) at `oss://crash/<case>` under an archive policy of 2 days; for the thaw rows chain 1
 * is archived already. The lifecycle rows get a bucket of their own with a foreign rule in it.
 */
async function archiveCase(operation: ArchiveOperation): Promise<{ dir: string; bucket: string; prefix: string; ids: string[]; foreign?: unknown }> {
  const n = ++caseNumber;
  const dir = await mkdtemp(join(tmpdir(), 'stowage-crash-archive-'));
  await cp(archiveBase, dir, { recursive: true });
  const bucket = operation === 'lifecycle' ? `lifecycle-${n}` : 'crash';
  const prefix = `case-${n}`;
  let foreign: unknown;
  if (operation === 'lifecycle') {
    oss.createBucket(bucket);
    await ossAdmin().putBucketLifecycle(bucket, [FOREIGN_RULE]);
    [foreign] = (await ossAdmin().getBucketLifecycle(bucket)).rules;
  }
  const file = {
    source: { database: 'db.sqlite3', busyTimeoutMs: 8000, files: { media: { path: 'media' } } },
    destinations: [
      {
        name: 'cold',
        url: `oss://${bucket}/${prefix}`,
        options: { region: 'oss-cn-hangzhou', endpoint: oss.endpoint, secure: false, accessKeyIdEnv: 'CRASH_OSS_ID', accessKeySecretEnv: 'CRASH_OSS_SECRET' },
        archive: { after: '2d', storageClass: ARCHIVE_CLASS, types: ['full', 'incremental'] },
      },
    ],
    compression: { algorithm: 'zstd', level: 1 },
  };
  await writeFile(join(dir, 'stowage.config.json'), JSON.stringify(file, null, 2));
  const ids: string[] = [];
  if (operation !== 'lifecycle') {
    for (const [type, daysAgo] of [
      ['full', 10],
      ['incremental', 9],
      ['full', 1],
    ] as const) {
      simulateWarehouseActivity(join(dir, 'db.sqlite3'), { seed: ids.length + 1, operations: 10 });
      await writeFile(join(dir, 'media', `added-${ids.length}.txt`), `media file ${ids.length}\n`);
      const engine = await openArchiveEngine(dir, new Date(Date.now() - daysAgo * DAY));
      ids.push((await backup(engine, { type })).manifest.id);
      if (operation === 'thaw' && ids.length === 3) expect((await runArchive(engine)).moved).toHaveLength(CHAIN_ARTIFACTS);
      await engine.close();
    }
  }
  return { dir, bucket, prefix, ids, foreign };
}

const openArchiveEngine = (dir: string, now?: Date) => openEngine(config(dir), { registry: builtinRegistry(), retry: false, ...(now && { now: () => now }) });

/** Asks for a thaw of whatever a restore of each backup needs (those already thawing are left as they are). */
async function requestEveryThaw(engine: Engine, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    await restore(engine, { backup: id, testMode: true, only: ['database'], thaw: { tier: 'expedited', days: 30, wait: false } }).catch((error: unknown) => {
      if ((error as { code?: unknown }).code !== CoreErrorCode.ThawPending) throw error;
    });
  }
}

async function runArchiveCase(c: { operation: ArchiveOperation; step: string; env: Record<string, string>; killAfterMs?: number }): Promise<Outcome> {
  const { dir, bucket, prefix, ids, foreign } = await archiveCase(c.operation);
  const argv = ARCHIVE_OPERATIONS[c.operation].argv(ids);
  return inCaseFolder(c, dir, async (problems) => {
    const first = await runCli(dir, argv, c.env, c.killAfterMs);
    const killed = first.signal === 'SIGKILL';
    // A thaw ends saying the thaws it requested are pending (exit 1, stowage.restore.thaw_pending), or, once
    // they are done (the server's thaw clock is shared by the cases running at once), restores (exit 0).
    const finished = (run: { code: number | null; stdout: string }) =>
      run.code === 0 || (c.operation === 'thaw' && run.code === 1 && run.stdout.includes(CoreErrorCode.ThawPending));
    if (!killed && (c.killAfterMs === undefined || !finished(first)))
      problems.push(`not killed: exit ${first.code}: ${first.stderr.trim().split('\n').at(-1)}`);

    const next = await runCli(dir, argv);
    if (!finished(next)) problems.push(`next command failed (${next.code}): ${next.stderr.trim().split('\n').at(-1)}`);
    const locks = oss.keys(bucket).filter((key) => key.startsWith(`${prefix}/locks/`) || key.startsWith('locks/'));
    if (locks.length) problems.push(`locks left: ${locks.join(', ')}`);
    const left = await leftovers(dir);
    if (left.length) problems.push(`left behind: ${left.join(', ')}`);

    if (c.operation === 'lifecycle') {
      const rules = (await ossAdmin().getBucketLifecycle(bucket)).rules;
      const got = rules.map((r) => `${r.id} ${r.prefix} ${r.transition?.days ?? '-'} ${r.transition?.storageClass ?? '-'}`);
      const want = [
        'logs-expire logs/ - -',
        ...['full', 'incremental'].map((folder) => `stowage-${prefix}/${folder}/ ${prefix}/${folder}/ 2 ${ARCHIVE_CLASS}`),
      ];
      if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`bucket rules ${got.join('; ')}, not ${want.join('; ')}`);
      if (!isDeepStrictEqual(rules[0], foreign)) problems.push(`the foreign rule changed: ${JSON.stringify(rules[0])}`);
      return killed;
    }

    const engine = await openArchiveEngine(dir);
    try {
      const entries = await listBackups(engine);
      if (entries.map((e) => e.manifest.id).join() !== ids.join())
        problems.push(`backups ${entries.map((e) => e.manifest.id).join()} listed, not ${ids.join()}`);
      if (c.operation === 'archive') {
        const again = await runArchive(engine);
        if (again.moved.length || again.failures.length)
          problems.push(`a further archive run still moves ${again.moved.map((m) => m.key).join(', ')} ${again.failures.map((f) => f.message).join('; ')}`);
        const classes = entries.map((e) => Object.values(e.storageClasses?.cold ?? {}).filter((k) => k === ARCHIVE_CLASS).length);
        if (classes.join() !== '2,2,0') problems.push(`archived artifacts per backup ${classes.join()}, not 2,2,0`);
      } else {
        const states = (await thawStatus(engine, ids[1]!)).artifacts.map((a) => a.state);
        if (states.length !== CHAIN_ARTIFACTS || states.includes('archived')) problems.push(`thaws not all requested: ${states.join(', ')}`);
      }
      // Sizes and the destination's checksums of the archived copies, without reading them.
      for (const result of await verify(engine, { all: true })) {
        const bad = result.artifacts.filter((a) => !a.ok);
        if (bad.length) problems.push(`${result.backupId} fails verify: ${bad.map((a) => a.problem).join('; ')}`);
      }
      await requestEveryThaw(engine, ids);
      oss.clock.advance(60 * 60_000); // ColdArchive's expedited thaw
      problems.push(...(await restoreEach(engine, entries, dir)));
    } finally {
      await engine.close();
    }
    return killed;
  });
}

function archiveCases() {
  const all: Array<{ operation: ArchiveOperation; step: string; env: Record<string, string>; killAfterMs?: number }> = [];
  for (const [operation, { steps }] of Object.entries(ARCHIVE_OPERATIONS) as Array<[ArchiveOperation, { steps: string[] }]>) {
    for (const step of steps) all.push({ operation, step, env: { STOWAGE_CRASH_AT: step } });
  }
  const next = random(16);
  for (const operation of Object.keys(ARCHIVE_OPERATIONS) as ArchiveOperation[]) {
    const ms = 300 + Math.floor(next() * 900);
    all.push({ operation, step: `random@${ms}ms`, env: {}, killAfterMs: ms });
  }
  return all;
}

beforeAll(async () => {
  Object.assign(process.env, OSS_ENV);
  archiveBase = await mkdtemp(join(tmpdir(), 'stowage-crash-archive-base-'));
  createGreaterWmsDatabase(join(archiveBase, 'db.sqlite3'), { seed: 6, scale: 0.05 });
  writeSampleMedia(join(archiveBase, 'media'), { count: 4, maxBytes: 2048 });
  [bin, oss] = await Promise.all([
    bundleCli(),
    startOssTestServer({ accessKeyId: OSS_ENV.CRASH_OSS_ID, accessKeySecret: OSS_ENV.CRASH_OSS_SECRET, buckets: ['crash'] }),
    makeTemplate('small'),
    makeTemplate('large'),
    makeTemplate('wal'),
  ]);
}, 120_000);
afterAll(async () => {
  await oss?.close();
  await rm(archiveBase, { recursive: true, force: true });
  for (const { dir } of Object.values(templates)) await rm(dir, { recursive: true, force: true });
  await rm(resolve(dirname(bin), '..'), { recursive: true, force: true });
});

describe('the crash matrix', () => {
  it('covers every crash point with at least one operation', () => {
    const covered = new Set([...Object.values(OPERATIONS), ...Object.values(ARCHIVE_OPERATIONS)].flatMap((o) => o.steps.map((step) => step.split('@')[0])));
    expect(CRASH_POINTS.filter((step) => !covered.has(step))).toEqual([]);
  });

  it('rolls an interrupted restore back when its restored data is gone, and says so', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-crash-'));
    const { dir: template, before } = templates.small;
    try {
      await cp(template, dir, { recursive: true });
      const killed = await runCli(dir, OPERATIONS.restore.argv, { STOWAGE_CRASH_AT: 'restore.set-moved-in' });
      expect(killed.signal).toBe('SIGKILL');
      expect(await treeHash(join(dir, 'media'))).toBe(before.latestMedia); // the file sets were switched, the database not yet
      for (const name of (await readdir(dir)).filter((n) => n.startsWith('.db.sqlite3.stowage-restore-'))) await rm(join(dir, name));
      const next = await runCli(dir, ['list']);
      expect(next.code).toBe(0);
      expect(next.stderr).toMatch(/restore of \S+ was interrupted and its restored data is gone; rolled it back/);
      expect(await sha256(join(dir, 'db.sqlite3'))).toBe(before.dbSha);
      expect(await treeHash(join(dir, 'media'))).toBe(before.media);
      expect((await readdir(dir)).filter((n) => n.includes('damaged_'))).toEqual([]);
      expect(await leftovers(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a SIGKILL after any commit step, at random times, or with a writer on the database loses nothing and leaves nothing the next command does not repair', async () => {
    const started = performance.now();
    const outcomes = await inBatches(cases(), 3, runCase);
    const failed = outcomes.filter((o) => o.problems.length);
    const size = `${Object.keys(OPERATIONS).length} operations × ${CRASH_POINTS.length} steps: ${outcomes.length} cases (${outcomes.filter((o) => o.killed).length} killed, ${outcomes.filter((o) => !o.killed).length} finished before a random kill), ${outcomes.length - failed.length} ok, ${failed.length} bad, in ${Math.round((performance.now() - started) / 1000)} s`;
    console.log(`${table(outcomes)}\n${size}`);
    expect(failed.map((o) => `${o.case.operation} × ${o.case.step}: ${o.problems.join('; ')}`)).toEqual([]);
  }, 600_000);

  it('a SIGKILL at every step of archive run, a thaw and lifecycle apply (or at random) loses no backup, and the same command again converges', async () => {
    const started = performance.now();
    const outcomes = await inBatches(archiveCases(), 2, runArchiveCase);
    const failed = outcomes.filter((o) => o.problems.length);
    console.log(
      `${table(outcomes, Object.keys(ARCHIVE_OPERATIONS))}\n${outcomes.length} archive cases (${outcomes.filter((o) => o.killed).length} killed), ${failed.length} bad, in ${Math.round((performance.now() - started) / 1000)} s`,
    );
    expect(failed.map((o) => `${o.case.operation} × ${o.case.step}: ${o.problems.join('; ')}`)).toEqual([]);
  }, 600_000);
});
