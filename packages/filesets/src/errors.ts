import { StowageError } from '@stowage/errors';

/** Stable codes of file-set errors. */
export const FileSetErrorCode = {
  /** The file-set config is invalid (bad name, path outside the base folder, overlapping sets). */
  InvalidConfig: 'stowage.files.invalid_config',
  /** A configured folder or listed file does not exist. Context: `set`, `path`. */
  PathMissing: 'stowage.files.path_missing',
  /** A configured folder is not a folder, or a listed file is not a regular file. Context: `set`, `path`. */
  WrongType: 'stowage.files.wrong_type',
  /** A file or folder could not be read (permissions, I/O). Context: `set`, `path`; `cause` is the system error. */
  Unreadable: 'stowage.files.unreadable',
  /** An archive or index names a path that would land outside its set or the restore target. Context: `path`. */
  UnsafePath: 'stowage.files.unsafe_path',
  /** An archive is not a Stowage file-set archive, is truncated, or its content does not match its index. */
  Corrupt: 'stowage.files.corrupt',
  /** The archives given to restore are not one chain in order (full first, then each incremental). */
  ChainBroken: 'stowage.files.chain_broken',
  /** `only` names a set that the restored point in time does not have. Context: `set`, `available`. */
  UnknownSet: 'stowage.files.unknown_set',
} as const;
export type FileSetErrorCode = (typeof FileSetErrorCode)[keyof typeof FileSetErrorCode];

/** An error of `@stowage/filesets`; `code` is one of `FileSetErrorCode`. */
export class FileSetError extends StowageError<FileSetErrorCode> {
  override readonly name: string = 'FileSetError';
}
