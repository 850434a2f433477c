import { z } from 'zod';
import { sha256Hex } from '@stowage/storage';
import { CoreError, CoreErrorCode } from './errors.js';
import { BACKUP_TYPES, FOLDERS } from './layout.js';

export { BACKUP_TYPES, type BackupType } from './layout.js';

export const MANIFEST_FORMAT = 'stowage.manifest';
export const MANIFEST_VERSION = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a hex SHA-256');

/** One stored object of a backup, as written at every destination. */
export const artifactSchema = z.object({
  /** What it holds: the database image, or the page-hash list used by incrementals. */
  role: z.enum(['database', 'delta', 'page-hashes', 'files', 'files-index']),
  /** Key relative to the destination root, e.g. `full/full_backup_20240101_020000.sqlite3`. */
  key: z.string().refine(isInsideDestination, { error: (issue) => `manifest refers to a key outside the destination ('${String(issue.input)}')` }),
  /** Encodings applied in order (empty = stored as is). */
  encoding: z.array(z.string()),
  size: z.number().int().nonnegative(),
  sha256,
  /** CRC-64/ECMA of the stored bytes (unsigned decimal), when a destination reports that checksum (OSS). */
  crc64ecma: z.string().regex(/^\d+$/).optional(),
  /** Full-object CRC-64/NVME of the stored bytes (base64, as S3 reports it), when a destination reports that checksum (S3). */
  crc64nvme: z
    .string()
    .regex(/^[A-Za-z0-9+/]{11}=$/)
    .optional(),
  decodedSize: z.number().int().nonnegative(),
  decodedSha256: sha256,
});
export type Artifact = z.infer<typeof artifactSchema>;

const verifyMethod = z.enum(['sha256-readback', 'server-sha256', 'server-crc64ecma', 'server-crc64nvme']);

export const replicaSchema = z.object({
  committedAt: z.iso.datetime(),
  /**
   * How the stored bytes were confirmed before the manifest was written — the check that ran:
   * `sha256-readback` (downloaded and hashed), `server-sha256` / `server-crc64ecma` / `server-crc64nvme` (the checksum
   * the destination computed over the bytes it stores; the local adapter re-reads the file after
   * fsync; for an S3 object uploaded in parts with SHA-256, its composite checksum of the parts' SHA-256s,
   * equal to the one the upload sent). When artifacts were confirmed differently, this is the database artifact's method and
   * `verifiedByArtifact` names each.
   */
  verifiedBy: verifyMethod,
  verifiedByArtifact: z.record(z.string(), verifyMethod).optional(),
  verifiedAt: z.iso.datetime(),
});
export type Replica = z.infer<typeof replicaSchema>;

/** The manifest: the commit marker of a backup at a destination, written after every artifact. */
export const manifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    version: z.literal(MANIFEST_VERSION),
    id: z.string().regex(/^(full|inc|hot)_backup_\d{8}_\d{6}(_\d+)?$/),
    type: z.enum(BACKUP_TYPES),
    /** Orders backups independently of the clock: one more than the highest seen at any destination. */
    seq: z.number().int().nonnegative(),
    /** The backup this incremental's delta applies to; null for full and hot backups. */
    parent: z.string().nullable(),
    /** Incrementals between this backup and its full (0 for full and hot). */
    chainLength: z.number().int().nonnegative(),
    /** Why a full backup was taken when an incremental was asked for. */
    fullBecause: z.string().optional(),
    createdAt: z.iso.datetime(),
    reason: z.string().optional(),
    tool: z.object({ name: z.literal('stowage'), version: z.string() }),
    host: z.string(),
    /** The head of `host`'s audit log when this backup was committed; absent in older manifests. */
    audit: z.object({ seq: z.number().int().positive(), hash: sha256 }).optional(),
    source: z.object({
      path: z.string(),
      pageSize: z.number().int().positive(),
      pageCount: z.number().int().nonnegative(),
      journalMode: z.string(),
      sqliteVersion: z.string(),
      schemaHash: sha256,
      tables: z.record(z.string(), z.number().int().nonnegative()),
      size: z.number().int().nonnegative(),
      snapshotSha256: sha256,
      pageHashAlgorithm: z.string(),
      /** SHA-256 of the full page-hash list (a full's artifact; an incremental's list rebuilt through its chain). */
      pageHashesSha256: sha256,
      /** How long writers were held off while the snapshot was taken, in ms. */
      lockMs: z.number().nonnegative(),
    }),
    /** For incrementals: how many pages the delta carries. */
    delta: z.object({ changedPages: z.number().int().nonnegative(), basePageCount: z.number().int().nonnegative() }).optional(),
    /** File sets archived with the database (media, config, logs), when configured. */
    files: z
      .object({
        /** True when the archive holds only what changed since the parent's file sets. */
        incremental: z.boolean(),
        indexSha256: sha256,
        sets: z.record(z.string(), z.object({ files: z.number(), dirs: z.number(), symlinks: z.number(), bytes: z.number() })),
        diff: z.object({ added: z.number(), changed: z.number(), deleted: z.number() }),
        /** Files that vanished or kept changing while read, and similar problems (never fatal). */
        warnings: z.array(z.string()),
      })
      .optional(),
    /** Size anomalies against the recent backups of the same type (median/MAD bands), if any. */
    anomalies: z
      .array(
        z.object({
          metric: z.string(),
          value: z.number(),
          median: z.number(),
          band: z.object({ low: z.number(), high: z.number() }),
          severity: z.enum(['critical', 'warning']),
          reason: z.string(),
        }),
      )
      .optional(),
    /**
     * Set once this backup's snapshot passed `PRAGMA integrity_check` and `foreign_key_check`
     * (`by`: the operation, `validate` or `restore`): a restore whose bytes hash to
     * `source.snapshotSha256` then runs no whole-file check (kind `verified`), unless asked for one.
     */
    integrityChecked: z.object({ at: z.iso.datetime(), by: z.string() }).optional(),
    /** How artifacts are encoded: compression and encryption (cipher, mode, which key — never a key). */
    encoding: z.object({
      compression: z.object({ algorithm: z.literal('zstd'), level: z.number().int() }).nullable(),
      encryption: z
        .object({
          cipher: z.literal('AES-256'),
          format: z.string(),
          mode: z.enum(['passphrase', 'public-key']),
          /** Public-key mode: the recipients' primary key fingerprints. */
          fingerprints: z.array(z.string()),
          /**
           * Passphrase mode: a salted scrypt check of the passphrase, truncated so that it reveals
           * nothing useful (see @stowage/crypto verifier.ts). Absent in manifests of older versions.
           */
          passphraseVerifier: z
            .object({ kdf: z.literal('scrypt'), logN: z.number().int(), r: z.number().int(), p: z.number().int(), salt: z.string(), check: z.string() })
            .optional(),
          /**
           * Passphrase mode, SEIPDv1: the S2K salt (hex) of the artifacts' session key packets. The
           * next backups with the same passphrase reuse it (see `Codec.describe`). Absent in
           * manifests of older versions, whose artifacts each have their own salt.
           */
          s2kSalt: z
            .string()
            .regex(/^[0-9a-f]{16}$/, 'an S2K salt is 8 bytes of lowercase hex')
            .optional(),
        })
        .nullable(),
    }),
    artifacts: z.array(artifactSchema).min(1),
    replicas: z.record(z.string(), replicaSchema),
    /** SHA-256 of the manifest's compact JSON without this field (see `serializeManifest`); absent in older manifests. */
    checksum: sha256.optional(),
  })
  .superRefine((manifest, context) => {
    // A manifest may only name its own backup's objects, so a damaged or hostile one can never make
    // cleanup delete (or restore read) another backup's data.
    const own = `${FOLDERS[manifest.type]}/${manifest.id}.`;
    manifest.artifacts.forEach((artifact, index) => {
      if (isInsideDestination(artifact.key) && !artifact.key.startsWith(own)) {
        context.addIssue({ code: 'custom', path: ['artifacts', index, 'key'], message: `'${artifact.key}' is not an object of backup ${manifest.id}` });
      }
    });
  });
export type Manifest = z.infer<typeof manifestSchema>;

/** A relative key with no `..`, empty or absolute segments and no backslashes. */
function isInsideDestination(key: string): boolean {
  return key.length > 0 && !key.includes('\\') && key.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

/** The manifest's JSON as stored, with a checksum over its content so that any damage is noticed. */
export function serializeManifest(manifest: Manifest): string {
  const { checksum: _, ...body } = manifest;
  return `${JSON.stringify({ ...body, checksum: sha256Hex(JSON.stringify(body)) }, null, 2)}\n`;
}

/**
 * Manifests parsed lately, by their exact text: a backup's manifest is the same bytes at every
 * destination, so a catalog of four destinations checks and validates each one once, not four
 * times. Copies go in and out, so no caller sees another's changes.
 */
const recentlyParsed = new Map<string, Manifest>();
const RECENTLY_PARSED_MAX = 2048;

/** Parses manifest JSON, throwing `not_a_backup` with the first problems when it is not one. */
export function parseManifest(text: string, where: string): Manifest {
  const known = recentlyParsed.get(text);
  if (known) return structuredClone(known);
  const manifest = checkManifest(text, where);
  recentlyParsed.set(text, structuredClone(manifest));
  if (recentlyParsed.size > RECENTLY_PARSED_MAX) recentlyParsed.delete(recentlyParsed.keys().next().value!);
  return manifest;
}

function checkManifest(text: string, where: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CoreError(CoreErrorCode.NotABackup, `${where} is not a Stowage manifest (not JSON)`, { context: { where }, cause });
  }
  const { checksum, ...body } = (json ?? {}) as Record<string, unknown>;
  if (checksum !== undefined && checksum !== sha256Hex(JSON.stringify(body))) {
    throw new CoreError(CoreErrorCode.NotABackup, `${where} is damaged: its content does not match its checksum`, { context: { where } });
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new CoreError(CoreErrorCode.NotABackup, `${where} is not a valid Stowage manifest: ${problems.join('; ')}`, { context: { where } });
  }
  return parsed.data;
}

/** The artifact holding the database: the whole image (full, hot) or the page delta (incremental). */
export function databaseArtifact(manifest: Manifest): Artifact {
  const role = manifest.type === 'incremental' ? 'delta' : 'database';
  return artifactOf(manifest, role);
}

export function artifactOf(manifest: Manifest, role: Artifact['role']): Artifact {
  const artifact = manifest.artifacts.find((a) => a.role === role);
  if (!artifact) throw new CoreError(CoreErrorCode.NotABackup, `manifest of ${manifest.id} lists no ${role} artifact`, { context: { id: manifest.id } });
  return artifact;
}
