import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Fails the test during which an unhandled rejection or uncaught exception happens, naming it.
    setupFiles: ['test/setup/tripwire.ts', 'test/setup/quiet-logs.ts'],
    // Integration suites start their own ZooKeeper servers; a few files at a time on 2 cores.
    pool: 'forks',
    maxWorkers: 3,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 20_000,
  },
});
