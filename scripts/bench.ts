/*
 * `pnpm bench [--size-mb N] [--runs N]`: times Stowage against the tools people would otherwise use,
 * on the same machine in the same run, prints the ratios and rewrites docs/benchmarks.md.
 * A benchmark, not a test: missed targets are reported, never a failure.
 *
 * Env: BENCH_SIZE_MB (fixture size, default 1024), BENCH_RUNS (runs per command, default 2).
 * Add a benchmark by writing a SectionFactory (see scripts/bench/full.ts) and listing it in SECTIONS.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureFixture, warmUp } from './bench/fixture.js';
import { fullBackupAndRestore } from './bench/full.js';
import { summarize, timeOnce, type Sample } from './bench/measure.js';
import { machineInfo, renderDocument, renderSection, type Verdict } from './bench/report.js';
import { runSection, type BenchContext, type SectionFactory } from './bench/section.js';

const SECTIONS: SectionFactory[] = [
  fullBackupAndRestore,
  // later: incremental vs restic/borg, compression + encryption vs `zstd | gpg`, replication to S3
];

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!(Number.isFinite(n) && n > 0)) throw new Error(`${name} must be a positive number, got '${value}'`);
  return n;
}

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: { 'size-mb': { type: 'string' }, runs: { type: 'string' } },
});
const sizeMb = positive('--size-mb / BENCH_SIZE_MB', values['size-mb'] ?? process.env.BENCH_SIZE_MB, 1024);
const runs = Math.round(positive('--runs / BENCH_RUNS', values.runs ?? process.env.BENCH_RUNS, 2));

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixture = await ensureFixture(root, sizeMb);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-'));
const ctx: BenchContext = { root, work, fixture, stowage: [process.execPath, '--import', 'tsx', join(root, 'apps/cli/src/bin/stowage.ts')] };

try {
  console.log(`fixture ${fixture.path}: ${(fixture.bytes / 2 ** 20).toFixed(1)} MiB; ${runs} run(s) per command`);
  await warmUp(fixture.path);
  const loadBefore = loadavg()[0]!;

  const startupSamples: Sample[] = [];
  for (let run = 0; run < runs; run++) startupSamples.push(await timeOnce({ label: 'stowage --version', argv: () => [...ctx.stowage, '--version'] }, root, work));
  const startup = summarize(startupSamples);
  console.log(`  CLI startup (stowage --version): ${startup.seconds.toFixed(2)} s, ${startup.rssMiB.toFixed(0)} MiB`);

  const sections: string[] = [];
  const verdicts: Verdict[] = [];
  for (const factory of SECTIONS) {
    const section = await factory(ctx);
    console.log(`\n${section.title}`);
    const rendered = renderSection(await runSection(section, ctx, runs), startup);
    console.log(`\n${rendered.markdown}\n`);
    sections.push(rendered.markdown);
    verdicts.push(...rendered.verdicts);
  }

  const load: [number, number] = [loadBefore, loadavg()[0]!];
  console.log(`load average: ${load[0].toFixed(2)} at the start, ${load[1].toFixed(2)} at the end`);
  const doc = renderDocument({ date: new Date(), machine: await machineInfo(ctx), fixture, runs, load, startup, sections });
  await writeFile(join(root, 'docs/benchmarks.md'), doc);
  const missed = verdicts.filter((v) => !v.met).length;
  console.log(`targets: ${verdicts.length - missed} met, ${missed} missed; wrote docs/benchmarks.md`);
} finally {
  await rm(work, { recursive: true, force: true });
}
