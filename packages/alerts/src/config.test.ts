import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { alertsConfigSchema, parseAlertsConfig } from './config.js';
import { AlertsErrorCode } from './errors.js';

const email = { type: 'email', host: 'smtp.example.com', from: 'backup@example.com', to: ['ops@example.com'] };
const problemsOf = (input: unknown): string[] => {
  try {
    parseAlertsConfig(input);
  } catch (error) {
    expect(error).toMatchObject({ code: AlertsErrorCode.InvalidConfig });
    return (error as { context: { problems: string[] } }).context.problems;
  }
  throw new Error('expected the config to be refused');
};

describe('alertsConfigSchema', () => {
  it('applies the defaults', () => {
    expect(parseAlertsConfig({ channels: [email, { type: 'webhook', url: 'https://hooks.example.com/stowage' }] })).toEqual({
      channels: [
        { ...email, secure: 'starttls', allowSelfSigned: false, timeoutMs: 10_000 },
        { type: 'webhook', url: 'https://hooks.example.com/stowage', timeoutMs: 10_000 },
      ],
      repeatMinutes: 60,
      lockHeldMinutes: 120,
    });
  });

  it('maps the seed settings (EMAIL_HOST, EMAIL_PORT, EMAIL_USE_TLS, BACKUP_ALERT_EMAILS)', () => {
    const config = parseAlertsConfig({
      channels: [
        {
          type: 'email',
          host: 'smtp.example.com', // EMAIL_HOST
          port: 587, // EMAIL_PORT
          secure: 'starttls', // EMAIL_USE_TLS = True
          user: 'backup@example.com', // EMAIL_HOST_USER
          passwordEnv: 'EMAIL_HOST_PASSWORD',
          from: 'backup@example.com', // DEFAULT_FROM_EMAIL
          to: ['ops@example.com', 'dba@example.com'], // BACKUP_ALERT_EMAILS
        },
      ],
    });
    expect(config.channels[0]).toMatchObject({ secure: 'starttls', port: 587, passwordEnv: 'EMAIL_HOST_PASSWORD' });
  });

  it('refuses literal secrets, saying where they go instead', () => {
    expect(problemsOf({ channels: [{ ...email, user: 'u', password: 'hunter2' }] })).toEqual([
      'alerts.channels.0.password: secrets never go in the config: put the SMTP password in an environment variable and name it in passwordEnv',
    ]);
    expect(problemsOf({ channels: [{ type: 'webhook', url: 'https://h.example.com', secret: 's3cr3t' }] })).toEqual([
      'alerts.channels.0.secret: secrets never go in the config: put the webhook secret in an environment variable and name it in secretEnv',
    ]);
  });

  it('refuses what cannot work', () => {
    expect(problemsOf({ channels: [] })).toEqual(['alerts.channels: configure at least one channel']);
    expect(problemsOf({ channels: [{ ...email, secure: 'none', user: 'u', passwordEnv: 'P' }] })).toEqual([
      'alerts.channels.0.secure: a password would travel in clear text: use secure "starttls" or "tls"',
    ]);
    expect(
      problemsOf({
        channels: [
          { ...email, to: ['ops'] },
          { type: 'webhook', url: 'ftp://h.example.com' },
        ],
        repeatMinutes: 0,
      }),
    ).toEqual([
      'alerts.channels.0.to.0: expected an email address such as ops@example.com',
      'alerts.channels.1.url: expected an http:// or https:// URL',
      'alerts.repeatMinutes: Too small: expected number to be >0',
    ]);
    expect(problemsOf({ channels: [{ ...email, passwordEnv: 'not a name', user: 'u' }] })[0]).toMatch(/passwordEnv: expected an environment variable name/);
  });

  it('has a JSON schema (for the config file schema the CLI ships)', () => {
    const schema = z.toJSONSchema(alertsConfigSchema, { io: 'input' }) as { required: string[]; properties: Record<string, unknown> };
    expect(schema.required).toEqual(['channels']);
    expect(Object.keys(schema.properties)).toEqual(['channels', 'repeatMinutes', 'lockHeldMinutes']);
  });
});
