/** What size anomaly detection compares between backups of one type. */
export interface BackupFacts {
  id: string;
  type: string;
  /** Database size in bytes (`source.size`). */
  dbSize: number;
  /** Database pages (`source.pageCount`); moves with `dbSize`, so it is not checked separately. */
  pageCount: number;
  /** Rows per table (`source.tables`). */
  tables: Record<string, number>;
  /** Stored bytes of the database artifact (image or delta), compressed and encrypted. */
  encodedSize: number;
  /** Bytes of that artifact once decoded. */
  decodedSize: number;
}

/** The parts of a Stowage manifest `factsOf` reads (core's `Manifest` fits). */
export interface ManifestLike {
  id: string;
  type: string;
  source: { size: number; pageCount: number; tables: Record<string, number> };
  artifacts: ReadonlyArray<{ role: string; size: number; decodedSize: number }>;
}

/** The facts of a backup from its manifest: the database artifact only, so media archives do not mask the database. */
export function factsOf(manifest: ManifestLike): BackupFacts {
  const database = manifest.artifacts.filter((a) => a.role === 'database' || a.role === 'delta');
  return {
    id: manifest.id,
    type: manifest.type,
    dbSize: manifest.source.size,
    pageCount: manifest.source.pageCount,
    tables: { ...manifest.source.tables },
    encodedSize: database.reduce((sum, a) => sum + a.size, 0),
    decodedSize: database.reduce((sum, a) => sum + a.decodedSize, 0),
  };
}

export interface AnomalyOptions {
  /** Newest history points used (default 14). */
  window?: number;
  /** Fewer history points than this: no finding at all (default 3). */
  minHistory?: number;
  /** Band half-width in robust standard deviations, 1.4826 · MAD (default 5). */
  k?: number;
  /** Minimum band half-width relative to the median (default 0.2: ±20 %). */
  minRelativeBand?: number;
  /** A table that lost at least this share of its usual rows is a critical finding (default 0.9). */
  tableDrop?: number;
  /** Tables with a usual row count below this are not checked (default 100). */
  minTableRows?: number;
  /** A compression ratio below this … (default 1.5) */
  ratioFloor?: number;
  /** … when the usual ratio is above this, is a critical finding (default 3). */
  ratioNormal?: number;
}

export const DEFAULT_ANOMALY_OPTIONS: Required<AnomalyOptions> = {
  window: 14,
  minHistory: 3,
  k: 5,
  minRelativeBand: 0.2,
  tableDrop: 0.9,
  minTableRows: 100,
  ratioFloor: 1.5,
  ratioNormal: 3,
};

export interface AnomalyFinding {
  /** `dbSize`, `encodedSize`, `compressionRatio` or `table:<name>`. */
  metric: string;
  value: number;
  /** Median of the metric over the history. */
  median: number;
  /** The robust band: median ± max(k · 1.4826 · MAD, minRelativeBand · median). */
  band: { low: number; high: number };
  severity: 'critical' | 'warning';
  reason: string;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const bytes = (n: number) =>
  n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
const rows = (n: number) => `${Math.round(n)} rows`;
const ratio = (n: number) => `${n.toFixed(2)}:1`;

/**
 * Compares a new backup with the backups of the same type before it (oldest first; the newest
 * `window` are used) and returns what looks wrong. Pure: no I/O, no clock.
 *
 * The band is robust, so one odd backup in the history does not widen it: for each metric the
 * median m and the median absolute deviation MAD of the history; 1.4826 · MAD estimates the
 * standard deviation of normally distributed values, and a value outside
 * m ± max(k · 1.4826 · MAD, minRelativeBand · m) is flagged. The relative floor keeps a
 * near-constant history (MAD ≈ 0) from flagging tiny changes. Checked: the database size, the
 * stored size (not for incrementals, whose deltas follow the day's activity), and the rows of
 * every table of the newest history point with at least `minTableRows` usual rows. Critical: a
 * table that lost ≥ `tableDrop` of its rows (or vanished), and a compression ratio
 * (decoded/encoded) below `ratioFloor` where it used to be above `ratioNormal` — data turned
 * incompressible, as files encrypted by ransomware do. Fewer than `minHistory` points: nothing.
 */
export function detectAnomalies(current: BackupFacts, history: readonly BackupFacts[], options: AnomalyOptions = {}): AnomalyFinding[] {
  const o = { ...DEFAULT_ANOMALY_OPTIONS, ...options };
  const past = history.filter((h) => h.type === current.type && h.id !== current.id).slice(-o.window);
  const newest = past.at(-1);
  if (!newest || past.length < o.minHistory) return [];
  const over = `over the last ${past.length} ${current.type} backups`;
  const findings: AnomalyFinding[] = [];

  const band = (values: readonly number[]) => {
    const m = median(values);
    const mad = median(values.map((v) => Math.abs(v - m)));
    const half = Math.max(o.k * 1.4826 * mad, o.minRelativeBand * Math.abs(m));
    return { median: m, band: { low: m - half, high: m + half } };
  };
  const checkBand = (metric: string, what: string, value: number, values: readonly number[], format: (n: number) => string) => {
    const b = band(values);
    if (value >= b.band.low && value <= b.band.high) return;
    const direction = value > b.band.high ? 'above' : 'below';
    const reason = `${what} is ${format(value)}, ${direction} the usual ${format(b.median)} (band ${format(Math.max(0, b.band.low))}–${format(b.band.high)} ${over})`;
    findings.push({ metric, value, ...b, severity: 'warning', reason });
  };

  checkBand(
    'dbSize',
    'the database size',
    current.dbSize,
    past.map((p) => p.dbSize),
    bytes,
  );
  if (current.type !== 'incremental')
    checkBand(
      'encodedSize',
      'the stored size',
      current.encodedSize,
      past.map((p) => p.encodedSize),
      bytes,
    );

  for (const table of Object.keys(newest.tables)) {
    const values = past.flatMap((p) => (p.tables[table] === undefined ? [] : [p.tables[table]]));
    if (values.length < o.minHistory || median(values) < o.minTableRows) continue;
    const value = current.tables[table] ?? 0;
    const b = band(values);
    if (value <= b.median * (1 - o.tableDrop)) {
      const lost = current.tables[table] === undefined ? 'is gone' : `lost ${Math.round((1 - value / b.median) * 100)} % of its rows`;
      const reason = `table ${table} ${lost}: ${rows(value)}, usually ${rows(b.median)} ${over}`;
      findings.push({ metric: `table:${table}`, value, ...b, severity: 'critical', reason });
    } else {
      checkBand(`table:${table}`, `table ${table}`, value, values, rows);
    }
  }

  const ratios = past.filter((p) => p.encodedSize > 0).map((p) => p.decodedSize / p.encodedSize);
  if (current.encodedSize > 0 && ratios.length >= o.minHistory) {
    const value = current.decodedSize / current.encodedSize;
    const b = band(ratios);
    if (value < o.ratioFloor && b.median > o.ratioNormal) {
      const reason = `the database compressed ${ratio(value)}, usually ${ratio(b.median)} ${over}: its data turned incompressible, as files encrypted by ransomware do`;
      findings.push({ metric: 'compressionRatio', value, ...b, severity: 'critical', reason });
    }
  }
  return findings;
}
