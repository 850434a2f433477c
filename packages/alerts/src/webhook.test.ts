import { createHmac, timingSafeEqual } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Alerts } from './alert.js';
import { Alerter } from './alerter.js';
import { WEBHOOK_SIGNATURE_HEADER, type WebhookPayload } from './channels.js';
import { parseAlertsConfig, type AlertsConfigInput } from './config.js';
import { AlertsErrorCode } from './errors.js';
import { closedPort, startSmtp, startWebhook } from './test/servers.js';

const SECRET = 'whsec-3f9a1c';
const T0 = new Date('2024-06-01T02:00:00.000Z');
const rpo = () => Alerts.rpoBreached({ newest: 'inc_backup_20240601_010000', age: '1.2 h', target: '1h', where: 'wms-01', since: T0 });

let dir: string;
let clock: Date;
const alerter = (config: AlertsConfigInput) =>
  new Alerter({ config: parseAlertsConfig(config), stateDir: dir, env: { HOOK_SECRET: SECRET }, now: () => clock });
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-alerts-'));
  clock = new Date(T0.getTime() + 60_000);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** What a receiver does: recompute the HMAC of the raw body and compare in constant time. */
function signatureValid(body: string, header: string | string[] | undefined): boolean {
  const expected = Buffer.from(`sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`);
  return typeof header === 'string' && header.length === expected.length && timingSafeEqual(Buffer.from(header), expected);
}

describe('webhook alerts', () => {
  it('POSTs the alert as JSON signed with HMAC-SHA256, then the recovery', async () => {
    const hook = await startWebhook();
    try {
      const a = alerter({ channels: [{ type: 'webhook', url: hook.url, secretEnv: 'HOOK_SECRET' }] });
      const raised = await a.raise(rpo());
      expect(raised.channels).toEqual([{ channel: expect.stringMatching(/^webhook http:\/\/127\.0\.0\.1:\d+$/), ok: true }]);
      await a.resolve('rpo-breached');
      expect(hook.received).toHaveLength(2);
      for (const { headers, body } of hook.received) {
        expect(headers['content-type']).toBe('application/json');
        expect(signatureValid(body, headers[WEBHOOK_SIGNATURE_HEADER])).toBe(true);
      }
      const [alert, recovery] = hook.received.map((r) => JSON.parse(r.body) as WebhookPayload);
      expect(alert).toMatchObject({
        event: 'alert',
        repeat: false,
        count: 1,
        sentAt: clock.toISOString(),
        alert: { key: 'rpo-breached', severity: 'critical', where: 'wms-01', since: T0.toISOString(), command: 'stowage status' },
      });
      expect(alert?.subject).toBe('[Stowage CRITICAL] RPO breached: no backup for 1.2 h (target 1h) (wms-01)');
      expect(recovery).toMatchObject({ event: 'recovery', alert: { key: 'rpo-breached' } });
      expect(signatureValid(hook.received[0]!.body.replace('wms-01', 'wms-02'), hook.received[0]!.headers[WEBHOOK_SIGNATURE_HEADER])).toBe(false);
    } finally {
      await hook.close();
    }
  });

  it('sends no signature header without secretEnv', async () => {
    const hook = await startWebhook();
    try {
      await alerter({ channels: [{ type: 'webhook', url: hook.url }] }).sendTest();
      expect(hook.received[0]?.headers[WEBHOOK_SIGNATURE_HEADER]).toBeUndefined();
      expect(JSON.parse(hook.received[0]!.body)).toMatchObject({ event: 'test' });
    } finally {
      await hook.close();
    }
  });

  it('reports a 500 answer without throwing, naming only the origin (URL paths hold tokens)', async () => {
    const hook = await startWebhook((res) => res.writeHead(500).end('boom'));
    try {
      const [result] = await alerter({ channels: [{ type: 'webhook', url: hook.url }] }).sendTest();
      expect(result).toMatchObject({ ok: false, error: { code: AlertsErrorCode.SendFailed, context: { status: 500 } } });
      expect(result?.error?.message).toMatch(/answered 500 Internal Server Error/);
      expect(result?.error?.message).not.toContain('secret-path');
    } finally {
      await hook.close();
    }
  });

  it('reports a webhook that does not answer within timeoutMs', async () => {
    const hook = await startWebhook(() => undefined); // never answers
    try {
      const started = performance.now();
      const [result] = await alerter({ channels: [{ type: 'webhook', url: hook.url, timeoutMs: 400 }] }).sendTest();
      const elapsed = performance.now() - started;
      expect(result?.error).toMatchObject({ code: AlertsErrorCode.Timeout, message: expect.stringContaining('no answer within 400 ms') });
      expect(elapsed).toBeGreaterThanOrEqual(350);
      expect(elapsed).toBeLessThan(1500);
    } finally {
      await hook.close();
    }
  });

  it('reports a refused connection, and an unset secret variable', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/hook`;
    const [refused, noSecret] = await alerter({
      channels: [
        { type: 'webhook', url },
        { type: 'webhook', url, secretEnv: 'UNSET_SECRET' },
      ],
    }).sendTest();
    expect(refused?.error).toMatchObject({ code: AlertsErrorCode.SendFailed, message: expect.stringContaining('ECONNREFUSED') });
    expect(noSecret?.error?.code).toBe(AlertsErrorCode.SecretMissing);
  });

  it('sends through several channels at once: a failing one does not stop the others', async () => {
    const smtp = await startSmtp({ disabledCommands: ['STARTTLS'] });
    const broken = await startWebhook((res) => res.writeHead(503).end());
    const hook = await startWebhook();
    try {
      const a = alerter({
        channels: [
          { type: 'email', host: '127.0.0.1', port: smtp.port, secure: 'none', from: 'backup@wms.example.com', to: ['ops@example.com'] },
          { type: 'webhook', url: broken.url },
          { type: 'webhook', url: hook.url, secretEnv: 'HOOK_SECRET' },
        ],
      });
      const result = await a.raise(rpo());
      expect(result.channels.map((c) => c.ok)).toEqual([true, false, true]);
      expect(result.sent).toBe(true);
      expect(smtp.mails).toHaveLength(1);
      expect(hook.received).toHaveLength(1);
      expect(broken.received).toHaveLength(1);
    } finally {
      await Promise.all([smtp.close(), broken.close(), hook.close()]);
    }
  });
});
