// `npm run test:cluster`: tests that start a production-shaped cluster of their own
// (dev/cluster/) and kill parts of it. One file at a time: each cluster is ten processes.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globals: false,
    include: ['test/cluster/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
});
