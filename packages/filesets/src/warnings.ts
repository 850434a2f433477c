/** Why an entry was skipped or kept at an older version, reported instead of failing the backup. */
export type FileSetWarningCode =
  /** Listed by its folder, then gone (or no longer a regular file) before it could be read: left out, i.e. deleted. */
  | 'vanished'
  /** Kept changing while being read, on every attempt: never recorded as read; the parent's version is kept if there was one. */
  | 'unstable'
  /** A socket, FIFO or device: not backed up. */
  | 'unsupported_type'
  /** A name that is not valid UTF-8 or contains a backslash: not backed up. */
  | 'unsupported_name'
  /** A symlink whose target leads outside its set: not backed up (a restore would refuse it). */
  | 'link_escapes';

/** One warning of a scan or an archive run. */
export interface FileSetWarning {
  code: FileSetWarningCode;
  set: string;
  /** Path relative to the set's folder (or to the base folder for a file list). */
  path: string;
  message: string;
  /** For `unstable`: whether the index kept the parent's version of the file. */
  keptPrevious?: boolean;
}
