/** Formats of `stowage schedule print --format` (apart from schedule.ts: the CLI's option definitions load no renderer). */
export const SCHEDULE_FORMATS = ['crontab', 'schtasks', 'systemd', 'compose'] as const;
export type ScheduleFormat = (typeof SCHEDULE_FORMATS)[number];
