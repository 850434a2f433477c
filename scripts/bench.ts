/*
 * `pnpm bench [--size-mb N] [--runs N] [--sections a,b]`: times Stowage against the tools people would otherwise
 * use, on the same machine in the same run, prints the ratios and rewrites docs/benchmarks.md.
 * A benchmark, not a test: missed targets are reported, never a failure.
 *
 * Env: BENCH_SIZE_MB (fixture size, default 1024), BENCH_RUNS (runs per command, default 2),
 * BENCH_SECTIONS (comma-separated names from SECTIONS, default all), BENCH_CHAIN_LENGTH (incremental, default 24),
 * BENCH_GEN_PY (the shared fixture generator gen.py, default ../shared/fixtures/greaterwms/gen.py beside the repo),
 * BENCH_CLI (`built`, the default: the bundled bin as `npm install` of the CLI installs it, bundled first;
 * `source`: apps/cli/src through tsx, which pays for transpiling at every start).
 * Reference tools missing from the PATH (borg, restic, zstd, gpg, sqlite3) are installed with apt-get when run as root.
 * Add a benchmark by writing a SectionFactory (see scripts/bench/full.ts) and listing it in SECTIONS.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encryptedBackup } from './bench/encrypted.js';
import { cpuShare, readCpu } from './bench/cpu-share.js';
import { ensureFixture } from './bench/fixture.js';
import { fullBackupAndRestore } from './bench/full.js';
import { incrementalBackups } from './bench/incremental.js';
import { runOk, summarize, timeOnce, type Sample } from './bench/measure.js';
import { replication } from './bench/replication.js';
import { ensureReferenceTools } from './bench/tools.js';
import { zeroEgressVerify } from './bench/verify.js';
import { machineInfo, mergeSections, renderDocument, renderSection, type Verdict } from './bench/report.js';
import { positive, runSection, type BenchContext, type SectionFactory, type SectionResult } from './bench/section.js';

/** By the name that BENCH_SECTIONS / --sections selects them with. */
const SECTIONS: Record<string, SectionFactory> = {
  full: fullBackupAndRestore,
  incremental: incrementalBackups,
  encrypted: encryptedBackup,
  replication,
  verify: zeroEgressVerify,
};

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== '--'),
  options: { 'size-mb': { type: 'string' }, runs: { type: 'string' }, sections: { type: 'string' } },
});
const sizeMb = positive('--size-mb / BENCH_SIZE_MB', values['size-mb'] ?? process.env.BENCH_SIZE_MB, 1024);
const runs = Math.round(positive('--runs / BENCH_RUNS', values.runs ?? process.env.BENCH_RUNS, 2));
const selected = (values.sections ?? process.env.BENCH_SECTIONS ?? '')
  .split(',')
  .map((name) => name.trim())
  .filter(Boolean);
const unknown = selected.filter((name) => !(name in SECTIONS));
if (unknown.length) throw new Error(`unknown section(s) ${unknown.join(', ')}; known: ${Object.keys(SECTIONS).join(', ')}`);
const factories = Object.entries(SECTIONS).filter(([name]) => selected.length === 0 || selected.includes(name));

const cli = process.env.BENCH_CLI ?? 'built';
if (cli !== 'built' && cli !== 'source') throw new Error(`BENCH_CLI must be 'built' or 'source', got '${cli}'`);

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
await ensureReferenceTools(root);
const fixture = await ensureFixture(root, sizeMb);
const work = await mkdtemp(join(tmpdir(), 'stowage-bench-'));
// The built bin: apps/cli's bundle step (esbuild, seconds), the same files the packed CLI installs.
const builtBin = join(root, 'apps/cli/dist/stowage.js');
if (cli === 'built') await runOk([process.execPath, join(root, 'apps/cli/scripts/bundle.mjs')], root);
const stowageArgv = cli === 'built' ? [process.execPath, builtBin] : [process.execPath, '--import', 'tsx', join(root, 'apps/cli/src/bin/stowage.ts')];
const ctx: BenchContext = { root, work, fixture, stowage: stowageArgv };
const docPath = join(root, 'docs/benchmarks.md');

try {
  console.log(
    `fixture ${fixture.path}: ${(fixture.bytes / 2 ** 20).toFixed(1)} MiB; ${runs} run(s) per command; sections: ${factories.map(([name]) => name).join(', ')}`,
  );

  const startupSamples: Sample[] = [];
  for (let run = 0; run < runs; run++)
    startupSamples.push(await timeOnce({ label: 'stowage --version', argv: () => [...ctx.stowage, '--version'] }, root, work));
  const startup = summarize(startupSamples);
  console.log(`  CLI startup (stowage --version): ${startup.seconds.toFixed(2)} s, ${startup.rssMiB.toFixed(0)} MiB`);
  // The built bin, as `npm install` of the packed CLI installs it (target ≤ 0.2 s).
  let installedStartup: ReturnType<typeof summarize> | undefined;
  if (
    await readFile(builtBin).then(
      () => true,
      () => false,
    )
  ) {
    const samples: Sample[] = [];
    for (let run = 0; run < Math.max(runs, 5); run++)
      samples.push(await timeOnce({ label: 'stowage --version (built)', argv: () => [process.execPath, builtBin, '--version'] }, root, work));
    installedStartup = summarize(samples);
    console.log(
      `  CLI startup, built bin (node dist/stowage.js --version): ${installedStartup.seconds.toFixed(2)} s, ${installedStartup.rssMiB.toFixed(0)} MiB`,
    );
  } else {
    console.log('  CLI startup, built bin: not measured (run `node apps/cli/scripts/bundle.mjs` first)');
  }

  const previous = await readFile(docPath, 'utf8').catch(() => '');
  const machine = await machineInfo(ctx);
  const sections: Array<{ title: string; markdown: string }> = [];
  const verdicts: Verdict[] = [];
  for (const [name, factory] of factories) {
    const loadBefore = loadavg()[0]!;
    const cpuBefore = readCpu();
    const date = new Date();
    const section = await factory(ctx);
    let result: SectionResult;
    try {
      console.log(`\n${section.title} (${name})`);
      result = await runSection(section, ctx, runs);
    } finally {
      // Before the CPU is read: the section's servers are then stopped, and their CPU counted as the bench's.
      await section.dispose?.();
    }
    const cpuAfter = readCpu();
    const rendered = renderSection(result, startup, {
      date,
      runs,
      load: [loadBefore, loadavg()[0]!],
      ...(cpuBefore && cpuAfter ? { cpu: cpuShare(cpuBefore, cpuAfter) } : {}),
      fixtureBytes: fixture.bytes,
    });
    console.log(`\n${rendered.markdown}\n`);
    sections.push(rendered);
    verdicts.push(...rendered.verdicts);
    // Written after every section, so a later one failing loses nothing measured before it.
    await writeFile(
      docPath,
      renderDocument({
        date: new Date(),
        machine,
        fixture,
        cli,
        startup,
        ...(installedStartup ? { installedStartup } : {}),
        sections: mergeSections(previous, sections),
      }),
    );
  }

  const missed = verdicts.filter((v) => !v.met).length;
  console.log(`targets: ${verdicts.length - missed} met, ${missed} missed; wrote docs/benchmarks.md`);
} finally {
  await rm(work, { recursive: true, force: true });
}
