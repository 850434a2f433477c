import { describe, expect, it } from 'vitest';
import { Alerts } from './alert.js';
import { detectAnomalies, factsOf, type BackupFacts } from './anomaly.js';

const MiB = 1 << 20;

/** Fourteen daily fulls of a GreaterWMS-like database growing slowly, with a little noise. */
function history(count = 14): BackupFacts[] {
  return Array.from({ length: count }, (_, day) => {
    const wiggle = [0, 3, -2, 5, -4, 1, 2, -1, 4, -3, 0, 2, -2, 1][day % 14]!;
    const rows = 50_000 + day * 120 + wiggle * 40;
    return {
      id: `full_backup_202406${String(day + 1).padStart(2, '0')}_020000`,
      type: 'full',
      dbSize: 40 * MiB + day * 96 * 1024 + wiggle * 8192,
      pageCount: (40 * MiB + day * 96 * 1024) / 4096,
      tables: { stock_list: rows, goods: 3_200 + day, django_session: 40 + wiggle, binset: 12 },
      encodedSize: Math.round((40 * MiB + day * 96 * 1024) / 4.2),
      decodedSize: 40 * MiB + day * 96 * 1024,
    };
  });
}
const next = (change: Partial<BackupFacts> = {}, tables: Record<string, number> = {}): BackupFacts => {
  const last = history().at(-1)!;
  return { ...last, id: 'full_backup_20240615_020000', ...change, tables: { ...last.tables, ...tables } };
};

describe('detectAnomalies', () => {
  it('finds nothing in a steady history, nor in small moves of small tables', () => {
    expect(detectAnomalies(next({ dbSize: history().at(-1)!.dbSize + 100 * 1024 }, { django_session: 2, binset: 0 }), history())).toEqual([]);
  });

  it('flags a table that lost 95 % of its rows as critical', () => {
    const [finding, ...rest] = detectAnomalies(next({}, { stock_list: 2_580 }), history());
    expect(rest).toEqual([]);
    expect(finding).toMatchObject({ metric: 'table:stock_list', value: 2_580, severity: 'critical' });
    expect(finding?.reason).toMatch(/^table stock_list lost 95 % of its rows: 2580 rows, usually 508\d\d rows over the last 14 full backups$/);
  });

  it('flags a table that vanished', () => {
    const { goods: _goods, ...tables } = history().at(-1)!.tables;
    const findings = detectAnomalies({ ...next(), tables }, history());
    expect(findings).toEqual([
      expect.objectContaining({ metric: 'table:goods', value: 0, severity: 'critical', reason: expect.stringMatching(/^table goods is gone/) }),
    ]);
  });

  it('flags a database that tripled in size, and a table that jumped', () => {
    const last = history().at(-1)!;
    const findings = detectAnomalies(
      next({ dbSize: last.dbSize * 3, encodedSize: last.encodedSize * 3, decodedSize: last.decodedSize * 3 }, { goods: 9_000 }),
      history(),
    );
    expect(findings.map((f) => [f.metric, f.severity])).toEqual([
      ['dbSize', 'warning'],
      ['encodedSize', 'warning'],
      ['table:goods', 'warning'],
    ]);
    const [db] = findings;
    expect(db!.value).toBeGreaterThan(db!.band.high);
    expect(db!.reason).toMatch(/^the database size is 1\d\d\.\d MiB, above the usual 4\d\.\d MiB \(band .* over the last 14 full backups\)$/);
  });

  it('flags a compression ratio collapse (data turned incompressible) as critical', () => {
    const last = history().at(-1)!;
    const findings = detectAnomalies(next({ encodedSize: Math.round(last.decodedSize / 1.02) }), history());
    expect(findings.map((f) => f.metric)).toEqual(['encodedSize', 'compressionRatio']);
    expect(findings[1]).toMatchObject({ severity: 'critical', value: expect.closeTo(1.02, 2) });
    expect(findings[1]!.reason).toMatch(/compressed 1\.02:1, usually 4\.20:1 .*ransomware/);
  });

  it('does not band the stored size of incrementals, whose deltas follow the activity', () => {
    const incrementals = history().map((h, i) => ({
      ...h,
      type: 'incremental',
      encodedSize: 200_000 + (i % 3) * 10_000,
      decodedSize: 800_000 + (i % 3) * 40_000,
    }));
    const busy = { ...incrementals.at(-1)!, id: 'inc_backup_20240615_100000', encodedSize: 2_000_000, decodedSize: 8_000_000 };
    expect(detectAnomalies(busy, incrementals)).toEqual([]);
  });

  it('needs at least 3 backups of the same type before judging', () => {
    const crash = next({ dbSize: MiB }, { stock_list: 0 });
    expect(detectAnomalies(crash, history(2))).toEqual([]);
    expect(
      detectAnomalies(
        crash,
        history().map((h) => ({ ...h, type: 'hot' })),
      ),
    ).toEqual([]);
    expect(detectAnomalies(crash, history(3)).length).toBeGreaterThan(0);
  });

  it('is robust: one odd backup in the history does not widen the band', () => {
    const odd = history();
    odd[5] = { ...odd[5]!, dbSize: odd[5]!.dbSize * 10 };
    expect(detectAnomalies(next({ dbSize: history().at(-1)!.dbSize * 2 }), odd).map((f) => f.metric)).toEqual(['dbSize']);
  });

  it('reads the facts of a manifest: the database artifact only', () => {
    const facts = factsOf({
      id: 'inc_backup_20240601_030000',
      type: 'incremental',
      source: { size: 8192, pageCount: 2, tables: { goods: 3 } },
      artifacts: [
        { role: 'delta', size: 100, decodedSize: 400 },
        { role: 'page-hashes', size: 30, decodedSize: 64 },
        { role: 'files', size: 5000, decodedSize: 5100 },
      ],
    });
    expect(facts).toEqual({
      id: 'inc_backup_20240601_030000',
      type: 'incremental',
      dbSize: 8192,
      pageCount: 2,
      tables: { goods: 3 },
      encodedSize: 100,
      decodedSize: 400,
    });
  });

  it('turns findings into one size-anomaly alert, critical when a finding is', () => {
    const findings = detectAnomalies(next({}, { stock_list: 10 }), history());
    const alert = Alerts.sizeAnomaly({ type: 'full', backupId: 'full_backup_20240615_020000', findings, where: 'wms-01', since: new Date(0) });
    expect(alert).toMatchObject({ key: 'size-anomaly:full', severity: 'critical', command: 'stowage list --type full' });
    expect(alert.title).toBe('full backup full_backup_20240615_020000 looks unusual: table:stock_list');
    expect(alert.details).toMatch(/^- table stock_list lost 100 % of its rows/);
  });
});
