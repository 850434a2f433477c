import { z } from 'zod';
import { AlertsError, AlertsErrorCode } from './errors.js';

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name such as STOWAGE_SMTP_PASSWORD');
const timeoutMs = z.number().int().min(100).max(300_000).default(10_000).describe('How long to wait for the server (connect, greeting, each answer), in ms');

const address = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected an email address such as ops@example.com');

/** A key that would hold a secret in the config: refused with a message saying where it goes instead. */
const literalSecret = (what: string, instead: string) =>
  z.never({ error: `secrets never go in the config: put the ${what} in an environment variable and name it in ${instead}` }).optional();

const emailChannelSchema = z
  .strictObject({
    type: z.literal('email'),
    host: z.string().min(1).describe('SMTP server (Django EMAIL_HOST)'),
    port: z.number().int().min(1).max(65535).optional().describe('SMTP port (Django EMAIL_PORT); default 587 for starttls, 465 for tls, 25 for none'),
    secure: z
      .enum(['starttls', 'tls', 'none'])
      .default('starttls')
      .describe(
        'starttls: plain connection upgraded by STARTTLS, refused if the server does not offer it (Django EMAIL_USE_TLS); tls: implicit TLS (EMAIL_USE_SSL); none: no TLS at all',
      ),
    user: z.string().min(1).optional().describe('SMTP user (Django EMAIL_HOST_USER)'),
    passwordEnv: envName.optional().describe('Environment variable holding the SMTP password (Django EMAIL_HOST_PASSWORD)'),
    password: literalSecret('SMTP password', 'passwordEnv'),
    from: z.string().min(1).describe('Sender, e.g. "Stowage <backup@example.com>" (Django DEFAULT_FROM_EMAIL)'),
    to: z.array(address).min(1, 'name at least one recipient').describe('Recipients (BACKUP_ALERT_EMAILS)'),
    allowSelfSigned: z.boolean().default(false).describe("Accept the server's certificate without checking it (test servers only)"),
    timeoutMs,
  })
  .superRefine((channel, ctx) => {
    if ((channel.user === undefined) !== (channel.passwordEnv === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['passwordEnv'], message: 'set both user and passwordEnv, or neither' });
    }
    if (channel.secure === 'none' && channel.passwordEnv !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['secure'], message: 'a password would travel in clear text: use secure "starttls" or "tls"' });
    }
  });

const webhookChannelSchema = z.strictObject({
  type: z.literal('webhook'),
  url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).describe('Receives a JSON POST per alert, repeat, recovery and test'),
  secretEnv: envName.optional().describe('Environment variable holding the HMAC-SHA256 key; the body is then signed in X-Stowage-Signature: sha256=<hex>'),
  secret: literalSecret('webhook secret', 'secretEnv'),
  timeoutMs,
});

/**
 * The `alerts` section of a Stowage config: where alerts go (every channel gets every message)
 * and how often a condition that lasts is repeated. Secrets never appear in it: a channel names
 * the environment variable holding its password or HMAC key, and a literal `password` or `secret`
 * key is refused with a message saying so.
 */
export const alertsConfigSchema = z.strictObject({
  channels: z
    .array(z.discriminatedUnion('type', [emailChannelSchema, webhookChannelSchema]))
    .min(1, 'configure at least one channel')
    .describe('Email (SMTP) and webhook channels; every alert goes to each of them'),
  repeatMinutes: z.number().positive().default(60).describe('An alert that keeps firing is sent again at most this often'),
  lockHeldMinutes: z.number().positive().default(120).describe('A lock held longer than this raises an alert'),
});

/** The alerts config as written in a config file (defaults not yet applied). */
export type AlertsConfigInput = z.input<typeof alertsConfigSchema>;
/** A validated alerts config. */
export type AlertsConfig = z.output<typeof alertsConfigSchema>;
export type ChannelConfig = AlertsConfig['channels'][number];
export type EmailChannelConfig = Extract<ChannelConfig, { type: 'email' }>;
export type WebhookChannelConfig = Extract<ChannelConfig, { type: 'webhook' }>;

/** Validates an alerts config; problems are reported one per line as `alerts.path: message`. */
export function parseAlertsConfig(input: unknown): AlertsConfig {
  const parsed = alertsConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${['alerts', ...issue.path].join('.')}: ${issue.message}`);
  throw new AlertsError(AlertsErrorCode.InvalidConfig, `invalid alerts config:\n${problems.join('\n')}`, { context: { problems } });
}
