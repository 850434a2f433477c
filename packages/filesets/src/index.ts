export {
  fileSetsConfigSchema,
  fileSetConfigSchema,
  folderSetSchema,
  fileListSetSchema,
  fileSetNameSchema,
  type FileSetsConfig,
  type FileSetConfig,
  type FolderSetConfig,
  type FileListSetConfig,
} from './config.js';
export { FileSetError, FileSetErrorCode } from './errors.js';
export {
  INDEX_FORMAT,
  INDEX_MEMBER,
  INDEX_VERSION,
  diffIndexes,
  parseFileSetIndex,
  serializeFileSetIndex,
  summarizeSet,
  type DiffItem,
  type DirEntry,
  type FileEntry,
  type FileSetDiff,
  type FileSetEntry,
  type FileSetIndex,
  type IndexLike,
  type ScannedFileEntry,
  type SetIndex,
  type SetIndexOf,
  type SetSummary,
  type SymlinkEntry,
} from './fileset-index.js';
export { scanFileSets, type FileSetScan, type ScanOptions } from './scan.js';
export { writeFileSetArchive, type ArchiveOptions, type ArchiveProgress, type ArchiveResult } from './archive.js';
export {
  finishFileSets,
  restoreFileSets,
  readFileSetIndex,
  stageFileSets,
  type RestoreFilesOptions,
  type RestoreFilesResult,
  type RestoredSet,
  type SetMove,
  type StagedFileSets,
} from './restore.js';
export type { FileSetWarning, FileSetWarningCode } from './warnings.js';
