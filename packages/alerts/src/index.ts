export { Alerts, alertKey, formatDuration, type Alert, type AlertKind, type Severity, type Situation } from './alert.js';
export { Alerter, ALERT_STATE_FILE, type AlerterOptions, type ChannelResult, type RaiseResult, type ResolveResult } from './alerter.js';
export {
  DEFAULT_ANOMALY_OPTIONS,
  detectAnomalies,
  factsOf,
  type AnomalyFinding,
  type AnomalyOptions,
  type BackupFacts,
  type ManifestLike,
} from './anomaly.js';
export { channelLabel, WEBHOOK_SIGNATURE_HEADER, type Env, type WebhookPayload } from './channels.js';
export {
  alertsConfigSchema,
  parseAlertsConfig,
  type AlertsConfig,
  type AlertsConfigInput,
  type ChannelConfig,
  type EmailChannelConfig,
  type WebhookChannelConfig,
} from './config.js';
export { AlertsError, AlertsErrorCode } from './errors.js';
