/*
 * The status page as one self-contained HTML document: CSS, the charts (SVG drawn here, on the
 * server) and a few lines of script, all inline; a report file also carries its data as JSON (the
 * served page has it at `api/dashboard`). It makes
 * no request of its own except, when served over HTTP, polling `api/status` to keep the health badge
 * current; its Content-Security-Policy forbids every other load. Every text from the catalog is
 * escaped: a backup's `--reason` is user input.
 */
import { createHash } from 'node:crypto';
import { formatAge } from '@stowage/core';
import { formatBytes, formatDuration } from '../output.js';
import type { Dashboard, DashboardBackup, ReplicaCell, ReplicaState } from './model.js';

const SCRIPT = `(() => {
  // The matrix shows one page of rows; the other pages wait in inert templates until asked for.
  const body = document.querySelector('#matrix tbody');
  const templates = [...document.querySelectorAll('#matrix-pages template')];
  const pages = [[...body.children]];
  const rowsOf = (i) => (pages[i] ??= [...templates[i - 1].content.cloneNode(true).children]);
  const only = document.getElementById('matrix-problems');
  const shown = document.getElementById('matrix-shown');
  const newer = document.getElementById('matrix-newer');
  const older = document.getElementById('matrix-older');
  let page = 0;
  const show = () => {
    if (only.checked) {
      const rows = templates.flatMap((_, i) => rowsOf(i + 1)).concat(rowsOf(0)).filter((row) => row.classList.contains('has-problem'));
      body.replaceChildren(...rows.sort((a, b) => Number(a.dataset.row) - Number(b.dataset.row)));
    } else {
      body.replaceChildren(...rowsOf(page));
    }
    const first = Number(body.firstElementChild?.dataset.row ?? 0);
    if (only.checked) shown.textContent = body.children.length + ' with a problem, of ' + shown.dataset.total;
    else if (body.children.length) shown.textContent = 'backups ' + (first + 1) + '–' + (first + body.children.length) + ' of ' + shown.dataset.total;
    newer.disabled = only.checked || page === 0;
    older.disabled = only.checked || page === templates.length;
  };
  only.addEventListener('change', show);
  newer.addEventListener('click', () => { page--; show(); });
  older.addEventListener('click', () => { page++; show(); });
  show();
  if (!location.protocol.startsWith('http')) return;
  setInterval(async () => {
    const response = await fetch('api/status', { credentials: 'same-origin' }).catch(() => undefined);
    if (!response || !response.ok) return;
    const status = await response.json();
    const health = document.getElementById('health');
    health.dataset.healthy = String(status.ok);
    health.querySelector('.badge').textContent = status.ok ? 'HEALTHY' : 'UNHEALTHY';
    document.getElementById('checked-at').textContent = status.at;
  }, 60000);
})();`;

/** The page's Content-Security-Policy (a header when served, a meta tag in a report): inline styles, this one script, `connect-src` only when served. */
export function contentSecurityPolicy(served: boolean): string {
  const scriptHash = createHash('sha256').update(SCRIPT).digest('base64');
  return [
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    `script-src 'sha256-${scriptHash}'`,
    `connect-src ${served ? "'self'" : "'none'"}`,
    "base-uri 'none'",
    "form-action 'none'",
    ...(served ? ["frame-ancestors 'none'"] : []),
  ].join('; ');
}

const TYPE_COLORS = { full: '#2563eb', incremental: '#16a34a', hot: '#c026d3' } as const;
const STATE_LABELS: Record<ReplicaState, string> = {
  verified: '✓ verified',
  archived: '❄ archived',
  unverified: '? unverified',
  damaged: '✗ damaged',
  missing: '– missing',
  pruned: 'pruned',
};
const PROBLEM_STATES: ReadonlySet<ReplicaState> = new Set(['damaged', 'missing', 'unverified']);

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
const e = escapeHtml;
/** `2026-12-05 14:02Z`: times on the page are UTC, rendered on the server. */
const when = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 16)}Z`;

/** The whole page. `served`: over HTTP (the badge polls `api/status`) rather than a report file. */
export function renderDashboard(d: Dashboard, options: { served: boolean }): string {
  const { status: s } = d;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${options.served ? '' : `<meta http-equiv="Content-Security-Policy" content="${e(contentSecurityPolicy(false))}">\n`}<title>Stowage — ${s.healthy ? 'healthy' : 'UNHEALTHY'}</title>
<style>${CSS}</style>
</head>
<body>
<header id="health" data-healthy="${s.healthy}">
  <span class="badge">${s.healthy ? 'HEALTHY' : 'UNHEALTHY'}</span>
  <h1>Stowage status</h1>
  <span class="meta">as of <span id="checked-at">${e(s.at)}</span> · RPO target ${e(s.targets.rpo)} · RTO target ${e(s.targets.rto)} · stowage ${e(d.tool)}${options.served ? '' : ' · report'}</span>
</header>
<main>
${renderHealth(d)}
<section><h2>Backups, last ${d.days} days</h2>${renderTimeline(d)}</section>
<section><h2>Stored size per backup and database size</h2>${renderSizes(d)}</section>
<section><h2>Replicas</h2>${renderMatrix(d)}</section>
<section class="two">
<div><h2>Restore drills</h2>${renderDrills(d)}</div>
<div><h2>Last verify</h2>${renderVerify(d)}</div>
</section>
<section><h2>Audit log (newest ${d.audit.length})</h2>${renderAudit(d)}</section>
</main>
${options.served ? '' : `<script type="application/json" id="dashboard-data">${JSON.stringify(d).replace(/</g, '\\u003c')}</script>\n`}<script>${SCRIPT}</script>
</body>
</html>
`;
}

function renderHealth(d: Dashboard): string {
  const { status: s } = d;
  const rpo = s.rpo.ageMs === null ? 'no full or incremental backup yet' : `newest ${e(s.rpo.newest ?? '')}, ${formatAge(s.rpo.ageMs)} old`;
  const drill = s.lastDrill
    ? `${s.lastDrill.ok ? 'passed' : 'FAILED'}: usable after ${formatDuration(s.lastDrill.rtoMs)} (${when(s.lastDrill.startedAt)})`
    : 'no drill yet';
  const cards = d.destinations.map((h) => {
    const listed = s.destinations.find((x) => x.name === h.name);
    const ok = (listed?.reachable ?? false) && h.verifiedRpo.ok;
    const verified =
      h.verifiedRpo.ageMs === null ? 'no verified backup' : `verified RPO ${formatAge(h.verifiedRpo.ageMs)} (${e(h.verifiedRpo.backupId ?? '')})`;
    return `<div class="card ${ok ? 'ok' : 'bad'}" data-destination="${e(h.name)}" data-verified-rpo-ok="${h.verifiedRpo.ok}">
  <h3>${e(h.name)}${h.archiveClass ? ` <small>${e(h.archiveClass)}</small>` : ''}</h3>
  <p>${listed?.reachable ? `newest ${e(listed.newest ?? '(none)')}` : `UNREACHABLE: ${e(listed?.error ?? 'not listed')}`}</p>
  <p>${verified}</p>
</div>`;
  });
  const list = (items: string[], cls: string) => (items.length ? `<ul class="${cls}">${items.map((i) => `<li>${e(i)}</li>`).join('')}</ul>` : '');
  return `<section id="overview">
<div class="cards">
<div class="card ${s.rpo.ok ? 'ok' : 'bad'}" id="rpo"><h3>RPO</h3><p>${rpo}</p><p>target ${e(s.targets.rpo)}</p></div>
<div class="card ${s.lastDrill?.withinRto ? 'ok' : 'bad'}" id="rto"><h3>RTO (last drill)</h3><p>${drill}</p><p>target ${e(s.targets.rto)}</p></div>
${cards.join('\n')}
</div>
<div id="alerts">${d.firing.length ? `<h3>Firing alerts</h3><ul class="problems">${d.firing.map((a) => `<li data-alert="${e(a.key)}">${e(a.title)} <small>since ${when(a.since)}</small></li>`).join('')}</ul>` : '<p class="quiet">No alerts firing.</p>'}</div>
${list(s.problems, 'problems')}${list(s.warnings, 'warnings')}
</section>`;
}

/** The x scale of the charts: the last `days` days up to the page's time. */
function timeScale(d: Dashboard, left: number, width: number) {
  const end = Date.parse(d.generatedAt);
  const start = end - d.days * 86_400_000;
  const x = (iso: string) => left + ((Date.parse(iso) - start) / (end - start)) * width;
  const ticks = Array.from({ length: 7 }, (_, i) => new Date(start + (i * (end - start)) / 6).toISOString());
  return { start, x, ticks };
}

const W = 960;
const LEFT = 150;
const PLOT = W - LEFT - 20;

function renderTimeline(d: Dashboard): string {
  const { start, x, ticks } = timeScale(d, LEFT, PLOT);
  const lanes = [...d.destinations.map((h) => h.name), 'failed / degraded runs'];
  const laneY = (i: number) => 30 + i * 30;
  const height = laneY(lanes.length) + 4;
  const inWindow = (iso: string) => Date.parse(iso) >= start;
  const byId = new Map(d.backups.map((b) => [b.id, b]));
  const marks: string[] = [];
  d.destinations.forEach((h, lane) => {
    for (const cell of d.replicas) {
      const backup = byId.get(cell.backupId)!;
      if (cell.destination !== h.name || cell.state === 'pruned' || !inWindow(backup.createdAt)) continue;
      const cx = x(backup.createdAt).toFixed(1);
      // Lean markup: a month of hourly backups at four destinations is thousands of marks.
      const title = `${backup.id} at ${h.name}: ${cell.state}${cell.problem ? ` — ${cell.problem}` : ''}`;
      marks.push(
        `<circle class="mark ${backup.type} ${cell.state}" cx="${cx}" cy="${laneY(lane)}" r="${backup.type === 'full' ? 6 : 4}" data-destination="${e(h.name)}" data-state="${cell.state}"><title>${e(title)}</title></circle>`,
      );
    }
  });
  const runLane = laneY(lanes.length - 1);
  for (const run of d.runs.filter((r) => r.outcome !== 'ok' && inWindow(r.time))) {
    const cx = x(run.time);
    const title = `${run.type} backup ${run.backupId ?? ''} ${run.outcome} ${when(run.time)}${run.detail ? ` — ${run.detail}` : ''}`;
    const shape =
      run.outcome === 'failed'
        ? `M${cx - 5},${runLane - 5}L${cx + 5},${runLane + 5}M${cx - 5},${runLane + 5}L${cx + 5},${runLane - 5}`
        : `M${cx},${runLane - 6}L${cx + 6},${runLane}L${cx},${runLane + 6}L${cx - 6},${runLane}Z`;
    marks.push(
      `<path class="run ${e(run.outcome)}" d="${shape}" data-outcome="${e(run.outcome)}" data-type="${e(run.type)}" data-time="${e(run.time)}"><title>${e(title)}</title></path>`,
    );
  }
  const grid = ticks
    .map(
      (t) =>
        `<line class="grid" x1="${x(t)}" x2="${x(t)}" y1="12" y2="${height}"/><text class="tick" x="${x(t)}" y="10" text-anchor="middle">${t.slice(5, 10)}</text>`,
    )
    .join('');
  const labels = lanes
    .map(
      (name, i) =>
        `<text class="lane" x="${LEFT - 10}" y="${laneY(i) + 4}" text-anchor="end">${e(name)}</text><line class="lane-line" x1="${LEFT}" x2="${LEFT + PLOT}" y1="${laneY(i)}" y2="${laneY(i)}"/>`,
    )
    .join('');
  return `<svg id="timeline" viewBox="0 0 ${W} ${height}" width="100%" role="img" aria-label="backups per destination over the last ${d.days} days">${grid}${labels}${marks.join('')}</svg>
${legend([...Object.entries(TYPE_COLORS).map(([type, color]) => `<i style="background:${color}"></i>${type}`), '<i class="ring"></i>missing there', '<i class="dmg"></i>damaged', '<b class="x">×</b>failed run', '<b class="deg">◆</b>degraded run'])}`;
}

function renderSizes(d: Dashboard): string {
  const { start, x, ticks } = timeScale(d, LEFT, PLOT);
  const shown = d.backups.filter((b) => Date.parse(b.createdAt) >= start);
  const top = 20;
  const height = 220;
  const bottom = height - 24;
  const max = Math.max(1, ...shown.map((b) => Math.max(b.size, b.storedBytes)));
  const y = (bytes: number) => bottom - (bytes / max) * (bottom - top);
  const width = Math.min(12, Math.max(2, (PLOT / Math.max(1, shown.length)) * 0.6));
  const bars = shown.map((b) => bar(b, x(b.createdAt), width, y, bottom)).join('');
  const line = shown.map((b, i) => `${i ? 'L' : 'M'}${x(b.createdAt).toFixed(1)},${y(b.size).toFixed(1)}`).join('');
  const dots =
    shown.length <= 100 ? shown.map((b) => `<circle class="db-point" cx="${x(b.createdAt).toFixed(1)}" cy="${y(b.size).toFixed(1)}" r="2.5"/>`).join('') : '';
  const axis = [0, 0.5, 1]
    .map(
      (f) =>
        `<line class="grid" x1="${LEFT}" x2="${LEFT + PLOT}" y1="${y(max * f)}" y2="${y(max * f)}"/><text class="tick" x="${LEFT - 8}" y="${y(max * f) + 4}" text-anchor="end">${formatBytes(max * f)}</text>`,
    )
    .join('');
  const xTicks = ticks.map((t) => `<text class="tick" x="${x(t)}" y="${height - 6}" text-anchor="middle">${t.slice(5, 10)}</text>`).join('');
  const anomalies = shown.filter((b) => b.anomalies.length).length;
  return `<svg id="sizes" viewBox="0 0 ${W} ${height}" width="100%" role="img" aria-label="stored bytes per backup and database size">${axis}${xTicks}${bars}${line ? `<path class="db-size" d="${line}"/>` : ''}${dots}</svg>
${legend([...Object.entries(TYPE_COLORS).map(([type, color]) => `<i style="background:${color}"></i>stored (${type})`), '<i class="line"></i>database size', `<b class="anomaly-key">▲</b>size anomaly (${anomalies})`])}`;
}

function bar(b: DashboardBackup, cx: number, width: number, y: (bytes: number) => number, bottom: number): string {
  const top = y(b.storedBytes);
  const title = `${b.id}: ${formatBytes(b.storedBytes)} stored, database ${formatBytes(b.size)}${b.anomalies.length ? ` — ${b.anomalies.join('; ')}` : ''}`;
  const marker = b.anomalies.length ? `<path class="anomaly" d="M${cx},${top - 12}l5,9h-10z" data-backup="${e(b.id)}"><title>${e(title)}</title></path>` : '';
  return `<rect class="bar" x="${(cx - width / 2).toFixed(1)}" y="${top.toFixed(1)}" width="${width.toFixed(1)}" height="${Math.max(1, bottom - top).toFixed(1)}" fill="${TYPE_COLORS[b.type]}" data-backup="${e(b.id)}" data-type="${b.type}" data-stored="${b.storedBytes}" data-db-size="${b.size}" data-anomaly="${b.anomalies.length > 0}"><title>${e(title)}</title></rect>${marker}`;
}

/** Rows of the replica matrix on one page: the newest page is in the document, the others in inert templates the script swaps in. */
export const MATRIX_PAGE_ROWS = 50;

function renderMatrix(d: Dashboard): string {
  const counts = new Map<ReplicaState, number>();
  for (const cell of d.replicas) counts.set(cell.state, (counts.get(cell.state) ?? 0) + 1);
  const summary = (Object.keys(STATE_LABELS) as ReplicaState[])
    .map((state) => `<span class="count ${state}" data-count-state="${state}">${STATE_LABELS[state]} ${counts.get(state) ?? 0}</span>`)
    .join(' ');
  // `replicas` runs backup by backup, destinations in order: row i's cells are a slice of it.
  const columns = d.destinations.length;
  const rows = d.backups.map((b, i) => {
    const cells = d.replicas.slice(i * columns, (i + 1) * columns);
    const problem = cells.some((c) => PROBLEM_STATES.has(c.state));
    const row = d.backups.length - 1 - i;
    return `<tr data-backup="${e(b.id)}" data-row="${row}"${problem ? ' class="has-problem"' : ''}><td class="id">${e(b.id)}${b.reason ? `<br><small>${e(b.reason)}</small>` : ''}</td><td>${b.type}</td><td>${when(b.createdAt)}</td><td class="num">${formatBytes(b.storedBytes)}</td>${cells.map(matrixCell).join('')}</tr>`;
  });
  rows.reverse();
  const pages: string[] = [];
  for (let i = 0; i < rows.length; i += MATRIX_PAGE_ROWS) pages.push(rows.slice(i, i + MATRIX_PAGE_ROWS).join('\n'));
  const total = d.backups.length;
  const pager = `<span class="pager"><button type="button" id="matrix-newer" disabled>‹ newer</button> <span id="matrix-shown" data-total="${total}">${total ? `backups 1–${Math.min(total, MATRIX_PAGE_ROWS)} of ${total}` : 'no backups yet'}</span> <button type="button" id="matrix-older"${pages.length > 1 ? '' : ' disabled'}>older ›</button></span>`;
  return `<p class="counts">${summary} <label><input type="checkbox" id="matrix-problems"> only backups with a problem</label> ${pager}</p>
<div class="scroll"><table id="matrix"><thead><tr><th>backup</th><th>type</th><th>created</th><th>stored</th>${d.destinations.map((h) => `<th>${e(h.name)}</th>`).join('')}</tr></thead>
<tbody>${pages[0] ?? ''}</tbody></table></div>
<div id="matrix-pages" hidden>${pages
    .slice(1)
    .map((page) => `<template>${page}</template>`)
    .join('')}</div>`;
}

function matrixCell(cell: ReplicaCell): string {
  const how = cell.verifiedBy && cell.verifiedAt ? `${cell.verifiedBy}, ${when(cell.verifiedAt)}` : '';
  const detail = how || (cell.state === 'archived' ? 'readable after a thaw' : cell.problem);
  // The whole problem on hover (the cell cuts it short); the rest is in the cell already.
  const title = cell.problem ? ` title="${e(cell.problem)}"` : '';
  return `<td class="cell ${cell.state}" data-destination="${e(cell.destination)}" data-state="${cell.state}"${title}>${STATE_LABELS[cell.state]}${detail ? `<small>${e(detail)}</small>` : ''}</td>`;
}

function renderDrills(d: Dashboard): string {
  if (d.drills.length === 0) return '<p class="quiet">No drill has run on this machine yet (<code>stowage drill</code>).</p>';
  const longest = Math.max(...d.drills.map((x) => x.rtoMs), 1);
  const rows = [...d.drills].reverse().map((x) => {
    const width = Math.max(2, Math.round((x.rtoMs / longest) * 120));
    return `<tr class="${x.ok ? '' : 'bad'}" data-drill="${e(x.startedAt)}" data-ok="${x.ok}" data-within-rto="${x.withinRto}"><td>${when(x.startedAt)}</td><td>${e(x.backupId)}</td><td>${e(x.destination)}</td><td>${x.ok ? 'passed' : 'FAILED'}</td><td class="num"><span class="rto-bar${x.withinRto ? '' : ' over'}" style="width:${width}px"></span> ${formatDuration(x.rtoMs)}</td><td class="num" data-thaw-ms="${x.thawMs ?? 0}">${x.thawMs === undefined ? '–' : formatAge(x.thawMs)}</td><td class="num">${x.chainLength}</td><td>${e(x.problems.join('; '))}</td></tr>`;
  });
  return `<table id="drills"><thead><tr><th>when</th><th>backup</th><th>from</th><th>result</th><th>RTO (target ${e(d.status.targets.rto)})</th><th>thaw wait (not in RTO)</th><th>chain</th><th>problems</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function renderVerify(d: Dashboard): string {
  const v = d.status.lastVerify;
  if (!v) return '<p class="quiet" id="verify">No verify has run on this machine yet (<code>stowage verify --all</code>).</p>';
  return `<div id="verify" data-ok="${v.ok}"><p>${when(v.at)}: ${v.backups} backup(s) checked, ${v.ok ? 'every replica intact' : `<strong>${v.problems.length} problem(s)</strong>`}</p>${v.problems.length ? `<ul class="problems">${v.problems.map((p) => `<li>${e(p)}</li>`).join('')}</ul>` : ''}</div>`;
}

function renderAudit(d: Dashboard): string {
  const rows = d.audit.map(
    (r) =>
      `<tr data-seq="${r.seq}" class="${r.outcome === 'failed' ? 'bad' : ''}"><td>${when(r.time)}</td><td>${e(r.operation)}</td><td>${e(r.backupId ?? '')}</td><td>${e(r.outcome)}</td><td class="num">${formatDuration(r.durationMs)}</td><td>${e(`${r.user}@${r.host}`)}</td><td class="detail">${e(r.detail ?? '')}</td></tr>`,
  );
  return `<div class="scroll short"><table id="audit"><thead><tr><th>when</th><th>operation</th><th>backup</th><th>outcome</th><th>took</th><th>who</th><th>detail</th></tr></thead><tbody>${rows.join('')}</tbody></table></div>`;
}

const legend = (items: string[]) => `<p class="legend">${items.map((i) => `<span>${i}</span>`).join('')}</p>`;

const CSS = `
:root{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;background:#f3f4f6}
body{margin:0}
header{display:flex;align-items:center;gap:16px;padding:14px 24px;background:#fff;border-bottom:4px solid #16a34a;flex-wrap:wrap}
header[data-healthy=false]{border-bottom-color:#dc2626}
header h1{font-size:20px;margin:0}
.badge{font-weight:700;padding:4px 10px;border-radius:4px;background:#16a34a;color:#fff}
header[data-healthy=false] .badge{background:#dc2626}
.meta{color:#6b7280}
main{padding:16px 24px;max-width:1280px}
section{background:#fff;border-radius:6px;padding:12px 16px;margin-bottom:16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
section.two{display:grid;grid-template-columns:3fr 2fr;gap:24px}
h2{font-size:16px;margin:0 0 8px}
h3{font-size:14px;margin:0 0 4px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d1d5db;border-left:6px solid #16a34a;border-radius:4px;padding:8px 12px;min-width:200px;flex:1}
.card.bad{border-left-color:#dc2626}
.card p{margin:2px 0;color:#374151}
.card small{color:#6b7280;font-weight:400}
ul.problems li{color:#b91c1c}
ul.warnings li{color:#92400e}
.quiet{color:#6b7280}
svg text{font-size:11px;fill:#4b5563}
svg .lane{font-size:12px;fill:#111827}
.grid{stroke:#e5e7eb}
.lane-line{stroke:#d1d5db}
.mark{stroke:#fff;stroke-width:.5}
${Object.entries(TYPE_COLORS)
  .map(([type, color]) => `.mark.${type}{fill:${color}}`)
  .join('\n')}
.mark.missing{fill:none}
.mark.missing{stroke:#f59e0b;stroke-width:2}
.mark.damaged{fill:#dc2626;stroke:#7f1d1d;stroke-width:2}
.mark.unverified{fill:#9ca3af}
.mark.archived{opacity:.6}
.run.failed{stroke:#dc2626;stroke-width:2.5}
.run.degraded{fill:#f59e0b}
.db-size{fill:none;stroke:#111827;stroke-width:1.5}
.anomaly{fill:#dc2626}
.legend{color:#4b5563;font-size:12px;display:flex;gap:14px;flex-wrap:wrap;margin:4px 0 0}
.legend i{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:4px;vertical-align:middle}
.legend i.ring{border:2px solid #f59e0b;width:7px;height:7px}
.legend i.dmg{background:#dc2626}
.legend i.line{border-radius:0;height:2px;background:#111827}
.legend .x,.legend .anomaly-key{color:#dc2626;margin-right:4px}
.legend .deg{color:#f59e0b;margin-right:4px}
.scroll{max-height:460px;overflow:auto;border:1px solid #e5e7eb}
.scroll.short{max-height:320px}
table{border-collapse:collapse;width:100%;font-size:12px}
th{position:sticky;top:0;background:#f9fafb;text-align:left;padding:4px 8px;border-bottom:1px solid #d1d5db}
td{padding:3px 8px;border-bottom:1px solid #f3f4f6;vertical-align:top}
td.num{text-align:right;white-space:nowrap}
td.id{font-family:ui-monospace,monospace}
td small{color:#6b7280}
td.cell{white-space:nowrap;max-width:240px}
td.cell small{display:block;overflow:hidden;text-overflow:ellipsis}
.db-point{fill:#111827}
td.detail{max-width:420px;word-break:break-word}
tr.bad td{background:#fef2f2}
.cell.verified{background:#f0fdf4;color:#166534}
.cell.archived{background:#eff6ff;color:#1e40af}
.cell.damaged{background:#fee2e2;color:#991b1b;font-weight:600}
.cell.missing{background:#fffbeb;color:#92400e;font-weight:600}
.cell.unverified{background:#f9fafb;color:#4b5563}
.cell.pruned{color:#9ca3af}
.counts .count{display:inline-block;padding:1px 8px;border-radius:10px;background:#f3f4f6;margin-right:4px}
.counts .damaged,.counts .missing{background:#fee2e2}
.pager{margin-left:12px;white-space:nowrap}
.rto-bar{display:inline-block;height:8px;background:#16a34a;vertical-align:middle}
.rto-bar.over{background:#dc2626}
code{background:#f3f4f6;padding:0 3px}
`;
