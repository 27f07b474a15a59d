/** The Vitest of test/setup/tripwire.test.ts: the deliberate trips only, with the tripwire, no global setup. */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/setup/fixtures/*.trip.ts'],
    setupFiles: ['test/setup/tripwire.ts'],
    pool: 'forks',
    maxWorkers: 1,
  },
});
