import type { Fixture } from './fixture.js';
import { summarize, timeOnce, type Command, type Sample, type Stats } from './measure.js';

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
  maxRatio?: number;
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
}

/** A heading in docs/benchmarks.md. Add a benchmark = add a section factory to bench.ts. */
export interface Section {
  title: string;
  /** A paragraph on what is compared and why. */
  about: string;
  cases: Case[];
}

export type SectionFactory = (ctx: BenchContext) => Promise<Section>;

export interface CaseResult {
  case: Case;
  stowage: Stats;
  references: Array<{ reference: Reference; stats: Stats }>;
}

export interface SectionResult {
  section: Section;
  cases: CaseResult[];
}

/** Runs every case: Stowage and its references alternate within each run, so drift hits all alike. */
export async function runSection(section: Section, ctx: BenchContext, runs: number): Promise<SectionResult> {
  const cases: CaseResult[] = [];
  for (const c of section.cases) {
    await c.setup?.();
    const commands: Command[] = [c.stowage, ...c.references];
    const samples: Sample[][] = commands.map(() => []);
    for (let run = 1; run <= runs; run++) {
      for (const [i, command] of commands.entries()) {
        const sample = await timeOnce(command, ctx.root, ctx.work);
        samples[i]!.push(sample);
        console.log(`  ${c.operation} | ${command.label} | run ${run}/${runs}: ${sample.seconds.toFixed(2)} s wall, ${sample.cpuSeconds.toFixed(2)} s CPU, ${sample.rssMiB.toFixed(0)} MiB`);
      }
    }
    const [stowage, ...references] = samples.map(summarize);
    cases.push({ case: c, stowage: stowage!, references: c.references.map((reference, i) => ({ reference, stats: references[i]! })) });
  }
  return { section, cases };
}
