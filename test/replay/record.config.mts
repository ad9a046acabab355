// `npm run record-histories`: records the workflow histories the replay test replays
// (test/replay/histories/*.json), against the same servers as the test suite.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/replay/record-histories.rec.ts'],
    globalSetup: ['test/utils/global-setup.ts'],
    pool: 'forks',
    testTimeout: 600_000,
    hookTimeout: 180_000,
  },
});
