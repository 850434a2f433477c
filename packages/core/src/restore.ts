import { access, chmod, chown, constants, readFile, rename, rm, stat } from 'node:fs/promises';
import { crashPoint, ownerToken, withBoundedGarbage } from '@stowage/storage';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { digestFile } from '@stowage/storage';
import { catalogOf, findBackupAt } from './catalog.js';
import { findBackup } from './find.js';
import { materializeChain, resolveChain } from './chain.js';
import { restoreFilesOfChain, stageFilesOfChain } from './restore-files.js';
import { pendingRestorePaths, SIDECARS, switchRestore } from './restore-journal.js';
import { markTempFolders } from './leftovers.js';
import { selectDestinations, type Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import { checksPassed, describeChecks, readFacts, runChecks, verifiedChecks, withPrivateDatabase, type DatabaseChecks } from './facts.js';
import { recordIntegrityChecked } from './validate.js';
import type { Artifact, Manifest } from './manifest.js';
import { ensureThawed, type ThawRequest } from './archive.js';
import { logOperation, warnUnrecorded } from './oplog.js';
import { readSqliteHeader } from './sqlite-file.js';
import { ensurePrivateDir, localStamp, syncFile, tempSibling, writePrivateAtomic } from './private-fs.js';

export interface RestoreOptions {
  /** `latest` (default), a backup id, or a backup file name/path. */
  backup?: string;
  /** Instead of `backup`: the newest backup taken at or before this time. */
  at?: Date;
  /** Where the database goes: a file path or an existing folder (default: the live database). */
  target?: string;
  /** Restore into a scratch folder (default `<stateDir>/test-restore/`); the live database is never touched. */
  testMode?: boolean;
  /** Read from this destination only (default: in config order, falling back on any error). */
  from?: string;
  /** Restore only these: `database` and/or file-set names (default: everything the backup holds). */
  only?: readonly string[];
  /**
   * Asked before anything is fetched, outside test mode: may this backup replace what is at the
   * target? False cancels (`stowage.restore.cancelled`, nothing changed).
   */
  confirm?: (plan: RestorePlan) => Promise<boolean>;
  /**
   * Thaw the archived artifacts the restore needs (see `ensureThawed`); without it, a backup whose
   * chain is only in an archive class fails with `stowage.restore.thaw_needed`, changing nothing.
   */
  thaw?: ThawRequest;
  /**
   * The checks of the restored database (its bytes are always checked to hash to the backup's
   * snapshot first): `auto` (default) runs none over the whole file when the backup's manifest
   * records that the snapshot passed the full checks (`integrityChecked`, by `validate` or an
   * earlier restore) — identical bytes would pass them again — only reading its header and schema
   * back (kind `verified`), and the full checks otherwise; `quick` runs `quick_check`; `full`
   * always runs `integrity_check` and `foreign_key_check`. When full checks pass on a snapshot not
   * yet recorded, each destination's manifest records it (`RestoreResult.recorded`).
   */
  check?: RestoreCheck;
}

/** What `RestoreOptions.check` asks for. */
export type RestoreCheck = 'auto' | 'quick' | 'full';

/**
 * Bytes of the restored image written between two flushes to disk (`materializeChain`'s
 * `flushEvery`): the final fsync then has at most this much left to write.
 */
const FLUSH_BYTES = 64 << 20;

/** What a restore is about to replace, for `RestoreOptions.confirm`. */
export interface RestorePlan {
  backupId: string;
  createdAt: string;
  /** The database file to be replaced, when the database is restored. */
  target?: string;
  /** File sets to be replaced, under `targetDir`. */
  sets: string[];
  targetDir: string;
}

export interface RestoreResult {
  manifest: Manifest;
  /** Where the database went (undefined when `only` left it out). */
  target?: string;
  /** Where the file sets went and what was replaced, when any were restored. */
  files?: { targetDir: string; sets: string[]; movedAside?: string };
  testMode: boolean;
  /** Where the previous database was moved, when there was one. */
  movedAside?: string[];
  /** The destination(s) the bytes came from. */
  source: string;
  /** Backups replayed, full first. */
  chain: string[];
  checks?: DatabaseChecks;
  /** Destinations whose manifest now records that this snapshot passed the full checks (this restore ran them). */
  recorded?: string[];
  bytes: number;
  durationMs: number;
  /** Time spent waiting for thaws of archived artifacts (included in `durationMs`). */
  thawMs?: number;
}

/** What `restore --verify` compares against: the last restore, kept in the state folder. */
interface RestoreRecord {
  backupId: string;
  target: string;
  restoredAt: string;
  snapshotSha256: string;
  schemaHash: string;
  tables: Record<string, number>;
}

/**
 * Restores a backup: fetch and check the bytes into a temporary file beside the
 * target, run integrity and foreign-key checks, rebuild the file sets beside theirs, then switch
 * database and file sets as one journaled unit (restore-journal.ts): the current database (with
 * any -journal, -wal, -shm) is kept as `<name>.damaged_<stamp>`, replaced files go to
 * `.stowage-pre-restore-<stamp>/`. Any failure before the switch leaves the target as it was; a
 * crash during it is finished by the next command.
 */
export function restore(engine: Engine, options: RestoreOptions): Promise<RestoreResult> {
  return withBoundedGarbage(() => restoreBackup(engine, options));
}

async function restoreBackup(engine: Engine, options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const testMode = options.testMode ?? false;
  let backupId: string | undefined;
  try {
    const destinations = selectDestinations(engine, options.from);
    const catalog = catalogOf(engine);
    const entry =
      options.at === undefined
        ? await findBackup(engine, catalog, options.backup ?? 'latest', destinations)
        : await findBackupAt(catalog, options.at, destinations);
    backupId = entry.manifest.id;
    const wantDatabase = options.only === undefined || options.only.includes('database');
    const sets = options.only?.filter((name) => name !== 'database');
    const wantFiles = entry.manifest.files !== undefined && (sets === undefined || sets.length > 0);
    if (sets?.length && !entry.manifest.files) {
      throw new CoreError(CoreErrorCode.RestoreTargetMissing, `backup ${backupId} holds no file sets (only the database)`);
    }
    const target = wantDatabase ? await resolveTarget(engine, options.target, testMode) : undefined;
    const temp = target && tempSibling(target, 'restore');
    const targetDir = testMode ? join(engine.config.stateDir, 'test-restore') : options.target && target ? dirname(target) : engine.config.baseDir;
    const workDir = join(targetDir, `.stowage-restore-${ownerToken()}`);
    const setNames = wantFiles ? (sets ?? Object.keys(entry.manifest.files?.sets ?? {})) : [];
    const chain = await resolveChain(catalog, entry, destinations);
    await engine.codec.prepareDecoding(chain.flatMap((link) => link.manifest.artifacts));
    const roles = new Set<Artifact['role']>([...(wantDatabase ? (['database', 'delta'] as const) : []), ...(wantFiles ? (['files'] as const) : [])]);
    const command = [
      'stowage restore',
      backupId,
      testMode && '--test-mode',
      options.target && `--target ${options.target}`,
      options.from && `--from ${options.from}`,
      options.only && `--only ${options.only.join(',')}`,
    ]
      .filter(Boolean)
      .join(' ');
    const thawMs = await ensureThawed(engine, chain, destinations, { roles, command, ...(options.thaw && { thaw: options.thaw }) });
    if (
      !testMode &&
      options.confirm &&
      !(await options.confirm({ backupId, createdAt: entry.manifest.createdAt, ...(target ? { target } : {}), sets: setNames, targetDir }))
    ) {
      throw new CoreError(CoreErrorCode.RestoreCancelled, `restore of ${backupId} cancelled; nothing was changed`, { context: { backupId } });
    }
    // A target in another folder: the next command must know where to look for what a crash leaves there.
    const unmark = await markTempFolders(engine.config, [targetDir, ...(target ? [dirname(target)] : [])]);
    try {
      let checks: DatabaseChecks | undefined;
      const sources: string[] = [];
      if (target && temp) {
        sources.push(...(await materializeChain(engine, chain, temp, destinations, { flushEvery: FLUSH_BYTES })));
        // The checks (seconds per GiB) run without the decoding thread's memory; file sets start another.
        await engine.codec.finishDecoding();
        await keepOwnership(target, temp);
        // The one fsync runs in the thread pool while the checks read the page cache here.
        const synced = syncFile(temp);
        synced.catch(() => undefined);
        checks = await withPrivateDatabase(temp, (db) => checkRestored(db, entry.manifest, options.check ?? 'auto'));
        await synced;
        if (!checksPassed(checks)) {
          throw new CoreError(
            CoreErrorCode.RestoreCheckFailed,
            `restored copy of ${backupId} fails its checks (${describeChecks(checks)}); the target was not touched — try another backup`,
            {
              context: { backupId, checks },
            },
          );
        }
        crashPoint('restore.temp-written');
      }
      const record = target && {
        path: restoreRecordPath(engine, testMode),
        text: `${JSON.stringify({ backupId, target, restoredAt: engine.now().toISOString(), snapshotSha256: entry.manifest.source.snapshotSha256, schemaHash: entry.manifest.source.schemaHash, tables: entry.manifest.source.tables } satisfies RestoreRecord, null, 2)}\n`,
      };
      let files: RestoreResult['files'];
      let movedAside: string[] = [];
      if (testMode) {
        // A scratch copy: replaced outright, no journal.
        if (wantFiles) {
          await ensurePrivateDir(targetDir);
          const restored = await restoreFilesOfChain(engine, chain, destinations, targetDir, sets);
          files = { targetDir, sets: restored.sets.map((set) => set.name) };
        }
        if (target && temp && record) {
          await Promise.all(SIDECARS.map((suffix) => rm(target + suffix, { force: true })));
          await rename(temp, target);
          await writePrivateAtomic(record.path, record.text);
        }
      } else {
        const stamp = await freeStamp(engine.now(), target, targetDir);
        const staged = wantFiles
          ? await stageFilesOfChain(engine, chain, destinations, { targetDir, workDir, asideDir: join(targetDir, `.stowage-pre-restore-${stamp}`) }, sets)
          : undefined;
        if (staged) crashPoint('restore.files-staged');
        movedAside = await switchRestore(engine, {
          version: 1,
          owner: ownerToken(),
          backupId,
          startedAt: engine.now().toISOString(),
          ...(target && temp ? { database: { restored: temp, ino: (await stat(temp)).ino, live: target, aside: `${target}.damaged_${stamp}` } } : {}),
          ...(staged ? { files: { workDir, moves: staged.moves } } : {}),
          ...(record ? { record } : {}),
        });
        if (staged) {
          const aside = join(targetDir, `.stowage-pre-restore-${stamp}`);
          files = { targetDir, sets: staged.sets.map((set) => set.name), ...((await stat(aside).catch(() => undefined)) ? { movedAside: aside } : {}) };
        }
      }
      // Full checks that passed on a snapshot not yet recorded spare its next restores them.
      const recorded =
        checks?.kind === 'full' && !entry.manifest.integrityChecked ? await recordIntegrityChecked(engine, catalog, entry.manifest, 'restore') : [];
      const source = [...new Set(sources)].join(',') || chain.at(-1)!.destinations[0]!;
      const result: RestoreResult = {
        manifest: entry.manifest,
        ...(target ? { target } : {}),
        ...(files ? { files } : {}),
        testMode,
        ...(movedAside.length ? { movedAside } : {}),
        source,
        chain: chain.map((link) => link.manifest.id),
        ...(checks ? { checks } : {}),
        ...(recorded.length ? { recorded } : {}),
        bytes: entry.manifest.source.size,
        durationMs: performance.now() - started,
        ...(thawMs > 0 ? { thawMs: Math.round(thawMs) } : {}),
      };
      await logOperation(engine.logDir, 'restore.log', {
        operation: testMode ? 'restore-test' : 'restore',
        backupId,
        outcome: 'ok',
        durationMs: result.durationMs,
        bytes: result.bytes,
        detail: [
          `from=${source}`,
          target ? `target=${target}` : '',
          checks ? `check=${checks.kind}` : '',
          recorded.length ? `integrity-recorded=${recorded.join(',')}` : '',
          files ? `files=${files.sets.join(',')}` : '',
          movedAside.length ? `moved-aside=${movedAside[0]}` : '',
        ]
          .filter(Boolean)
          .join(' '),
      });
      return result;
    } finally {
      // Once the switch is journaled, what is left belongs to the journal: the next command finishes it.
      if ((await pendingRestorePaths(engine.config.stateDir)).length === 0) {
        await Promise.all([temp && rm(temp, { force: true }), rm(workDir, { recursive: true, force: true })]);
        await unmark();
      }
    }
  } catch (error) {
    await logOperation(engine.logDir, 'restore.log', {
      operation: testMode ? 'restore-test' : 'restore',
      ...(backupId === undefined ? {} : { backupId }),
      outcome: 'failed',
      durationMs: performance.now() - started,
      detail: (error as Error).message,
    }).catch(warnUnrecorded(engine.warn, 'the failed restore in restore.log and the audit log'));
    throw error;
  }
}

/** The checks `check` asks for on a restored database whose bytes hash to `manifest`'s snapshot (see `RestoreOptions.check`). */
function checkRestored(db: Database.Database, manifest: Manifest, check: RestoreCheck): DatabaseChecks {
  const earlier = manifest.integrityChecked;
  if (check === 'auto' && earlier) return verifiedChecks(db, manifest.source.schemaHash, { snapshotSha256: manifest.source.snapshotSha256, ...earlier });
  return runChecks(db, check === 'quick' ? 'quick' : 'full');
}

async function resolveTarget(engine: Engine, target: string | undefined, testMode: boolean): Promise<string> {
  const live = engine.config.source.database;
  // Absolute: the restore journal and record name it for commands run from other folders.
  let path = resolve(target ?? (testMode ? join(engine.config.stateDir, 'test-restore', basename(live)) : live));
  if (target === undefined && testMode) await ensurePrivateDir(dirname(path));
  const info = await stat(path).catch(() => undefined);
  if (info?.isDirectory()) path = join(path, basename(live));
  const folder = dirname(path);
  const folderInfo = await stat(folder).catch(() => undefined);
  if (!folderInfo?.isDirectory()) {
    throw new CoreError(CoreErrorCode.RestoreTargetMissing, `restore target folder ${folder} does not exist; create it or pass another --target`, {
      context: { folder },
    });
  }
  try {
    await access(folder, constants.W_OK);
  } catch (cause) {
    throw new CoreError(
      CoreErrorCode.RestoreTargetNotWritable,
      `restore target folder ${folder} is not writable; fix its permissions or pass another --target`,
      { context: { folder }, cause },
    );
  }
  return path;
}

/** The restored file gets the mode (and, when we can, the owner) of the database it replaces, so the application can still open it. */
async function keepOwnership(target: string, temp: string): Promise<void> {
  const previous = await stat(target).catch(() => undefined);
  if (!previous) return;
  await chmod(temp, previous.mode & 0o777);
  if (process.getuid?.() === 0) await chown(temp, previous.uid, previous.gid);
}

/**
 * A stamp (`YYYYMMDD_HHMMSS`, `_1`, `_2`… when taken) under which neither `<db>.damaged_<stamp>`
 * (nor its sidecars) nor `.stowage-pre-restore-<stamp>` exists yet.
 */
async function freeStamp(now: Date, target: string | undefined, targetDir: string): Promise<string> {
  const taken = async (stamp: string) => {
    const paths = [
      join(targetDir, `.stowage-pre-restore-${stamp}`),
      ...(target ? ['', ...SIDECARS].map((suffix) => `${target}.damaged_${stamp}${suffix}`) : []),
    ];
    return (
      await Promise.all(
        paths.map((p) =>
          stat(p).then(
            () => true,
            () => false,
          ),
        ),
      )
    ).some(Boolean);
  };
  let stamp = localStamp(now);
  for (let n = 1; await taken(stamp); n++) stamp = `${localStamp(now)}_${n}`;
  return stamp;
}

function restoreRecordPath(engine: Engine, testMode: boolean): string {
  return join(engine.config.stateDir, testMode ? 'last-test-restore.json' : 'last-restore.json');
}

export interface RestoreVerification {
  backupId: string;
  target: string;
  checks: DatabaseChecks;
  ok: boolean;
  /** The database is still byte-for-byte the restored snapshot (false once the application wrote to it). */
  unchangedSinceRestore: boolean;
  schemaMatches: boolean;
}

/**
 * `restore --verify`: checks the database restored last (the live one, or the test-mode copy)
 * against the backup it came from: integrity, foreign keys and schema; reports whether it has
 * changed since. Opens the database read-only.
 */
export async function verifyRestored(engine: Engine, options: { testMode?: boolean } = {}): Promise<RestoreVerification> {
  const recordPath = restoreRecordPath(engine, options.testMode ?? false);
  const text = await readFile(recordPath, 'utf8').catch(() => undefined);
  if (text === undefined) {
    throw new CoreError(
      CoreErrorCode.RestoreNoRecord,
      `no restore has been recorded on this machine${options.testMode ? ' in test mode' : ''}; run a restore first`,
      { context: { recordPath } },
    );
  }
  const record = JSON.parse(text) as RestoreRecord;
  await readSqliteHeader(record.target);
  const db = new Database(record.target, { readonly: true, fileMustExist: true });
  try {
    const checks = runChecks(db);
    const facts = readFacts(db);
    const { sha256 } = await digestFile(record.target);
    const schemaMatches = facts.schemaHash === record.schemaHash;
    return {
      backupId: record.backupId,
      target: record.target,
      checks,
      ok: checksPassed(checks) && schemaMatches,
      unchangedSinceRestore: sha256 === record.snapshotSha256,
      schemaMatches,
    };
  } finally {
    db.close();
  }
}
