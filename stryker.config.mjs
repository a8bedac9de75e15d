// @ts-check
/**
 * `MUTATION_TESTS=unit npm run mutation -- --mutate <file>` leaves the integration tests out: for
 * modules the unit tests reach on their own (the MoonKey client, retry policy, rate limiter) it
 * runs in minutes instead of an hour, and the score it reports is a lower bound.
 *
 * Mutation testing (`npm run mutation`; not part of `npm test`). Stryker changes the job's code one
 * small bug at a time and runs the tests that cover each change; a mutant that no test notices is a
 * behaviour nothing guards. One module at a time: `npm run mutation -- --mutate lambda/flow/retry-policy.ts`.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  mutate: ['lambda/**/*.ts'],
  testRunner: 'jest',
  jest: {
    projectType: 'custom',
    configFile: 'jest.config.js',
    // The CDK tests synthesize stacks (seconds each) and mutate nothing under lambda/ that the
    // unit and integration tests do not already reach.
    config: {
      // `MUTATION_ONLY=test/unit/commit.test.ts,test/integration/commit-faults.test.ts`: only these
      // files, for a module whose guarding tests are known (the whole suite per mutant is slow here).
      ...(process.env.MUTATION_ONLY
        ? { testMatch: process.env.MUTATION_ONLY.split(',').map((file) => `<rootDir>/${file.trim()}`) }
        : {}),
      testPathIgnorePatterns: [
        ...(process.env.MUTATION_TESTS === 'unit' ? ['/test/integration/'] : []),
        '/node_modules/',
        '/test/infra/stack\\.test\\.ts$',
        '/test/infra/bundle\\.test\\.ts$',
      ],
    },
    enableFindRelatedTests: false,
  },
  coverageAnalysis: 'perTest',
  // Two cores: two jest workers, each starting its own local servers in the integration tests.
  concurrency: 2,
  // A mutant that loops forever (say, in the response scanner) costs the timeout plus a worker
  // restart; keep both small. Timed-out mutants count as detected.
  timeoutMS: 10_000,
  timeoutFactor: 1.5,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  ignoreStatic: true,
  cleanTempDir: 'always',
};
