export {
  RESTORE_DURATIONS,
  startOssTestServer,
  type OssObjectSnapshot,
  type OssRequestRecord,
  type OssTestServer,
  type OssTestServerOptions,
  type ThawClock,
} from './server.js';
export { OssFaults, type OssFault, type OssFaultRule, type OssOperation } from './faults.js';
export type { OssCredentials, SignatureVersion } from './auth.js';
export type { RestoreTier, StorageClass } from './store.js';
export { crc64 as crc64Reference } from './crc64.js';
