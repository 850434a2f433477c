import { StowageError } from '@stowage/errors';

/** Stable codes of the engine's errors. Storage errors keep their own `stowage.storage.*` codes. */
export const CoreErrorCode = {
  ConfigNotFound: 'stowage.config.not_found',
  ConfigInvalid: 'stowage.config.invalid',
  UnknownDestination: 'stowage.config.unknown_destination',
  SourceNotFound: 'stowage.source.not_found',
  SourceNotSqlite: 'stowage.source.not_sqlite',
  SourceEmpty: 'stowage.source.empty',
  SourceLocked: 'stowage.source.locked',
  SourceUnreadable: 'stowage.source.unreadable',
  BackupNotFound: 'stowage.backup.not_found',
  BackupCorrupt: 'stowage.backup.corrupt',
  ChainBroken: 'stowage.backup.chain_broken',
  NotABackup: 'stowage.backup.not_a_backup',
  EncryptionMismatch: 'stowage.backup.encryption_mismatch',
  ReplicationFailed: 'stowage.backup.replication_failed',
  NoDestinationAvailable: 'stowage.destination.none_available',
  RestoreTargetMissing: 'stowage.restore.target_missing',
  RestoreTargetNotWritable: 'stowage.restore.target_not_writable',
  RestoreCheckFailed: 'stowage.restore.check_failed',
  RestoreNoRecord: 'stowage.restore.no_record',
  RestoreCancelled: 'stowage.restore.cancelled',
  /** The backup's chain has artifacts only in an archive class: thaw them first (`--thaw`). */
  ThawNeeded: 'stowage.restore.thaw_needed',
  /** Thaws were requested but are not finished yet. */
  ThawPending: 'stowage.restore.thaw_pending',
  ValidationFailed: 'stowage.validate.failed',
  NoSpace: 'stowage.local.no_space',
} as const;
export type CoreErrorCode = (typeof CoreErrorCode)[keyof typeof CoreErrorCode];

/** An error of the backup engine; `code` is one of `CoreErrorCode`. */
export class CoreError extends StowageError<CoreErrorCode> {
  override readonly name: string = 'CoreError';
}
