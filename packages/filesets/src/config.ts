import { z } from 'zod';
import { findOverlap, unsafePathReason } from './paths.js';

/** A set name: lower-case letters, digits, `_` and `-`; `database` is reserved for the SQLite artifact. */
export const fileSetNameSchema = z
  .string()
  .regex(/^[a-z0-9_-]+$/, 'use lower-case letters, digits, "_" and "-"')
  .refine((name) => name !== 'database', { message: '"database" is reserved for the SQLite database' })
  .describe('Name of the file set, e.g. media, config, logs');

const relativePath = z.string().superRefine((path, ctx) => {
  const reason = unsafePathReason(path);
  if (reason !== undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `"${path}" must be a path inside the base folder, written like media or conf/app.ini (${reason})`,
    });
  }
});

const globs = z.array(z.string().min(1)).min(1);

/** A folder and everything under it, optionally filtered by globs. */
export const folderSetSchema = z
  .object({
    path: relativePath.describe('Folder to back up, relative to the base folder'),
    include: globs
      .optional()
      .describe('Only files and symlinks matching one of these globs are kept (folders are always kept); a glob without "/" matches the name at any depth'),
    exclude: globs.optional().describe('Entries matching one of these globs are left out; an excluded folder is not descended into'),
  })
  .strict();

/** A list of individual files, e.g. configuration files. */
export const fileListSetSchema = z
  .object({
    files: z.array(relativePath).min(1).describe('Files to back up, relative to the base folder'),
  })
  .strict();

/** One file set: a folder (`{ path, include?, exclude? }`) or a list of files (`{ files }`). */
export const fileSetConfigSchema = z.union([folderSetSchema, fileListSetSchema], {
  error: (issue) =>
    typeof issue.input === 'string'
      ? `write { "path": ${JSON.stringify(issue.input)} } for a folder (or { "files": [...] } for a list of files), not a bare path`
      : undefined,
});

/**
 * The `source.files` section: named file sets, paths relative to a base folder the caller gives
 * (the config file's folder). Sets may not overlap, so each file belongs to exactly one set and a
 * restore of one set never touches another.
 *
 * ```json
 * { "media": { "path": "media" },
 *   "config": { "files": ["greaterwms/settings.py", "supervisord.conf"] },
 *   "logs": { "path": "logs", "include": ["*.log"], "exclude": ["debug/**"] } }
 * ```
 */
export const fileSetsConfigSchema = z
  .record(fileSetNameSchema, fileSetConfigSchema, {
    error: (issue) =>
      issue.code === 'invalid_key' ? `file set name ${JSON.stringify(issue.input)}: ${issue.issues.map((inner) => inner.message).join('; ')}` : undefined,
  })
  .superRefine((sets, ctx) => {
    const overlap = findOverlap(Object.values(sets).flatMap((set) => ('files' in set ? set.files : [set.path])));
    if (overlap !== undefined) {
      const [outer, inner] = overlap;
      ctx.addIssue({
        code: 'custom',
        message:
          outer === inner
            ? `"${outer}" is listed more than once; every path may belong to one file set only`
            : `"${inner}" lies inside "${outer}"; file sets may not overlap`,
      });
    }
  })
  .describe('Named file sets backed up with the database: media folders, config files, logs');

export type FileSetsConfig = z.output<typeof fileSetsConfigSchema>;
export type FileSetConfig = z.output<typeof fileSetConfigSchema>;
export type FolderSetConfig = z.output<typeof folderSetSchema>;
export type FileListSetConfig = z.output<typeof fileListSetSchema>;
