import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globals: false,
    include: ['test/**/*.test.ts'],
    // Tests that start a cluster of their own and kill parts of it: `npm run test:cluster`.
    exclude: ['test/cluster/**', '**/node_modules/**'],
    // Starts the Temporal dev server and FerretDB once for all files (or uses TEMPORAL_ADDRESS /
    // MONGODB_URI); time-skipping test servers are started per file by the tests themselves.
    globalSetup: ['test/utils/global-setup.ts'],
    pool: 'forks',
    // Two cores: more parallel files only fight over CPU with the servers.
    maxWorkers: 2,
    testTimeout: 180_000,
    hookTimeout: 180_000,
  },
});
