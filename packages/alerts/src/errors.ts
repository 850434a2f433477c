import { StowageError } from '@stowage/errors';

/** Stable codes of alert errors. */
export const AlertsErrorCode = {
  /** The `alerts` config section is invalid (a literal secret, a missing field, a bad URL). */
  InvalidConfig: 'stowage.alerts.invalid_config',
  /** The environment variable a channel names for its password or secret is unset or empty. */
  SecretMissing: 'stowage.alerts.secret_missing',
  /** A channel could not deliver: SMTP refused or failed, the webhook answered other than 2xx. */
  SendFailed: 'stowage.alerts.send_failed',
  /** A channel did not answer within its `timeoutMs`. */
  Timeout: 'stowage.alerts.timeout',
  /** The alert state file could not be read or written (alerts are still sent). */
  StateFailed: 'stowage.alerts.state_failed',
} as const;
export type AlertsErrorCode = (typeof AlertsErrorCode)[keyof typeof AlertsErrorCode];

/** An error of `@stowage/alerts`; `code` is one of `AlertsErrorCode`. */
export class AlertsError extends StowageError<AlertsErrorCode> {
  override readonly name: string = 'AlertsError';
}
