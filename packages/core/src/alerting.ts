/*
 * Alerts from the engine: every operation raises or resolves its condition here, and the
 * `@stowage/alerts` Alerter (grouping, repeat windows, recovery messages) is loaded only when the
 * config has an `alerts` section. A failing channel is a warning, never a failed operation.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Alert, Alerter, AlertKind } from '@stowage/alerts';
import type { ResolvedConfig } from './config.js';

type Builders = typeof import('@stowage/alerts')['Alerts'];

export class Alerting {
  #alerter: Promise<Alerter> | undefined;
  /** Where alerts say they come from: this host and config. */
  readonly where: string;

  constructor(
    readonly config: ResolvedConfig,
    private readonly warn: (message: string) => void,
    private readonly now: () => Date,
  ) {
    this.where = `${hostname()}:${config.configPath}`;
  }

  /** Raises the alert `build` makes (given the builders and where/since). */
  async raise(build: (alerts: Builders, situation: { where: string; since: Date }) => Alert): Promise<void> {
    const alerter = await this.#load();
    if (!alerter) return;
    const { Alerts } = await import('@stowage/alerts');
    await alerter.raise(build(Alerts, { where: this.where, since: this.now() }));
  }

  /** Sends a recovery message when the condition `kind` (`subject`) was firing. */
  async resolve(kind: AlertKind, subject?: string): Promise<void> {
    const alerter = await this.#load();
    if (!alerter) return;
    const { alertKey } = await import('@stowage/alerts');
    await alerter.resolve(alertKey(kind, subject));
  }

  /** The alerts firing now (none without an `alerts` section). */
  async firing(): Promise<Array<{ key: string; title: string; since: Date }>> {
    const alerter = await this.#load();
    return alerter ? alerter.firing() : [];
  }

  /** `stowage alert test`: one message through every channel. */
  async test(): Promise<Array<{ channel: string; ok: boolean; error?: string }>> {
    const alerter = await this.#load();
    const results = alerter ? await alerter.sendTest() : [];
    return results.map((r) => ({ channel: r.channel, ok: r.ok, ...(r.error ? { error: r.error.message } : {}) }));
  }

  #load(): Promise<Alerter | undefined> {
    const config = this.config.alerts;
    if (!config) return Promise.resolve(undefined);
    this.#alerter ??= import('@stowage/alerts').then(
      ({ Alerter }) =>
        new Alerter({
          config,
          stateDir: join(this.config.stateDir, 'status'),
          now: this.now,
          onError: (error) => this.warn(`alert channel failed: ${(error as Error).message}`),
        }),
    );
    return this.#alerter;
  }
}
