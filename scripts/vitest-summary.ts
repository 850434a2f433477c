import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints one plain closing line, `tests: N passed, N failed, N skipped`, and under CI (CI=true)
 * fails the run when any test was skipped: a server-backed suite must never be skipped silently.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    const skipped: string[] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else if (state === 'skipped') skipped.push(test.fullName);
      }
    }
    process.stdout.write(`\ntests: ${passed} passed, ${failed} failed, ${skipped.length} skipped\n`);
    if (process.env.CI && skipped.length > 0) {
      process.stdout.write(`CI forbids skipped tests; skipped:\n${skipped.map((name) => `  - ${name}`).join('\n')}\n`);
      process.exitCode = 1;
    }
  }
}
