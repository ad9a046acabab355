// The linter CI runs (`npm run lint`): typescript-eslint's type-aware recommended rules, promises
// that are awaited or handled (an unhandled rejection in workflow code fails the workflow task at
// every retry), no import cycles, and imports that keep workflow code and the shared contract
// deterministic and free of Node, the driver and the worker.
import { createNodeResolver, importX } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** What neither workflow code nor the contract may import: I/O, clocks of their own, the worker. */
const NODE_AND_DRIVER = {
  patterns: [
    { group: ['node:*'], message: 'Node built-ins do not belong in workflow code or the contract (non-deterministic, or not in the workflow sandbox).' },
    { group: ['mongodb', 'mongodb/*'], message: 'The driver belongs in src/storage and the activities, not here.' },
    {
      group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing', '@temporalio/envconfig'],
      message: 'Workflow code and the contract use @temporalio/workflow and @temporalio/common only.',
    },
  ],
  paths: ['fs', 'path', 'os', 'crypto', 'http', 'https', 'net', 'tls', 'child_process', 'util', 'events', 'stream', 'url', 'zlib', 'timers', 'worker_threads'].map((name) => ({
    name,
    message: 'Node built-ins do not belong in workflow code or the contract.',
  })),
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', '.dev/**', 'test/replay/histories/**', 'examples/**', '**/*.mjs', '**/*.cjs'] },
  {
    files: ['**/*.ts', '**/*.mts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    plugins: { 'import-x': importX },
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    settings: {
      'import-x/extensions': ['.ts', '.mts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.mts'] },
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.mts', '.js', '.json'] })],
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `_name` marks a value destructured away on purpose (`const { continued: _c, ...rest } = input`).
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
    },
  },
  {
    // Tests read JSON from servers, files and histories (a worker's /metrics, the CLI's --json, a
    // recorded history) into untyped values and assert on them: an access that is wrong there fails
    // the test, which is the check. Typing every such read would restate the assertions.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: it may import the contract, other
    // workflow code, and activities as types only (proxyActivities<typeof ...>).
    files: ['workflows/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          ...NODE_AND_DRIVER,
          patterns: [
            ...NODE_AND_DRIVER.patterns,
            {
              group: ['**/activities', '**/activities/*', '**/src/storage/*', '**/src/client', '**/src/client/*', '**/src/worker/*', '**/src/cli/*', '**/src/integrations/*', '**/src/config/*', '**/dev/*'],
              allowTypeImports: true,
              message: 'Workflow code imports only @temporalio/workflow, src/contract and other workflow code (activities as types).',
            },
          ],
        },
      ],
    },
  },
  {
    // The contract is what workflows, activities, the client and the worker share: pure.
    files: ['src/contract/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          ...NODE_AND_DRIVER,
          patterns: [
            ...NODE_AND_DRIVER.patterns,
            { group: ['../*', '!../contract/*'], message: 'The contract imports only itself and @temporalio/common / @temporalio/workflow.' },
          ],
        },
      ],
    },
  },
);
