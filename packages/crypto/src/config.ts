import { z } from 'zod';
import { CryptoError, CryptoErrorCode } from './errors.js';

const path = z.string().min(1);
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name such as STOWAGE_PASSPHRASE');
const aead = z
  .boolean()
  .default(false)
  .describe('Use RFC 9580 AEAD (SEIPDv2, AES-256-GCM) packets. NOT readable by gpg 2.2/2.4; leave off for gpg compatibility');

function exactlyOne(what: string, file: string, env: string) {
  return (value: Record<string, unknown>, ctx: z.RefinementCtx) => {
    const count = [value[file], value[env]].filter((v) => v !== undefined).length;
    if (count !== 1) {
      ctx.addIssue({ code: 'custom', path: [file], message: `set exactly one of ${file} or ${env} for the ${what}` });
    }
  };
}

const passphraseConfig = z
  .strictObject({
    mode: z.literal('passphrase'),
    passphraseFile: path.optional().describe('File (mode 600) whose first line is the passphrase'),
    passphraseEnv: envName.optional().describe('Environment variable that holds the passphrase'),
    aead,
  })
  .superRefine(exactlyOne('passphrase', 'passphraseFile', 'passphraseEnv'));

const publicKeyConfig = z
  .strictObject({
    mode: z.literal('public-key'),
    recipients: z
      .array(path)
      .min(1, 'name at least one recipient public key file')
      .describe('Public key files (armored or binary); every backup is readable by each of their private keys'),
    privateKeyFile: path.optional().describe('Private key file (mode 600), only on machines that restore'),
    privateKeyEnv: envName.optional().describe('Environment variable that holds the armored private key'),
    privateKeyPassphraseFile: path.optional().describe("File (mode 600) whose first line is the private key's passphrase"),
    privateKeyPassphraseEnv: envName.optional().describe("Environment variable that holds the private key's passphrase"),
    aead,
  })
  .superRefine((value, ctx) => {
    if (value.privateKeyFile !== undefined && value.privateKeyEnv !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['privateKeyFile'], message: 'set at most one of privateKeyFile or privateKeyEnv' });
    }
    if (value.privateKeyPassphraseFile !== undefined && value.privateKeyPassphraseEnv !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['privateKeyPassphraseFile'],
        message: 'set at most one of privateKeyPassphraseFile or privateKeyPassphraseEnv',
      });
    }
    const hasPassphrase = value.privateKeyPassphraseFile !== undefined || value.privateKeyPassphraseEnv !== undefined;
    if (hasPassphrase && value.privateKeyFile === undefined && value.privateKeyEnv === undefined) {
      ctx.addIssue({ code: 'custom', path: ['privateKeyPassphraseFile'], message: 'a private key passphrase needs privateKeyFile or privateKeyEnv' });
    }
  });

/**
 * The `encryption` section of a Stowage config. Secrets never appear in it: the config names the
 * file or environment variable that holds each one. Relative paths are resolved against the
 * `baseDir` given to the loaders (the config file's folder).
 *
 * - `passphrase`: symmetric AES-256 with an iterated+salted S2K; the same passphrase decrypts.
 * - `public-key`: the backup host holds only the recipients' public keys; restores need one of
 *   the private keys (`privateKeyFile`/`privateKeyEnv`, optionally passphrase-protected).
 */
export const encryptionConfigSchema = z.discriminatedUnion('mode', [passphraseConfig, publicKeyConfig]);

/** The encryption config as written in a config file (defaults not yet applied). */
export type EncryptionConfigInput = z.input<typeof encryptionConfigSchema>;
/** A validated encryption config. */
export type EncryptionConfig = z.output<typeof encryptionConfigSchema>;
export type PassphraseEncryptionConfig = Extract<EncryptionConfig, { mode: 'passphrase' }>;
export type PublicKeyEncryptionConfig = Extract<EncryptionConfig, { mode: 'public-key' }>;

const SECRET_KEY_NAMES = new Set(['passphrase', 'privateKey', 'privateKeyPassphrase', 'key', 'password']);

/** Validates an encryption config; problems are reported one per line as `path: message`. */
export function parseEncryptionConfig(input: unknown): EncryptionConfig {
  const parsed = encryptionConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const where = ['encryption', ...issue.path].join('.');
    const secretKeys = issue.code === 'unrecognized_keys' ? issue.keys.filter((key) => SECRET_KEY_NAMES.has(key)) : [];
    const hint = secretKeys.length > 0 ? ' (secrets never go in the config: name a file or an environment variable, e.g. passphraseFile or passphraseEnv)' : '';
    return `${where}: ${issue.message}${hint}`;
  });
  throw new CryptoError(CryptoErrorCode.InvalidConfig, `invalid encryption config:\n${problems.join('\n')}`, {
    context: { problems },
  });
}
