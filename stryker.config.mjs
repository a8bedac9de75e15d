// @ts-check
/**
 * Mutation testing (`npm run mutation`; not part of `npm test`). Stryker changes the job's code one
 * small bug at a time and runs the tests that cover each change; a mutant that no test notices is a
 * behaviour nothing guards.
 *
 * By default it mutates all of lambda/ and runs the unit tests: test/unit/ (in-memory fakes, no
 * local servers), with per-test coverage so each mutant runs only the tests that reach it. That
 * fits in an hour on two cores. The integration suites restart DynamoDB Local, the S3 server and
 * the fake API per test file, which makes a whole run take hours: `MUTATION_TESTS=all` adds them
 * (for one module: `MUTATION_TESTS=all npm run mutation -- --mutate lambda/run/work.ts`).
 *
 * `MUTATION_ONLY=test/unit/snapshot/commit.test.ts,test/unit/snapshot/upload-registry.test.ts` runs only these
 * files, for a module whose guarding tests are known:
 * `MUTATION_ONLY=test/unit/snapshot/commit.test.ts npm run mutation -- --mutate lambda/snapshot/commit.ts`.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
const only = process.env.MUTATION_ONLY?.split(',').map((file) => `<rootDir>/${file.trim()}`);
const all = process.env.MUTATION_TESTS === 'all';

export default {
  mutate: ['lambda/**/*.ts'],
  testRunner: 'jest',
  jest: {
    projectType: 'custom',
    configFile: 'jest.config.js',
    config: {
      // lambda/ in the haste map too, so --findRelatedTests follows imports through modules of
      // other folders (a test of phase-input.ts reaches run/phase-payloads.ts); with test/ alone
      // jest sees only direct imports and a mutant covered that way ran no test.
      roots: ['<rootDir>/test', '<rootDir>/lambda'],
      testMatch: only ?? (all ? ['**/*.test.ts'] : ['<rootDir>/test/unit/**/*.test.ts']),
      testPathIgnorePatterns: [
        '/node_modules/',
        // These drive local/ and scripts/ (child processes, a synthesized definition on the local
        // runner): seconds per file, and what they reach of lambda/ runs in child processes whose
        // coverage Stryker cannot see. MUTATION_TESTS=all runs them, with the integration suites.
        ...(all || only
          ? []
          : [
              '/test/unit/local/state-machine-runner\\.test\\.ts$',
              '/test/unit/scripts/(export|smoke|replay)-cli\\.test\\.ts$',
            ]),
        // The CDK tests synthesize stacks (seconds each) and mutate nothing under lambda/ that the
        // unit and integration tests do not already reach.
        '/test/infra/stack(-[a-z-]+)?\\.test\\.ts$',
        '/test/infra/bundle\\.test\\.ts$',
      ],
    },
    // Each mutant runs only the test files that import its module (jest --findRelatedTests), and in
    // them only the tests that reached it. Without it jest loads every test file for every mutant
    // just to filter by test name: 4.3 s a mutant instead of 0.2 s (snapshot-keys.ts, 45 mutants,
    // measured here). Unit tests import what they test statically, so nothing is missed.
    enableFindRelatedTests: true,
  },
  coverageAnalysis: 'perTest',
  // Three jest workers on two cores: a mutant that hangs an await holds its worker idle until the
  // timeout, so a third keeps the cores busy (the timeout allows 1.5 times a test's own time).
  concurrency: 3,
  // A mutant that loops forever (say, in the response scanner) costs the timeout plus a worker
  // restart; keep both small. Timed-out mutants count as detected. The limit is 1.5 times the
  // covering tests' own time in the dry run plus 3 s, slack enough for a loaded machine; the unit
  // tests hang on a hung await, not on slow work.
  timeoutMS: 3_000,
  timeoutFactor: 1.5,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  // A static mutant changes code that runs when a module loads (the zod schemas, constants), so no
  // test's coverage points at it and it must run every related test file: across lambda/ that is
  // hours. The default run ignores them; MUTATION_STATIC=1 runs them, for one module with its own
  // test files (MUTATION_ONLY), where it is cheap.
  ignoreStatic: process.env.MUTATION_STATIC !== '1',
  cleanTempDir: 'always',
};
