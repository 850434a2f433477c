import { warmUp, type Fixture } from './fixture.js';
import { installed, summarize, timeOnce, type Command, type Sample, type Stats } from './measure.js';
import type { Verdict } from './report.js';

/** What every section gets. */
export interface BenchContext {
  /** Repo root; every command runs there. */
  root: string;
  /** Scratch folder of this run (removed at the end); sections make their own subfolders. */
  work: string;
  fixture: Fixture;
  /** argv prefix that runs the Stowage CLI. */
  stowage: string[];
}

/** A tool Stowage is compared with. */
export interface Reference extends Command {
  /** Target: Stowage takes at most this many times this reference's wall time. */
  maxRatio?: number | undefined;
  /** Programs this reference needs: when one is not installed, the comparison is skipped and the report says so. */
  tools?: string[];
}

/** One Stowage operation timed against one or more references, in the same run. */
export interface Case {
  operation: string;
  /** Untimed, once before the runs (e.g. take the backup that a restore reads). */
  setup?: () => Promise<void>;
  stowage: Command;
  references: Reference[];
  /** Target: Stowage's peak RSS stays at or under this many MiB. */
  maxRssMiB?: number;
  /** Target: Stowage's wall time stays at or under this many seconds. */
  maxSeconds?: number;
}

/** Something measured besides wall time (a size, a throughput), with its target if it has one. */
export interface Figure {
  name: string;
  value: string;
  target?: Verdict | undefined;
}

/** A heading in docs/benchmarks.md. Add a benchmark = add a section factory to bench.ts. */
export interface Section {
  title: string;
  /** A paragraph on what is compared and why. */
  about: string;
  cases: Case[];
  /** Untimed, after the cases: sizes and throughputs, read from what the cases left behind. */
  figures?: () => Promise<Figure[]>;
  /** Stops what the factory started (servers, agents); runs even when the section failed. */
  dispose?: () => Promise<void>;
}

export type SectionFactory = (ctx: BenchContext) => Promise<Section>;

/** A positive number from a CLI option or environment variable, or the fallback when unset. */
export function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!(Number.isFinite(n) && n > 0)) throw new Error(`${name} must be a positive number, got '${value}'`);
  return n;
}

export interface CaseResult {
  case: Case;
  stowage: Stats;
  references: Array<{ reference: Reference; stats: Stats }>;
}

export interface SectionResult {
  section: Section;
  cases: CaseResult[];
  figures: Figure[];
  /** One line per reference not run, saying why. */
  skipped: string[];
}

/** Runs every case: Stowage and its references alternate within each run, so drift hits all alike. */
export async function runSection(section: Section, ctx: BenchContext, runs: number): Promise<SectionResult> {
  const cases: CaseResult[] = [];
  const skipped: string[] = [];
  for (const c of section.cases) {
    const usable: Reference[] = [];
    for (const reference of c.references) {
      const missing: string[] = [];
      for (const tool of reference.tools ?? []) if (!(await installed(tool))) missing.push(`\`${tool}\``);
      if (missing.length === 0) usable.push(reference);
      else {
        skipped.push(`${c.operation}: \`${reference.label}\` skipped, ${missing.join(' and ')} not installed`);
        console.log(`  ${skipped.at(-1)}`);
      }
    }
    await c.setup?.();
    const commands: Command[] = [c.stowage, ...usable];
    const samples: Sample[][] = commands.map(() => []);
    for (let run = 1; run <= runs; run++) {
      for (const [i, command] of commands.entries()) {
        // Untimed: an earlier section's writes can have evicted the fixture; a live database is in the page cache.
        await warmUp(ctx.fixture.path);
        const sample = await timeOnce(command, ctx.root, ctx.work);
        samples[i]!.push(sample);
        console.log(
          `  ${c.operation} | ${command.label} | run ${run}/${runs}: ${sample.seconds.toFixed(2)} s wall, ${sample.cpuSeconds.toFixed(2)} s CPU, ${sample.rssMiB.toFixed(0)} MiB`,
        );
      }
    }
    const [stowage, ...references] = samples.map(summarize);
    cases.push({ case: c, stowage: stowage!, references: usable.map((reference, i) => ({ reference, stats: references[i]! })) });
  }
  return { section, cases, figures: (await section.figures?.()) ?? [], skipped };
}
