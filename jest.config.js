import { createDefaultEsmPreset } from 'ts-jest';

// Two projects: unit tests sit beside the code and need nothing; integration and
// e2e tests under test/ share one real control plane that globalSetup starts.
const preset = createDefaultEsmPreset({ tsconfig: 'tsconfig.json' });
const common = {
  ...preset,
  testEnvironment: 'node',
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  // `npm test` emits dist/ first (the CLI the suites start, src/simulation/cli-entry.ts); jest reads only the sources.
  modulePathIgnorePatterns: ['<rootDir>/dist/'],
};

export default {
  // Tests assert behaviour, not speed (benchmarks do that). Jest's 5 s default
  // failed tests that run openssl or start processes when both lanes of
  // `npm test` load the two cores (src/host/failures.test.ts, seen in a
  // clean-clone run); a hang still fails, after a minute. A global option:
  // inside a project entry jest ignores it (it did, in b78bc06). The e2e
  // project's per-file setup raises it further (jest-e2e-setup.ts).
  testTimeout: 60_000,
  // The run ends with its slowest tests: where the time of `npm test` goes.
  reporters: ['default', '<rootDir>/test/cluster/slowest-tests-reporter.cjs'],
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/test/**/*.unit.test.ts'],
      globalSetup: '<rootDir>/test/cluster/jest-unit-global-setup.mjs',
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/test/**/*.e2e.test.ts'],
      globalSetup: '<rootDir>/test/cluster/jest-global-setup.mjs',
      globalTeardown: '<rootDir>/test/cluster/jest-global-teardown.mjs',
      setupFilesAfterEnv: ['<rootDir>/test/cluster/jest-e2e-setup.ts'],
    },
  ],
};
