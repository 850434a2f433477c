import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { systemErrorCode } from '@stowage/errors';
import { z } from 'zod';
import { formatDuration, type Alert } from './alert.js';
import { channelLabel, deliver, type Env, type WebhookPayload } from './channels.js';
import type { AlertsConfig } from './config.js';
import { AlertsError, AlertsErrorCode } from './errors.js';

/** The state file in the alerter's folder (mode 600). */
export const ALERT_STATE_FILE = 'alerts-state.json';

export interface AlerterOptions {
  /** The validated `alerts` section (`parseAlertsConfig`, or the engine's config). */
  config: AlertsConfig;
  /** Folder of the state file, e.g. `<stateDir>/status`; created with mode 700. */
  stateDir: string;
  /** Where `passwordEnv` and `secretEnv` are read; default `process.env`. */
  env?: Env;
  /** The clock (tests pass their own). */
  now?: () => Date;
  /** Called with every channel or state-file failure, e.g. to log it; alerting never throws. */
  onError?: (error: AlertsError) => void;
}

/** What one channel did with one message. */
export interface ChannelResult {
  channel: string;
  ok: boolean;
  error?: AlertsError;
}

export interface RaiseResult {
  /** False while the alert was already sent within `repeatMinutes`. */
  sent: boolean;
  /** When the condition started: the `since` of its first raise. */
  since: Date;
  /** Raises since then, this one included. */
  count: number;
  channels: ChannelResult[];
}

export interface ResolveResult {
  /** False when the key was not firing (or nobody was ever told): nothing was sent. */
  sent: boolean;
  channels: ChannelResult[];
}

const storedAlert = z.object({
  key: z.string(),
  severity: z.enum(['critical', 'warning']),
  title: z.string(),
  details: z.string(),
  where: z.string(),
  since: z.iso.datetime(),
  command: z.string(),
});
const stateSchema = z.object({
  version: z.literal(1),
  firing: z.record(z.string(), z.object({ alert: storedAlert, lastSentAt: z.iso.datetime().nullable(), count: z.number().int().positive() })),
});
type State = z.infer<typeof stateSchema>;

/**
 * Sends alerts through every configured channel without storms. A state file remembers each
 * firing key: since when, when it was last sent and how often it was raised. `raise` sends a key
 * that is new or was last sent `repeatMinutes` ago or more; `resolve` sends one recovery message
 * for a key that was firing. Nothing here throws: every channel failure (and a state file that
 * cannot be read or written) is reported in the result and through `onError`, so a broken mail
 * server never fails a backup. Calls on one Alerter are serialized.
 */
export class Alerter {
  readonly #options: AlerterOptions;
  readonly #now: () => Date;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: AlerterOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  /** Raises `alert`: sends it unless its key was sent within `repeatMinutes`. */
  raise(alert: Alert): Promise<RaiseResult> {
    return this.#serialized(async () => {
      const now = this.#now();
      const state = await this.#load();
      const entry = state.firing[alert.key];
      const given = Number.isNaN(alert.since.getTime()) ? now : alert.since;
      const since = entry && Date.parse(entry.alert.since) < given.getTime() ? new Date(entry.alert.since) : given;
      const count = (entry?.count ?? 0) + 1;
      const lastSentAt = entry?.lastSentAt ?? null;
      const due = lastSentAt === null || now.getTime() - Date.parse(lastSentAt) >= this.#options.config.repeatMinutes * 60_000;
      const current = { ...alert, since };
      let channels: ChannelResult[] = [];
      if (due) channels = await this.#send(this.#alertPayload(current, now, lastSentAt !== null, count));
      const sent = channels.some((c) => c.ok);
      state.firing[alert.key] = { alert: { ...current, since: since.toISOString() }, lastSentAt: sent ? now.toISOString() : lastSentAt, count };
      await this.#save(state);
      return { sent, since, count, channels };
    });
  }

  /** The condition of `key` cleared: one recovery message if it was firing and had been sent. */
  resolve(key: string): Promise<ResolveResult> {
    return this.#serialized(async () => {
      const state = await this.#load();
      const entry = state.firing[key];
      if (!entry) return { sent: false, channels: [] };
      delete state.firing[key];
      const now = this.#now();
      const alert = { ...entry.alert, since: new Date(entry.alert.since) };
      const channels = entry.lastSentAt === null ? [] : await this.#send(this.#recoveryPayload(alert, now));
      await this.#save(state);
      return { sent: channels.some((c) => c.ok), channels };
    });
  }

  /** `stowage alert test`: a test message through every channel, with each channel's result. */
  sendTest(): Promise<ChannelResult[]> {
    return this.#serialized(() => {
      const now = this.#now();
      const subject = `[Stowage TEST] alert test from ${hostname()}`;
      const text = `This is a test of Stowage alerts, sent ${now.toISOString()} from ${hostname()} by \`stowage alert test\`.\nIf you read this, this channel works.\n`;
      return this.#send({ event: 'test', subject, text, sentAt: now.toISOString() });
    });
  }

  /** The keys firing now, with since when (for `stowage status`). */
  firing(): Promise<Array<{ key: string; title: string; since: Date }>> {
    return this.#serialized(async () =>
      Object.values((await this.#load()).firing).map(({ alert }) => ({ key: alert.key, title: alert.title, since: new Date(alert.since) })),
    );
  }

  #alertPayload(alert: Alert, now: Date, repeat: boolean, count: number): WebhookPayload {
    const { repeatMinutes } = this.#options.config;
    const subject = `[Stowage ${alert.severity.toUpperCase()}${repeat ? ', still firing' : ''}] ${alert.title} (${alert.where})`;
    const text = [
      alert.title,
      '',
      alert.details,
      '',
      `Where:        ${alert.where}`,
      `Since:        ${alert.since.toISOString()} (${formatDuration(now.getTime() - alert.since.getTime())} ago)`,
      ...(count > 1 ? [`Raised:       ${count} times`] : []),
      `Look further: ${alert.command}`,
      '',
      `-- Stowage alert ${alert.key}; repeated at most every ${repeatMinutes} min while it lasts, with a recovery message when it clears.`,
      '',
    ].join('\n');
    return { event: 'alert', subject, text, sentAt: now.toISOString(), alert: { ...alert, since: alert.since.toISOString() }, repeat, count };
  }

  #recoveryPayload(alert: Alert, now: Date): WebhookPayload {
    const subject = `[Stowage RESOLVED] ${alert.title} (${alert.where})`;
    const text = [
      `Resolved: ${alert.title}`,
      '',
      `Where:        ${alert.where}`,
      `Since:        ${alert.since.toISOString()}, resolved ${now.toISOString()} after ${formatDuration(now.getTime() - alert.since.getTime())}`,
      `Look further: ${alert.command}`,
      '',
    ].join('\n');
    return { event: 'recovery', subject, text, sentAt: now.toISOString(), alert: { ...alert, since: alert.since.toISOString() } };
  }

  async #send(payload: WebhookPayload): Promise<ChannelResult[]> {
    const env = this.#options.env ?? process.env;
    return Promise.all(
      this.#options.config.channels.map(async (channel): Promise<ChannelResult> => {
        const label = channelLabel(channel);
        try {
          await deliver(channel, payload, env);
          return { channel: label, ok: true };
        } catch (cause) {
          const error =
            cause instanceof AlertsError
              ? cause
              : new AlertsError(AlertsErrorCode.SendFailed, `${label}: ${(cause as Error).message}`, { context: { channel: label }, cause });
          this.#report(error);
          return { channel: label, ok: false, error };
        }
      }),
    );
  }

  get #statePath(): string {
    return join(this.#options.stateDir, ALERT_STATE_FILE);
  }

  /** The state; a missing file is an empty state, an unreadable one is reported and started afresh. */
  async #load(): Promise<State> {
    const empty: State = { version: 1, firing: {} };
    let text: string;
    try {
      text = await readFile(this.#statePath, 'utf8');
    } catch (cause) {
      if (systemErrorCode(cause) !== 'ENOENT') this.#stateError(`cannot read ${this.#statePath}`, cause);
      return empty;
    }
    try {
      return stateSchema.parse(JSON.parse(text));
    } catch (cause) {
      this.#stateError(`${this.#statePath} is damaged and is started afresh`, cause);
      return empty;
    }
  }

  /** Writes the state atomically (temp file, fsync, rename) with mode 600 in a 700 folder. */
  async #save(state: State): Promise<void> {
    const temp = `${this.#statePath}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await mkdir(this.#options.stateDir, { recursive: true, mode: 0o700 });
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.chmod(0o600);
        await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.#statePath);
    } catch (cause) {
      await rm(temp, { force: true }).catch(() => undefined);
      this.#stateError(`cannot write ${this.#statePath}`, cause);
    }
  }

  #stateError(message: string, cause: unknown): void {
    const reason = cause instanceof Error ? cause.message : String(cause);
    this.#report(new AlertsError(AlertsErrorCode.StateFailed, `alert state: ${message}: ${reason}`, { context: { path: this.#statePath }, cause }));
  }

  #report(error: AlertsError): void {
    try {
      this.#options.onError?.(error);
    } catch {
      // A failing logger must not fail the backup either.
    }
  }

  #serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
