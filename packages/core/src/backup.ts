import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { bufferBody, crashPoint, digestFile, isAlreadyExists, ownerToken, sha256Hex, withBoundedGarbage } from '@stowage/storage';
import { isStowageError } from '@stowage/errors';
import type { ResolvedConfig } from './config.js';
import { requireDestinations, type Destination, type DestinationFailure, type Engine } from './engine.js';
import { CoreError, CoreErrorCode } from './errors.js';
import type { DatabaseFacts } from './facts.js';
import { backupId, databaseKey, filesIndexKey, filesKey, manifestKey, pageHashKey } from './layout.js';
import { MANIFEST_FORMAT, MANIFEST_VERSION, type Artifact, type BackupType, type Manifest, type Replica } from './manifest.js';
import { takeChanges } from './changes.js';
import { AUDIT_FILE, auditCopyKey, auditHead } from './audit.js';
import { cacheForNextBackup, downgradeToFull, loadFileSetIndex, planBackup, type BackupPlan } from './plan.js';
import { createWriteStream } from 'node:fs';
import type { AnomalyFinding, BackupFacts } from '@stowage/alerts/anomaly';
import { scanFileSets, summarizeSet, writeFileSetArchive, type FileSetsConfig } from '@stowage/filesets';
import { encodePageHashDelta, PAGE_HASH_ALGORITHM, type FileDigest } from './page-hashes.js';
import { readPassThread, takeFull } from './read-pass.js';
import { logOperation, warnUnrecorded } from './oplog.js';
import { ensurePrivateDir } from './private-fs.js';
import { encodedSuffix, type EncodingName } from './encoding.js';
import { commitManifest, confirmedReplica, confirmStored, stagedBody, withSentChecksums, type StagedArtifact, type VerifiedBy } from './replica.js';
import { warmPageCache, type Snapshot } from './snapshot.js';
import { TOOL_VERSION } from './version.js';

export interface BackupOptions {
  /**
   * `full` (daily), `incremental` (hourly: only the pages changed since the newest backup of the
   * chain; taken as a full when there is no usable parent — the manifest says why), or `hot`
   * (before a risky operation).
   */
  type: BackupType;
  /** Why a hot backup was taken ("before migration 0042"); recorded in the manifest. */
  reason?: string;
}

export type { DestinationFailure };

export interface BackupResult {
  /**
   * `ok`: committed at every destination; `degraded`: at `quorum` or more but not all (usable,
   * repaired by sync); `failed`: at fewer than `quorum` (the committed replicas stay usable).
   */
  outcome: 'ok' | 'degraded' | 'failed';
  manifest: Manifest;
  committed: string[];
  failures: DestinationFailure[];
  /** Bytes stored per destination. */
  bytes: number;
  durationMs: number;
}

/**
 * Takes a backup: a consistent snapshot of the live database, staged once, stored at every
 * destination, verified there, and committed by writing the manifest last.
 * Throws when no destination committed it; returns `outcome: 'failed'` when only some did.
 */
export async function backup(engine: Engine, options: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const createdAt = engine.now();
  let id: string | undefined;
  try {
    const result = await withBoundedGarbage(() => takeBackup(engine, options, createdAt, started, (claimed) => (id = claimed)));
    await logOperation(engine.logDir, 'backup.log', {
      operation: `backup-${result.manifest.type}`,
      backupId: result.manifest.id,
      outcome: result.outcome,
      durationMs: result.durationMs,
      bytes: result.bytes,
      detail: [
        `committed=${result.committed.join(',') || '-'}`,
        ...(result.failures.length ? [`failed=${result.failures.map((f) => f.destination).join(',')}`] : []),
        ...(result.manifest.parent ? [`parent=${result.manifest.parent}`, `pages=${result.manifest.delta?.changedPages}`] : []),
        ...(result.manifest.fullBecause ? [`full-because="${result.manifest.fullBecause}"`] : []),
      ].join(' '),
    });
    await alertOn(engine.alerts, result);
    await copyAuditLog(engine, result.committed);
    return result;
  } catch (error) {
    await logOperation(engine.logDir, 'backup.log', {
      operation: `backup-${options.type}`,
      ...(id === undefined ? {} : { backupId: id }),
      outcome: 'failed',
      durationMs: performance.now() - started,
      detail: (error as Error).message,
    }).catch(warnUnrecorded(engine.warn, 'the failed backup in backup.log and the audit log'));
    await engine.alerts
      .raise((a, at) => a.backupFailed({ ...at, type: options.type, error: (error as Error).message }))
      .catch(warnUnrecorded(engine.warn, 'the backup-failed alert'));
    throw error;
  }
}

/**
 * Leaves a copy of the audit log (this backup's record included) at every destination that
 * committed the backup, as `audit/<host>.audit.jsonl`, so tampering on this host can be compared
 * against copies elsewhere. A failed copy is a warning.
 */
async function copyAuditLog(run: Pick<Engine, 'logDir' | 'destinations' | 'warn'>, committed: readonly string[]): Promise<void> {
  const log = await readFile(join(run.logDir, AUDIT_FILE)).catch(() => undefined);
  if (!log) return;
  const key = auditCopyKey();
  await Promise.all(
    run.destinations
      .filter((d) => committed.includes(d.name))
      .map((d) =>
        d.adapter.put(key, bufferBody(log)).catch((error: unknown) => run.warn(`could not copy the audit log to ${d.name}: ${(error as Error).message}`)),
      ),
  );
}

/**
 * Raises or resolves the alerts a finished backup settles: failed, degraded, size anomaly; and a
 * committed full or incremental is a fresh recovery point, which clears a breached RPO.
 */
async function alertOn(alerts: Engine['alerts'], result: BackupResult): Promise<void> {
  const { manifest } = result;
  if (manifest.type !== 'hot') await alerts.resolve('rpo-breached');
  if (result.outcome === 'failed') {
    await alerts.raise((a, at) =>
      a.backupFailed({ ...at, type: manifest.type, error: result.failures.map((f) => `${f.destination}: ${f.message}`).join('; ') }),
    );
  } else {
    await alerts.resolve('backup-failed', manifest.type);
    if (result.outcome === 'degraded') await alerts.raise((a, at) => a.backupDegraded({ ...at, backupId: manifest.id, missing: result.failures }));
    else await alerts.resolve('backup-degraded');
  }
  const findings = manifest.anomalies ?? [];
  if (findings.length) await alerts.raise((a, at) => a.sizeAnomaly({ ...at, type: manifest.type, backupId: manifest.id, findings }));
  else await alerts.resolve('size-anomaly', manifest.type);
}

async function takeBackup(engine: Engine, options: BackupOptions, createdAt: Date, started: number, onId: (id: string) => void): Promise<BackupResult> {
  const { config } = engine;
  requireDestinations(engine);
  await ensurePrivateDir(engine.stagingDir);
  const stem = join(engine.stagingDir, `backup-${ownerToken()}`);
  const stagedSnapshot = `${stem}.sqlite3`;
  const stagedDelta = `${stem}.delta`;
  const stagedHashes = `${stem}.pagehash`;
  // Set once a full backup has encoded the snapshot and no longer needs it (see there).
  let snapshotRemoved: Promise<void> | undefined;
  // An incremental's SHA-256 thread comes up while the backup is planned (a full does not need it).
  let readThread = options.type === 'incremental' ? readPassThread() : undefined;
  const closeReadThread = () => readThread?.close().finally(() => (readThread = undefined));
  try {
    // While the backup is planned: writers then wait for a copy from memory, not from the disk.
    const warmed = warmPageCache(config.source.database);
    const plan = await planBackup(engine, options.type);
    if (!plan.parent) await closeReadThread();
    // Before the snapshot: a passphrase verifier's scrypt (32 MiB) then does not add to the encoding's memory peak.
    const encoding = await engine.codec.describe(plan.history);
    await warmed;
    engine.progress({ phase: 'snapshot', done: 0 });
    // Incrementals: the changed pages straight from the live database, without a copy of it.
    const changes =
      plan.parent &&
      (await takeChanges(
        config.source.database,
        { ...plan.parent.entry.manifest.source, pageHashes: plan.parent.pageHashes },
        { snapshot: stagedSnapshot, delta: stagedDelta },
        { busyTimeoutMs: config.source.busyTimeoutMs },
        (readThread ??= readPassThread()),
      ));
    await closeReadThread();
    if (plan.parent && !changes) downgradeToFull(plan, `the page size changed since ${plan.parent.entry.manifest.id}`, engine.warn);
    const type = plan.type;
    const stagedFiles: StagedFile[] = [];
    const encoded: EncodedFile[] = [];
    let snapshot: Omit<Snapshot, 'path'>;
    let digest: FileDigest;
    let facts: DatabaseFacts;
    let delta: Manifest['delta'];
    let pages: number[] | undefined;
    if (changes) {
      ({ snapshot, digest, facts, pages, delta } = changes);
      crashPoint('backup.snapshot-staged');
      stagedFiles.push(await stagedFile('delta', stagedDelta));
    } else {
      // Full and hot backups: one pass over the snapshot hashes it and its pages, counts its rows,
      // and compresses and encrypts it.
      const databaseEncoding = engine.codec.encodingFor('database');
      if (databaseEncoding.length > 0) engine.progress({ phase: 'encode', done: 0 });
      const full = await takeFull(
        config.source.database,
        stem,
        { busyTimeoutMs: config.source.busyTimeoutMs },
        databaseEncoding.length > 0
          ? { suffix: encodedSuffix(databaseEncoding), open: (path, size) => engine.codec.openEncoder(path, databaseEncoding, size) }
          : undefined,
      );
      ({ snapshot, digest, facts } = full);
      if (full.encoded) {
        // A copy is removed while the rest runs rather than at the end, and before the kernel writes
        // back a GiB of it, competing with the destinations' fsyncs (the cleanup below retries a failed removal).
        if (full.copy)
          snapshotRemoved = rm(full.copy, { force: true }).then(
            () => crashPoint('backup.snapshot-removed'),
            () => undefined,
          );
        encoded.push({
          role: 'database',
          path: full.staged,
          encoding: databaseEncoding,
          ...full.encoded,
          decodedSize: digest.size,
          decodedSha256: digest.sha256,
        });
      } else {
        stagedFiles.push({ role: 'database', path: full.staged, size: digest.size, sha256: digest.sha256 });
      }
    }
    // Incrementals store only the hashes of the pages they carry; fulls and hots the whole list.
    const hashArtifact = pages ? encodePageHashDelta(digest.pageHashes, pages) : digest.pageHashes;
    await writeFile(stagedHashes, hashArtifact, { mode: 0o600 });
    stagedFiles.push({ role: 'page-hashes', path: stagedHashes, size: hashArtifact.length, sha256: sha256Hex(hashArtifact) });
    const files = config.source.files && (await archiveFileSets(engine, config.source.files, plan, stem, stagedFiles));
    encoded.push(...(await encodeStaged(engine, stagedFiles)));
    const database = encoded.find((file) => file.role === 'database' || file.role === 'delta')!;
    const anomalies = await sizeAnomalies(plan.history, {
      type,
      dbSize: digest.size,
      pageCount: snapshot.pageCount,
      tables: facts.tables,
      encodedSize: database.size,
      decodedSize: database.decodedSize,
    });
    const stage = (id: string): StagedArtifact[] =>
      encoded.map((file) => ({
        path: file.path,
        artifact: {
          role: file.role,
          key: `${artifactKey(file.role, type, id)}${encodedSuffix(file.encoding)}`,
          encoding: file.encoding,
          size: file.size,
          sha256: file.sha256,
          decodedSize: file.decodedSize,
          decodedSha256: file.decodedSha256,
        },
      }));

    const totalBytes = encoded.reduce((sum, file) => sum + file.size, 0) * engine.destinations.length;
    let uploaded = 0;
    const onBytes = (n: number) => engine.progress({ phase: 'upload', done: (uploaded += n), total: totalBytes });
    engine.progress({ phase: 'upload', done: 0, total: totalBytes });

    for (let sequence = 0; ; sequence++) {
      if (sequence >= MAX_NAME_ATTEMPTS) {
        throw new CoreError(
          CoreErrorCode.ReplicationFailed,
          `no free backup name for ${backupId(type, createdAt, 0)} after ${MAX_NAME_ATTEMPTS} tries: a destination reports every name as taken; check it with \`stowage destinations probe\``,
        );
      }
      const id = backupId(type, createdAt, sequence);
      if (await nameTaken(engine.destinations, type, id)) continue;
      onId(id);
      const staged = stage(id);
      const outcomes = await Promise.all(
        engine.destinations.map((d): Promise<ReplicaOutcome> | ReplicaOutcome => {
          // An incremental is stored only where its whole chain is committed: it must be restorable from there alone.
          const incomplete = plan.chainIncompleteAt.find((f) => f.destination === d.name);
          if (incomplete) return { kind: 'failed', error: new CoreError(CoreErrorCode.ChainBroken, incomplete.message, { context: { destination: d.name } }) };
          return storeReplica(d, staged, onBytes);
        }),
      );
      crashPoint('backup.artifacts-stored');
      if (outcomes.some((o) => o.kind === 'name-taken')) {
        // Another backup claimed this name between our check and our upload: step aside (best effort: cleanup removes orphans).
        await Promise.all(
          engine.destinations.map((d, i) =>
            outcomes[i]!.kind === 'stored' ? d.adapter.delete(staged.map((s) => s.artifact.key)).catch(() => undefined) : undefined,
          ),
        );
        continue;
      }
      const auditAnchor = await auditHead(engine.logDir);
      const manifest: Manifest = {
        format: MANIFEST_FORMAT,
        version: MANIFEST_VERSION,
        id,
        type,
        seq: plan.seq,
        parent: plan.parent?.entry.manifest.id ?? null,
        chainLength: plan.chainLength,
        ...(plan.fullBecause === undefined ? {} : { fullBecause: plan.fullBecause }),
        createdAt: createdAt.toISOString(),
        ...(options.reason === undefined ? {} : { reason: options.reason }),
        tool: { name: 'stowage', version: TOOL_VERSION },
        host: hostname(),
        ...(auditAnchor ? { audit: auditAnchor } : {}),
        source: {
          path: config.source.database,
          pageSize: snapshot.pageSize,
          pageCount: snapshot.pageCount,
          journalMode: snapshot.journalMode,
          sqliteVersion: facts.sqliteVersion,
          schemaHash: facts.schemaHash,
          tables: facts.tables,
          size: digest.size,
          snapshotSha256: digest.sha256,
          pageHashAlgorithm: PAGE_HASH_ALGORITHM,
          pageHashesSha256: sha256Hex(digest.pageHashes),
          lockMs: Math.round(snapshot.lockMs),
        },
        ...(delta === undefined ? {} : { delta }),
        ...(files ? { files } : {}),
        ...(anomalies.length ? { anomalies } : {}),
        encoding,
        // With the CRC-64s the destinations' adapters sent (OSS: ECMA, S3: NVME), for checks without a download later.
        artifacts: staged.map((s, i) => Object.assign({}, s.artifact, ...outcomes.map((o) => (o.kind === 'stored' ? o.artifacts[i] : {})))),
        replicas: {},
      };
      for (const [i, outcome] of outcomes.entries()) {
        if (outcome.kind === 'stored') manifest.replicas[engine.destinations[i]!.name] = outcome.replica;
      }
      const committed: string[] = [];
      const failures: DestinationFailure[] = [...engine.unavailable];
      await Promise.all(
        engine.destinations.map(async (destination, i) => {
          const outcome = outcomes[i]!;
          if (outcome.kind !== 'stored') {
            failures.push({ destination: destination.name, ...describe(outcome.kind === 'failed' ? outcome.error : undefined) });
            return;
          }
          try {
            await commitManifest(destination, manifest);
            crashPoint('backup.manifest-written');
            committed.push(destination.name);
          } catch (error) {
            failures.push({ destination: destination.name, ...describe(error) });
            // Not committed here: what this run wrote is withdrawn (a replica elsewhere stays; sync copies it later).
            await destination.adapter.delete([manifestKey(type, id), ...staged.map((s) => s.artifact.key)]).catch(() => undefined);
          }
        }),
      );
      const bytes = staged.reduce((sum, s) => sum + s.artifact.size, 0);
      if (committed.length === 0) {
        throw new CoreError(
          CoreErrorCode.ReplicationFailed,
          `backup ${id} could not be stored at any destination: ${failures.map((f) => `${f.destination}: ${f.message}`).join('; ')}`,
          { context: { id, failures } },
        );
      }
      if (type !== 'hot') await cacheForNextBackup(engine, id, digest.pageHashes, files && (await readFile(`${stem}.files-index.json`)));
      crashPoint('backup.cache-written');
      const quorum = requiredReplicas(config);
      const outcome = failures.length === 0 ? 'ok' : committed.length >= quorum ? 'degraded' : 'failed';
      if (outcome !== 'ok')
        engine.warn(
          `${id} committed at ${committed.length} of ${engine.config.destinations.length} destinations (quorum ${quorum}); \`stowage sync\` repairs the rest`,
        );
      return { outcome, manifest, committed, failures, bytes, durationMs: performance.now() - started };
    }
  } finally {
    await Promise.all([snapshotRemoved, closeReadThread()]);
    const leftovers = (await readdir(engine.stagingDir)).filter((name) => name.startsWith(basename(stem)));
    await Promise.all(leftovers.map((name) => rm(join(engine.stagingDir, name), { force: true })));
  }
}

/**
 * Compares this backup's size, pages, rows per table and compression ratio with the recent
 * backups of its type (median/MAD bands, `@stowage/alerts`): a table losing most of its rows or
 * data turning incompressible is worth a look before the backup ages out the good ones.
 */
async function sizeAnomalies(history: readonly Manifest[], current: Omit<BackupFacts, 'id'>): Promise<AnomalyFinding[]> {
  const { detectAnomalies, factsOf } = await import('@stowage/alerts/anomaly');
  const sameType = history.filter((m) => m.type === current.type).slice(-14);
  return detectAnomalies({ id: 'new', ...current }, sameType.map(factsOf));
}

/** A staged file after encoding: the bytes to store, and what they decode to. */
interface EncodedFile {
  role: Artifact['role'];
  path: string;
  encoding: EncodingName[];
  size: number;
  sha256: string;
  decodedSize: number;
  decodedSha256: string;
}

/** Compresses and encrypts each staged file as the config says (page hashes are never encrypted). */
async function encodeStaged(run: Pick<Engine, 'codec' | 'progress'>, staged: readonly StagedFile[]): Promise<EncodedFile[]> {
  const encoded: EncodedFile[] = [];
  for (const file of staged) {
    const encoding = run.codec.encodingFor(file.role);
    const plain = { role: file.role, decodedSize: file.size, decodedSha256: file.sha256, encoding };
    if (encoding.length === 0) {
      encoded.push({ ...plain, path: file.path, size: file.size, sha256: file.sha256 });
      continue;
    }
    run.progress({ phase: 'encode', done: 0, total: file.size });
    const path = `${file.path}${encodedSuffix(encoding)}`;
    encoded.push({ ...plain, path, ...(await run.codec.encodeFile(file.path, path, encoding)) });
  }
  return encoded;
}

/** A file in the staging folder that becomes one artifact. */
interface StagedFile {
  role: Artifact['role'];
  path: string;
  size: number;
  sha256: string;
}

async function stagedFile(role: Artifact['role'], path: string): Promise<StagedFile> {
  return { role, path, ...(await digestFile(path)) };
}

function artifactKey(role: Artifact['role'], type: BackupType, id: string): string {
  switch (role) {
    case 'database':
    case 'delta':
      return databaseKey(type, id);
    case 'page-hashes':
      return pageHashKey(type, id);
    case 'files':
      return filesKey(type, id);
    case 'files-index':
      return filesIndexKey(type, id);
  }
}

/**
 * Archives the configured file sets into the staging folder: everything for a full or hot
 * backup, only what changed since the parent's file sets for an incremental.
 */
async function archiveFileSets(
  run: Pick<Engine, 'config' | 'destinations' | 'codec' | 'progress' | 'warn'>,
  config: FileSetsConfig,
  plan: BackupPlan,
  stem: string,
  staged: StagedFile[],
): Promise<NonNullable<Manifest['files']>> {
  const parent = plan.parent ? await loadFileSetIndex(run, plan.parent.entry) : undefined;
  run.progress({ phase: 'files', done: 0 });
  const scan = await scanFileSets(config, { baseDir: run.config.baseDir, ...(parent ? { parent } : {}) });
  const result = await writeFileSetArchive(scan, createWriteStream(`${stem}.files.tar`, { flags: 'wx', mode: 0o600 }));
  await writeFile(`${stem}.files-index.json`, result.indexBytes, { mode: 0o600 });
  staged.push(await stagedFile('files', `${stem}.files.tar`), {
    role: 'files-index',
    path: `${stem}.files-index.json`,
    size: result.indexBytes.length,
    sha256: result.indexSha256,
  });
  const warnings = result.warnings.map((w) => `${w.code}: ${w.message}`);
  for (const warning of warnings) run.warn(`file sets: ${warning}`);
  return {
    incremental: parent !== undefined,
    indexSha256: result.indexSha256,
    sets: Object.fromEntries(Object.entries(result.index.sets).map(([name, set]) => [name, summarizeSet(set)])),
    diff: result.diff,
    warnings,
  };
}

type ReplicaOutcome = { kind: 'stored'; replica: Replica; artifacts: Artifact[] } | { kind: 'name-taken' } | { kind: 'failed'; error: unknown };

/** Names tried (`_1`, `_2`, …) before a destination that reports every name taken is given up on. */
const MAX_NAME_ATTEMPTS = 100;

/** How many destinations must commit a backup for it to succeed (`quorum`, default all configured). */
function requiredReplicas(config: Pick<ResolvedConfig, 'quorum' | 'destinations'>): number {
  const { quorum } = config;
  const configured = config.destinations.length;
  return quorum === 'all' ? configured : Math.min(quorum, configured);
}

/** Stores and verifies every artifact at one destination; never throws. */
async function storeReplica(destination: Destination, staged: StagedArtifact[], onBytes: (n: number) => void): Promise<ReplicaOutcome> {
  try {
    const ifNoneMatch = destination.adapter.capabilities.conditionalPut;
    const methods = new Map<string, VerifiedBy>();
    const artifacts: Artifact[] = [];
    for (const item of staged) {
      let sent = 0;
      const body = stagedBody(item, (n) => {
        sent += n;
        onBytes(n);
      });
      const stored = await destination.adapter.put(item.artifact.key, body, { ifNoneMatch });
      // An adapter that copied the staged file (`body.path`) read nothing through the body.
      if (sent < item.artifact.size) onBytes(item.artifact.size - sent);
      const artifact = withSentChecksums(destination, item.artifact, stored);
      methods.set(artifact.key, await confirmStored(destination, artifact, { deep: false, stored }));
      artifacts.push(artifact);
    }
    return { kind: 'stored', replica: confirmedReplica(methods, new Date()), artifacts };
  } catch (error) {
    if (isAlreadyExists(error)) return { kind: 'name-taken' };
    // Best effort: the upload's error is the one to report; cleanup removes what stays behind.
    await destination.adapter.delete(staged.map((s) => s.artifact.key)).catch(() => undefined);
    return { kind: 'failed', error };
  }
}

async function nameTaken(destinations: readonly Destination[], type: BackupType, id: string): Promise<boolean> {
  const found = await Promise.all(
    destinations.flatMap((d) => [manifestKey(type, id), databaseKey(type, id)].map((key) => d.adapter.stat(key).then(Boolean, () => false))),
  );
  return found.some(Boolean);
}

function describe(error: unknown): { code: string; message: string } {
  if (isStowageError(error)) return { code: error.code, message: error.message };
  return { code: 'stowage.unexpected', message: error instanceof Error ? error.message : String(error) };
}
