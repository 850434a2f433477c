export type {
  ArchiveStatus,
  BucketLifecycle,
  LifecycleRule,
  Capabilities,
  ChecksumAlgorithm,
  GetOptions,
  ObjectChecksums,
  ObjectInfo,
  PutBody,
  PutOptions,
  StorageAdapter,
  StoredObject,
  ThawOptions,
  ArchiveClassFacts,
  ThawTier,
} from './contract.js';
export {
  StorageError,
  StorageErrorCode,
  abortedError,
  isAborted,
  isAlreadyExists,
  isStorageError,
  isChecksumMismatch,
  isNoSpace,
  isObjectArchived,
  isObjectNotFound,
  isPermissionDenied,
  isTransient,
  objectArchived,
  objectChanged,
  objectNotFound,
  throwIfAborted,
} from './errors.js';
export { assertValidKey, assertValidPrefix } from './keys.js';
export { DigestStream, assertBodyMatches, bufferBody, destroyOnAbort, digestFile, digestStream, fileBody, sha256Hex } from './body.js';
export { streamed, withBoundedGarbage } from './garbage.js';
export { withRetry, type RetryOptions } from './retry.js';
export { Semaphore, withConcurrencyLimit } from './limit.js';
export { composeAdapter, type CompositionOptions } from './compose.js';
export { StorageRegistry, parseDestinationUrl, type AdapterContext, type AdapterFactory, type DestinationSpec, type EndpointProbe } from './registry.js';
export { bootId, isDeadOwnersTemp, ownerGone, ownerOf, ownerToken, pidRuns, pidStartTicks, TOKEN_HOST, type TempOwner } from './owner.js';
export { CRASH_POINTS, crashPoint, type CrashPointName } from './crash.js';
export { STOWAGE_RULE_ID_PREFIX, assertLifecycleRules, isOwnLifecycleRule, lifecycleRuleId } from './lifecycle.js';
