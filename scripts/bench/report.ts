import { createRequire } from 'node:module';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Stats } from './measure.js';
import { runOk } from './measure.js';
import type { CpuShare } from './cpu-share.js';
import type { BenchContext, SectionResult } from './section.js';

import { MiB } from './files.js';

export interface Verdict {
  target: string;
  measured: string;
  met: boolean;
}

/** The machine, one `- name: value` line each. */
export async function machineInfo(ctx: BenchContext): Promise<string[]> {
  const sqliteCli = (await runOk(['sqlite3', '--version'], ctx.root)).split(' ').slice(0, 2).join(' ');
  const fsType = (await runOk(['df', '--output=fstype', ctx.work], ctx.root)).trim().split('\n').at(-1);
  // The SQLite library Stowage itself uses (bundled in better-sqlite3), not the CLI's.
  const Database = createRequire(join(ctx.root, 'packages/core/package.json'))('better-sqlite3') as new (
    path: string,
  ) => {
    prepare(sql: string): { pluck(): { get(): unknown } };
    close(): void;
  };
  const db = new Database(':memory:');
  const sqliteLib = String(db.prepare('SELECT sqlite_version()').pluck().get());
  db.close();
  return [
    `CPU: ${cpus()[0]?.model ?? 'unknown'}, ${availableParallelism()} cores (nproc)`,
    `Memory: ${(totalmem() / 1024 / MiB).toFixed(1)} GiB`,
    `OS: Linux ${release()}; fixture, backups and outputs on one ${fsType} file system`,
    `Node ${process.version}; sqlite3 CLI ${sqliteCli}; SQLite in Stowage (better-sqlite3) ${sqliteLib}`,
  ];
}

const s = (x: number) => x.toFixed(2);
const mib = (x: number) => x.toFixed(0);

/** When and how a section was measured: each section of the document may come from another invocation. */
export interface SectionMeta {
  date: Date;
  runs: number;
  /** 1-minute load average when the section started and ended. */
  load: [number, number];
  /** What other processes and the hypervisor took while the section ran (when /proc could tell). */
  cpu?: CpuShare;
  fixtureBytes: number;
}

/** A table cell: a `|` (even in a code span) would end it. */
const cell = (text: string) => text.replaceAll('|', '\\|');
const iso = (date: Date) => date.toISOString().replace(/\.\d+Z$/, 'Z');

/** Above this many cores taken by others on average, a section's figures are flagged as noisier than usual. */
const NOISY_CORES = 0.25;

/** How quiet the machine was: what others took (or, without /proc, the load average, which includes the bench's own work). */
function quiet(meta: SectionMeta, cores: number): string {
  const load = `load average ${meta.load[0].toFixed(2)} at the start, ${meta.load[1].toFixed(2)} at the end (the bench's own work included), on ${cores} cores`;
  if (!meta.cpu) return load;
  const { otherCores, stealCores } = meta.cpu;
  const noisy = otherCores + stealCores > NOISY_CORES ? ': other work was competing for the CPU, more noise than usual' : '';
  return `${load}; other processes used ${otherCores.toFixed(2)} cores on average and the hypervisor took ${stealCores.toFixed(2)} (steal)${noisy}`;
}

/** A section as Markdown: when it was measured, results table, other figures, skipped references, then each target met or missed. */
export function renderSection(result: SectionResult, startup: Stats, meta: SectionMeta): { title: string; markdown: string; verdicts: Verdict[] } {
  const cores = availableParallelism();
  const measured = `_Measured ${iso(meta.date)} on the ${(meta.fixtureBytes / MiB).toFixed(1)} MiB fixture, ${meta.runs} run(s) per command; ${quiet(meta, cores)}._`;
  const rows = [
    '| Operation | Stowage (s) | Reference | Reference (s) | Ratio | Ratio excl. CLI startup | Stowage CPU (s) | Reference CPU (s) | Stowage peak RSS (MiB) | Reference peak RSS (MiB) |',
    '|---|--:|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  const verdicts: Verdict[] = [];
  for (const { case: c, stowage, references } of result.cases) {
    if (references.length === 0) rows.push(`| ${c.operation} | ${s(stowage.seconds)} | — | | | | ${s(stowage.cpuSeconds)} | | ${mib(stowage.rssMiB)} | |`);
    for (const { reference, stats } of references) {
      const ratio = stowage.seconds / stats.seconds;
      const net = (stowage.seconds - startup.seconds) / stats.seconds; // noise can make it ≤ 0 on tiny fixtures
      rows.push(
        `| ${c.operation} | ${s(stowage.seconds)} | ${cell(`\`${reference.label}\``)} | ${s(stats.seconds)} | ${ratio.toFixed(2)}× | ${net > 0 ? `${net.toFixed(2)}×` : '—'} | ${s(stowage.cpuSeconds)} | ${s(stats.cpuSeconds)} | ${mib(stowage.rssMiB)} | ${mib(stats.rssMiB)} |`,
      );
      if (reference.maxRatio !== undefined) {
        verdicts.push({
          target: `${c.operation} ≤ ${reference.maxRatio}× \`${reference.label}\``,
          measured: `${ratio.toFixed(2)}×`,
          met: ratio <= reference.maxRatio,
        });
      }
    }
    if (c.maxSeconds !== undefined) {
      verdicts.push({ target: `${c.operation} ≤ ${c.maxSeconds} s`, measured: `${s(stowage.seconds)} s`, met: stowage.seconds <= c.maxSeconds });
    }
    if (c.maxRssMiB !== undefined) {
      verdicts.push({ target: `${c.operation} peak RSS ≤ ${c.maxRssMiB} MiB`, measured: `${mib(stowage.rssMiB)} MiB`, met: stowage.rssMiB <= c.maxRssMiB });
    }
  }
  const figures = result.figures.length ? ['', '| Figure | Value |', '|---|--:|', ...result.figures.map((f) => `| ${cell(f.name)} | ${cell(f.value)} |`)] : [];
  verdicts.push(...result.figures.flatMap((f) => (f.target ? [f.target] : [])));
  const skipped = result.skipped.length ? ['', ...result.skipped.map((line) => `- Skipped: ${line}.`)] : [];
  const targets = verdicts.length
    ? ['', '| Target | Measured | Result |', '|---|--:|---|', ...verdicts.map((v) => `| ${cell(v.target)} | ${v.measured} | ${v.met ? 'met' : '**missed**'} |`)]
    : [];
  const title = result.section.title;
  const markdown = [`## ${title}`, '', measured, '', result.section.about, '', ...rows, ...figures, ...skipped, ...targets].join('\n');
  return { title, markdown, verdicts };
}

/** Headings of the document that are not sections. */
const FRAME = ['Machine and fixture', 'Method'];

/**
 * The sections of the new document: those of the previous one in their order, each replaced when it
 * was measured again now, then the new ones. Running some sections alone keeps the others' figures.
 */
export function mergeSections(previous: string, fresh: Array<{ title: string; markdown: string }>): string[] {
  const kept = previous
    .split(/^(?=## )/m)
    .slice(1)
    .map((block) => ({ title: block.slice(3, block.indexOf('\n')).trim(), markdown: block.trim() }))
    .filter((block) => !FRAME.includes(block.title));
  const merged = kept.map((old) => fresh.find((f) => f.title === old.title) ?? old);
  return [...merged, ...fresh.filter((f) => !kept.some((old) => old.title === f.title))].map((section) => section.markdown);
}

export interface DocumentInput {
  date: Date;
  machine: string[];
  fixture: { generator: string; bytes: number };
  /** How the CLI ran: `built` (the bundled bin) or `source` (TypeScript through tsx). */
  cli: 'built' | 'source';
  startup: Stats;
  /** `node dist/stowage.js --version`: the bundled bin that the packed CLI installs. */
  installedStartup?: Stats;
  sections: string[];
}

export function renderDocument(d: DocumentInput): string {
  return `# Benchmarks

Generated by \`pnpm bench\` (\`scripts/bench.ts\`), last on ${iso(d.date)}; rerun it rather than editing this file.
Each section says when it was measured, on which fixture, and how loaded the machine was.
Ratios are Stowage's wall time over the reference's; a target is met when Stowage stays at or under it.

## Machine and fixture

${d.machine.map((line) => `- ${line}`).join('\n')}
- Fixture: GreaterWMS database, ${(d.fixture.bytes / MiB).toFixed(1)} MiB (${d.fixture.bytes} bytes), rollback-journal mode, built by \`${d.fixture.generator}\`
- CLI startup: \`stowage --version\` takes ${s(d.startup.seconds)} s (peak RSS ${mib(d.startup.rssMiB)} MiB); ${d.cli === 'built' ? 'the CLI runs as the built bin (`node apps/cli/dist/stowage.js`, bundled by the bench first: the files the packed CLI installs)' : 'the CLI runs from TypeScript source through tsx, whose transpiling a built CLI would not pay'}. "Ratio excl. CLI startup" subtracts it.
${d.installedStartup && d.cli === 'source' ? `- CLI startup, installed: the built bin (\`node apps/cli/dist/stowage.js --version\`, as the packed CLI installs it) takes ${s(d.installedStartup.seconds)} s (peak RSS ${mib(d.installedStartup.rssMiB)} MiB)\n` : ''}
${d.sections.join('\n\n')}

## Method

- Every command runs as its own process under GNU time (\`/usr/bin/time -f '%e %M %U %S'\`): \`%e\` is wall-clock seconds (10 ms resolution),
  \`%M\` the peak resident set size, \`%U\` + \`%S\` the CPU seconds, of the command and its waited-for children. Targets are on wall time;
  CPU time is shown because it moves less than wall time when other work shares the machine.
  Stowage runs as \`node apps/cli/dist/stowage.js … --config <temp>/stowage.config.json\` from the repo root (\`BENCH_CLI=source\`:
  \`node --import tsx apps/cli/src/bin/stowage.ts\`), with a local destination in the same temporary folder.
- Reference tools that are missing (borg, restic, zstd, gpg, sqlite3) are installed with \`apt-get\` first when the bench runs as root.
- The fixture is built once and cached in \`.bench/\` (keyed by size). Before every timed command the whole fixture is read, untimed,
  so every run finds it in the page cache, as a live database is (an earlier section's writes can evict it); never cold for either side.
- Before every timed command, its outputs from the previous run are deleted and \`sync\` runs untimed, so no command pays for another's
  writeback. Stowage fsyncs what it writes; the references do so through \`sync\` after the command, or SQLite's own commit (\`sqlite3 .backup\`).
- In each run Stowage and its references run back to back, in that order; runs repeat \`BENCH_RUNS\` / \`--runs\` times (default 2).
  Sizes (figures) are read from what the last run left behind.
- A reference whose program is not installed is skipped, and its section says so.
- Fixture size: \`BENCH_SIZE_MB\` or \`--size-mb\` (default 1024). Sections: \`BENCH_SECTIONS\` or \`--sections\`, comma-separated
  (default all); a run of some sections replaces only their headings in this file and keeps the others.
`;
}
