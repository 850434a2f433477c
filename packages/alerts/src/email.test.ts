import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Alerts } from './alert.js';
import { ALERT_STATE_FILE, Alerter, type AlerterOptions } from './alerter.js';
import { parseAlertsConfig, type AlertsConfigInput } from './config.js';
import { AlertsErrorCode, type AlertsError } from './errors.js';
import { closedPort, startSilentServer, startSmtp } from './test/servers.js';

const T0 = new Date('2024-06-01T02:00:00.000Z');
const env = { STOWAGE_SMTP_PASSWORD: 'correct horse battery staple' };
const emailChannel = (port: number, extra: Record<string, unknown> = {}) => ({
  type: 'email' as const,
  host: '127.0.0.1',
  port,
  secure: 'starttls' as const,
  allowSelfSigned: true,
  user: 'stowage',
  passwordEnv: 'STOWAGE_SMTP_PASSWORD',
  from: 'Stowage <backup@wms.example.com>',
  to: ['ops@example.com', 'oncall@example.com'],
  timeoutMs: 2000,
  ...extra,
});
const backupFailed = (since = T0) =>
  Alerts.backupFailed({ type: 'full', error: 'SQLITE_BUSY: database is locked', where: 'wms-01 (/srv/greaterwms/stowage.config.json)', since });

let dir: string;
let clock: Date;
const errors: AlertsError[] = [];
function alerter(config: AlertsConfigInput, options: Partial<AlerterOptions> = {}) {
  return new Alerter({ config: parseAlertsConfig(config), stateDir: join(dir, 'status'), env, now: () => clock, onError: (e) => errors.push(e), ...options });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-alerts-'));
  clock = T0;
  errors.length = 0;
});
afterEach(() => rm(dir, { recursive: true, force: true }));

describe('email alerts through a real SMTP server (STARTTLS, self-signed, AUTH)', () => {
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  const logins: string[] = [];
  beforeAll(async () => {
    smtp = await startSmtp({
      onAuth(auth, session, callback) {
        logins.push(`${auth.username}:${session.secure ? 'tls' : 'plain'}`);
        if (auth.username === 'stowage' && auth.password === env.STOWAGE_SMTP_PASSWORD) callback(null, { user: auth.username });
        else callback(new Error('Invalid username or password'));
      },
    });
  });
  afterAll(() => smtp.close());
  beforeEach(() => {
    smtp.mails.length = 0;
    logins.length = 0;
  });

  it('raise sends one mail saying what happened, where, since when and the command to look further', async () => {
    clock = new Date(T0.getTime() + 5 * 60_000);
    const result = await alerter({ channels: [emailChannel(smtp.port)] }).raise(backupFailed());
    expect(result).toMatchObject({ sent: true, count: 1, since: T0, channels: [{ channel: `email 127.0.0.1:${smtp.port}`, ok: true }] });
    expect(logins).toEqual(['stowage:tls']); // authenticated only after STARTTLS
    expect(smtp.mails).toHaveLength(1);
    const mail = smtp.mails[0]!;
    expect(mail.subject).toBe('[Stowage CRITICAL] full backup failed (wms-01 (/srv/greaterwms/stowage.config.json))');
    expect(mail.from?.text).toBe('"Stowage" <backup@wms.example.com>');
    expect(mail.to && !Array.isArray(mail.to) ? mail.to.value.map((a) => a.address) : []).toEqual(['ops@example.com', 'oncall@example.com']);
    expect(mail.text).toContain('SQLITE_BUSY: database is locked');
    expect(mail.text).toContain('Where:        wms-01 (/srv/greaterwms/stowage.config.json)');
    expect(mail.text).toContain('Since:        2024-06-01T02:00:00.000Z (5 min ago)');
    expect(mail.text).toContain('Look further: stowage status');
    expect(errors).toEqual([]);
  });

  it('groups identical alerts: nothing within repeatMinutes, a repeat after it, keeping the first since', async () => {
    const a = alerter({ channels: [emailChannel(smtp.port)], repeatMinutes: 60 });
    expect((await a.raise(backupFailed())).sent).toBe(true);
    clock = new Date(T0.getTime() + 59 * 60_000);
    const within = await a.raise(backupFailed(clock));
    expect(within).toMatchObject({ sent: false, count: 2, since: T0, channels: [] });
    expect(smtp.mails).toHaveLength(1);

    // Another process (a new Alerter on the same state) also stays quiet.
    expect((await alerter({ channels: [emailChannel(smtp.port)], repeatMinutes: 60 }).raise(backupFailed(clock))).sent).toBe(false);

    clock = new Date(T0.getTime() + 61 * 60_000);
    const repeat = await a.raise(backupFailed(clock));
    expect(repeat).toMatchObject({ sent: true, count: 4, since: T0 });
    expect(smtp.mails).toHaveLength(2);
    expect(smtp.mails[1]!.subject).toMatch(/^\[Stowage CRITICAL, still firing\] full backup failed/);
    expect(smtp.mails[1]!.text).toContain('Since:        2024-06-01T02:00:00.000Z (61 min ago)');
    expect(smtp.mails[1]!.text).toContain('Raised:       4 times');

    const state = await stat(join(dir, 'status', ALERT_STATE_FILE));
    expect(state.mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(dir, 'status', ALERT_STATE_FILE), 'utf8')).firing['backup-failed:full']).toMatchObject({
      lastSentAt: clock.toISOString(),
      count: 4,
    });
  });

  it('resolve sends one recovery message for a firing key, then nothing', async () => {
    const a = alerter({ channels: [emailChannel(smtp.port)] });
    await a.raise(backupFailed());
    clock = new Date(T0.getTime() + 90 * 60_000);
    expect(await a.firing()).toEqual([{ key: 'backup-failed:full', title: 'full backup failed', since: T0 }]);
    expect(await a.resolve('backup-failed:full')).toMatchObject({ sent: true, channels: [{ ok: true }] });
    expect(smtp.mails).toHaveLength(2);
    expect(smtp.mails[1]!.subject).toBe('[Stowage RESOLVED] full backup failed (wms-01 (/srv/greaterwms/stowage.config.json))');
    expect(smtp.mails[1]!.text).toContain('Since:        2024-06-01T02:00:00.000Z, resolved 2024-06-01T03:30:00.000Z after 90 min');
    expect(await a.resolve('backup-failed:full')).toEqual({ sent: false, channels: [] });
    expect(await a.resolve('rpo-breached')).toEqual({ sent: false, channels: [] });
    expect(await a.firing()).toEqual([]);
    expect(smtp.mails).toHaveLength(2);
  });

  it('sendTest reaches every channel', async () => {
    const results = await alerter({ channels: [emailChannel(smtp.port), emailChannel(smtp.port, { to: ['second@example.com'] })] }).sendTest();
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(smtp.mails.map((m) => m.subject)).toEqual([expect.stringMatching(/^\[Stowage TEST\]/), expect.stringMatching(/^\[Stowage TEST\]/)]);
  });

  it('a damaged state file is reported and started afresh; the alert still goes out', async () => {
    const a = alerter({ channels: [emailChannel(smtp.port)] });
    await a.raise(backupFailed());
    await writeFile(join(dir, 'status', ALERT_STATE_FILE), '{"version": 1, "firing": {"x": ');
    expect((await a.raise(backupFailed())).sent).toBe(true);
    expect(errors.map((e) => e.code)).toEqual([AlertsErrorCode.StateFailed]);
    expect(smtp.mails).toHaveLength(2);
  });

  it('reports a refused login without throwing, and tries again on the next raise', async () => {
    const a = alerter({ channels: [emailChannel(smtp.port)] }, { env: { STOWAGE_SMTP_PASSWORD: 'wrong' } });
    const result = await a.raise(backupFailed());
    expect(result.sent).toBe(false);
    expect(result.channels[0]?.error).toMatchObject({ code: AlertsErrorCode.SendFailed, context: { code: 'EAUTH', responseCode: 535 } });
    expect(result.channels[0]?.error?.message).not.toContain('wrong');
    expect(errors).toEqual([result.channels[0]?.error]);
    expect((await a.raise(backupFailed())).channels).toHaveLength(1); // not suppressed: nobody was told
    expect(smtp.mails).toHaveLength(0);
  });

  it('reports an unset password variable as secret_missing', async () => {
    const [result] = await alerter({ channels: [emailChannel(smtp.port)] }, { env: {} }).sendTest();
    expect(result?.error).toMatchObject({ code: AlertsErrorCode.SecretMissing, message: expect.stringContaining('STOWAGE_SMTP_PASSWORD') });
  });
});

describe('email alerts: implicit TLS, and servers that are down or hang', () => {
  it('delivers over implicit TLS (port 465 style)', async () => {
    const smtp = await startSmtp({ secure: true });
    try {
      const [result] = await alerter({ channels: [emailChannel(smtp.port, { secure: 'tls', user: undefined, passwordEnv: undefined })] }).sendTest();
      expect(result).toMatchObject({ ok: true });
      expect(smtp.mails).toHaveLength(1);
    } finally {
      await smtp.close();
    }
  });

  it('refuses to send when STARTTLS is required but not offered', async () => {
    const smtp = await startSmtp({ disabledCommands: ['STARTTLS'] });
    try {
      const [result] = await alerter({ channels: [emailChannel(smtp.port, { user: undefined, passwordEnv: undefined })] }).sendTest();
      expect(result).toMatchObject({ ok: false, error: { code: AlertsErrorCode.SendFailed } });
      expect(smtp.mails).toHaveLength(0);
    } finally {
      await smtp.close();
    }
  });

  it('reports a server that is down quickly, without throwing', async () => {
    const started = performance.now();
    const result = await alerter({ channels: [emailChannel(await closedPort())] }).raise(backupFailed());
    expect(performance.now() - started).toBeLessThan(2000);
    expect(result.sent).toBe(false);
    expect(result.channels[0]?.error).toMatchObject({ code: AlertsErrorCode.SendFailed, message: expect.stringMatching(/ECONNREFUSED/) });
    expect(errors).toHaveLength(1);
  });

  it('gives up on a server that never answers after timeoutMs', async () => {
    const silent = await startSilentServer();
    try {
      const started = performance.now();
      const [result] = await alerter({ channels: [emailChannel(silent.port, { timeoutMs: 500 })] }).sendTest();
      const elapsed = performance.now() - started;
      expect(result?.error?.code).toBe(AlertsErrorCode.Timeout);
      expect(elapsed).toBeGreaterThanOrEqual(450);
      expect(elapsed).toBeLessThan(2000);
    } finally {
      await silent.close();
    }
  });
});
