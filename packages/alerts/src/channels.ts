import { createHmac } from 'node:crypto';
import type { Alert } from './alert.js';
import type { ChannelConfig, EmailChannelConfig, WebhookChannelConfig } from './config.js';
import { AlertsError, AlertsErrorCode } from './errors.js';

/** The header carrying a webhook body's signature: `sha256=` and the hex HMAC-SHA256 of the raw body. */
export const WEBHOOK_SIGNATURE_HEADER = 'x-stowage-signature';

/** The JSON body POSTed to webhooks (`since`, `sentAt` are ISO 8601). */
export interface WebhookPayload {
  event: 'alert' | 'recovery' | 'test';
  /** The email subject and body: ready to show in a chat. */
  subject: string;
  text: string;
  sentAt: string;
  /** Absent for `test`. */
  alert?: Omit<Alert, 'since'> & { since: string };
  /** For `alert`: true when the alert was sent before; how many times it was raised since `since`. */
  repeat?: boolean;
  count?: number;
}

/** Environment variables to read `passwordEnv` and `secretEnv` from. */
export type Env = Readonly<Record<string, string | undefined>>;

/** How a channel is named in results and errors (a webhook by its origin only: URL paths often hold tokens). */
export function channelLabel(channel: ChannelConfig): string {
  return channel.type === 'email' ? `email ${channel.host}:${portOf(channel)}` : `webhook ${new URL(channel.url).origin}`;
}

const portOf = (channel: EmailChannelConfig) => channel.port ?? { starttls: 587, tls: 465, none: 25 }[channel.secure];

function secretOf(env: Env, name: string, channel: string): string {
  const value = env[name];
  if (!value) {
    throw new AlertsError(AlertsErrorCode.SecretMissing, `${channel}: environment variable ${name} is not set or empty`, { context: { channel, env: name } });
  }
  return value;
}

/** Sends one message through one channel; throws an `AlertsError` when it could not be delivered. */
export async function deliver(channel: ChannelConfig, payload: WebhookPayload, env: Env): Promise<void> {
  await (channel.type === 'email' ? sendEmail(channel, payload, env) : postWebhook(channel, payload, env));
}

async function sendEmail(channel: EmailChannelConfig, payload: WebhookPayload, env: Env): Promise<void> {
  const label = channelLabel(channel);
  const auth = channel.user && channel.passwordEnv ? { user: channel.user, pass: secretOf(env, channel.passwordEnv, label) } : undefined;
  // Loaded on the first email (~40 modules): a process that sends none does not pay for it.
  const { createTransport } = await import('nodemailer');
  const transport = createTransport({
    host: channel.host,
    port: portOf(channel),
    secure: channel.secure === 'tls',
    requireTLS: channel.secure === 'starttls',
    ignoreTLS: channel.secure === 'none',
    ...(auth ? { auth } : {}),
    connectionTimeout: channel.timeoutMs,
    greetingTimeout: channel.timeoutMs,
    socketTimeout: channel.timeoutMs,
    ...(channel.allowSelfSigned ? { tls: { rejectUnauthorized: false } } : {}),
  });
  try {
    await transport.sendMail({ from: channel.from, to: channel.to, subject: payload.subject, text: payload.text });
  } catch (cause) {
    const { code, responseCode, message } = cause as { code?: string; responseCode?: number; message?: string };
    const timeout = code === 'ETIMEDOUT';
    throw new AlertsError(timeout ? AlertsErrorCode.Timeout : AlertsErrorCode.SendFailed, `${label}: ${message ?? String(cause)}`, {
      context: { channel: label, code, responseCode },
      cause,
    });
  } finally {
    transport.close();
  }
}

async function postWebhook(channel: WebhookChannelConfig, payload: WebhookPayload, env: Env): Promise<void> {
  const label = channelLabel(channel);
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'stowage-alerts' };
  if (channel.secretEnv) {
    headers[WEBHOOK_SIGNATURE_HEADER] = `sha256=${createHmac('sha256', secretOf(env, channel.secretEnv, label))
      .update(body)
      .digest('hex')}`;
  }
  let response: Response;
  try {
    response = await fetch(channel.url, { method: 'POST', headers, body, redirect: 'error', signal: AbortSignal.timeout(channel.timeoutMs) });
  } catch (cause) {
    if ((cause as Error).name === 'TimeoutError') {
      throw new AlertsError(AlertsErrorCode.Timeout, `${label}: no answer within ${channel.timeoutMs} ms`, { context: { channel: label }, cause });
    }
    const reason = ((cause as Error).cause as Error | undefined)?.message ?? (cause as Error).message;
    throw new AlertsError(AlertsErrorCode.SendFailed, `${label}: ${reason}`, { context: { channel: label }, cause });
  }
  await response.body?.cancel().catch(() => undefined);
  if (!response.ok) {
    throw new AlertsError(AlertsErrorCode.SendFailed, `${label} answered ${response.status} ${response.statusText}`, {
      context: { channel: label, status: response.status },
    });
  }
}
