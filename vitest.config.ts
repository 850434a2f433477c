import { defineConfig } from 'vitest/config';
import SummaryReporter from './scripts/vitest-summary.js';

export default defineConfig({
  test: {
    include: ['{packages,apps,templates}/*/src/**/*.test.ts', 'integrations/*/*.test.ts', 'scripts/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default', new SummaryReporter()],
  },
});
