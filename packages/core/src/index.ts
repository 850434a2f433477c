export {
  appendAudit,
  AUDIT_FILE,
  readAuditRecords,
  verifyAudit,
  verifyAuditTrail,
  type AuditRecord,
  type AuditTrailVerification,
  type AuditVerification,
} from './audit.js';
export { backup, type BackupOptions, type BackupResult } from './backup.js';
export { byRecency, catalogOf, findBackupAt, listBackups, ManifestCatalog, readManifest, type CatalogEntry } from './catalog.js';
export { findBackup } from './find.js';
export { restorableFrom, restorableFromEach } from './chain.js';
export { checkChainKeys, type ChainKeyCheck } from './key-match.js';
export { cleanup, ORPHAN_CRASHED, removeOrphans, retentionPolicyOf, type CleanupItem, type CleanupResult } from './cleanup.js';
export { configJsonSchema, configSchema, loadConfig, resolveConfig, type ConfigFile, type ResolvedConfig } from './config.js';
export { localRegistry, logDirOf, openEngine, requireDestinations, withoutDestinations, type Engine, type EngineOptions } from './engine.js';
export type { Destination, DestinationFailure, ProgressEvent } from './destination.js';
export {
  ARCHIVED_ROLES,
  lifecycleRulesOf,
  dueForArchive,
  ensureThawed,
  expectedThawTimes,
  describeThawTimes,
  runArchive,
  thawStates,
  thawStatus,
  type ThawStatus,
  type ArchiveMove,
  type ArchiveRunResult,
  type ArtifactThawState,
  type ThawRequest,
} from './archive.js';
export { applyLifecycle, bucketRootUrl, LIFECYCLE_LOCK_KEY, type LifecycleApplyOptions } from './lifecycle.js';
export { drill, drillHistory, lastDrill, type DrillResult } from './drill.js';
export { CoreError, CoreErrorCode } from './errors.js';
export { alertOnStatus, listEachDestination, status, type DestinationListing, type Status } from './status.js';
/** `ms` as a short human duration (`45 s`, `12 min`, `3.5 h`, `2.0 d`): the alerts' own, one format everywhere. */
export { formatDuration as formatAge } from '@stowage/alerts';
export {
  acquireDestinationLock,
  acquireDestinationLocks,
  acquireLockFile,
  acquireSourceLock,
  breakLock,
  describeHolder,
  LockError,
  LockErrorCode,
  readLocks,
  type HeldLock,
  type Lock,
  type LockHolder,
} from './lock.js';
export { describeChecks, readFacts, runChecks, type CheckKind, type DatabaseChecks, type DatabaseFacts } from './facts.js';
export { idFromReference, typeOfId } from './layout.js';
export { BACKUP_TYPES, manifestSchema, parseManifest, serializeManifest, type Artifact, type BackupType, type Manifest } from './manifest.js';
export { DEFAULT_RETENTION, durationMs, planRetention, type RetentionDecision, type RetentionPolicy, type RetentionRule } from './retention.js';
export { restore, verifyRestored, type RestoreCheck, type RestoreOptions, type RestorePlan, type RestoreResult, type RestoreVerification } from './restore.js';
export { probeDestinations, type DestinationProbe } from './probe.js';
export { sync, type SyncAction, type SyncResult } from './sync.js';
export { takeSnapshot, type Snapshot } from './snapshot.js';
export { validate, type Validation } from './validate.js';
export { verify, type ArtifactCheck, type BackupVerification, type ReplicaVerification, type VerifyRecord } from './verify.js';
export { TOOL_VERSION } from './version.js';
export { CRASH_POINTS, crashPoint, type CrashPointName } from '@stowage/storage';
