/**
 * Strict validation of the third-party workflows' inputs (import, trickle, share): every bad input
 * fails with a ValidationError naming the field, and `validateOrFail` turns any error into a
 * non-retryable failure instead of a workflow task that fails forever.
 */
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ValidationError, VALIDATION_FAILURE_TYPE } from '../../src/contract/errors';
import { validateOrFail } from '../../src/contract/failures';
import { IMPORT_DEFAULTS, type ImportCarry, RECENT_CURSORS, validateImportInput, validateTrickleInput } from '../../src/contract/imports';
import { validateShareInput } from '../../src/contract/shares';

/** The field of the ValidationError `fn` throws (its message must start with it); undefined if none. */
function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    expect(err.message.startsWith(`${err.field} `), err.message).toBe(true);
    return err.field;
  }
  return undefined;
}

/**
 * `value` as JSON with the quoted token `"<token>"` replaced by raw JSON text, parsed back: the
 * way to get a real own `__proto__` key, or `Infinity` from `1e999`, as a worker decodes them.
 */
function parsed(value: unknown, token: string, json: string): unknown {
  const text = JSON.stringify(value);
  expect(text).toContain(`"${token}"`);
  return JSON.parse(text.replace(`"${token}"`, json));
}

const base = { network: 'fakebook', accountId: 'alice' };

/** A carry as the import workflow hands it over (after a JSON round trip, like Temporal's). */
const carry: ImportCarry = JSON.parse(
  JSON.stringify({
    progress: {
      network: 'fakebook',
      accountId: 'alice',
      importId: 'import/fakebook/alice/2f0c5a52-8a7e-4b8e-9d1e-6d2c1f3b7a10',
      status: 'running',
      message: 'continuing as new after 500 pages',
      strategy: 'cursor',
      networkSize: 60_000,
      whale: true,
      taskQueue: 'import-whale',
      pageSize: 100,
      pagesFetched: 500,
      pagesImported: 500,
      pagesInFlight: 0,
      items: { imported: 49_990, skipped: 10, failed: 0, skippedReasons: { 'already imported': 10 }, failedReasons: {} },
      rateLimitWaits: 3,
      waitedMs: 4500,
      runs: 1,
    },
    nextPage: 500,
    cursor: 'c-500',
    recentCursors: ['c-498', 'c-499'],
    total: 60_000,
    tinyRun: 0,
    itemsSeen: 50_000,
  }),
);
/** `carry` with `progress` fields replaced. */
const withProgress = (p: Record<string, unknown>) => ({ ...carry, progress: { ...carry.progress, ...p } });

describe('validateImportInput', () => {
  it('accepts a minimal input and applies the defaults', () => {
    expect(validateImportInput(base)).toEqual({ ...base, options: { ...IMPORT_DEFAULTS, taskQueue: '' } });
    expect(validateImportInput({ ...base, options: { pageSize: 50, taskQueue: 'q' } }).options).toMatchObject({ pageSize: 50, taskQueue: 'q', maxAttempts: 10 });
  });

  it('accepts the carry the workflow hands over, as a copy', () => {
    const input = { ...base, options: { maxPagesPerRun: 500 }, carry };
    const out = validateImportInput(input);
    expect(out.carry).toEqual(carry);
    expect(out.carry).not.toBe(carry);
    // A carry before the strategy was settled, with the list ended, and with a null cursor.
    const { strategy: _s, taskQueue: _t, pageSize: _p, ...unsettled } = carry.progress;
    expect(validateImportInput({ ...base, carry: { ...carry, progress: unsettled } }).carry?.progress.strategy).toBeUndefined();
    expect(validateImportInput({ ...base, carry: { ...carry, cursor: null, endedAt: 7 } }).carry).toMatchObject({ cursor: null, endedAt: 7 });
  });

  it.each<[string, unknown, string]>([
    ['not an object', 'fakebook/alice', 'input'],
    ['an array', [base], 'input'],
    ['unknown top-level field', { ...base, netwrok: 'x' }, 'input.netwrok'],
    ['unknown option', { ...base, options: { pagesize: 10 } }, 'input.options.pagesize'],
    ['__proto__ key', parsed({ ...base, KEY: {} }, 'KEY', '"__proto__"'), 'input.__proto__'],
    ['__proto__ key in options', parsed({ ...base, options: { KEY: { pageSize: 1 } } }, 'KEY', '"__proto__"'), 'input.options.__proto__'],
    ['constructor key', parsed({ ...base, KEY: 1 }, 'KEY', '"constructor"'), 'input.constructor'],
    ['prototype key in options', parsed({ ...base, options: { KEY: 1 } }, 'KEY', '"prototype"'), 'input.options.prototype'],
    ['missing network', { accountId: 'alice' }, 'input.network'],
    ['network a number', { ...base, network: 7 }, 'input.network'],
    ['accountId an object', { ...base, accountId: { id: 'alice' } }, 'input.accountId'],
    ['options an array', { ...base, options: [] }, 'input.options'],
    ['options null', { ...base, options: null }, 'input.options'],
    ['pageSize a string', { ...base, options: { pageSize: '100' } }, 'input.options.pageSize'],
    ['pageSize 1e999', parsed({ ...base, options: { pageSize: 'N' } }, 'N', '1e999'), 'input.options.pageSize'],
    ['maxPages NaN', { ...base, options: { maxPages: NaN } }, 'input.options.maxPages'],
    ['whaleThreshold a fraction', { ...base, options: { whaleThreshold: 2.5 } }, 'input.options.whaleThreshold'],
    ['taskQueue a number', { ...base, options: { taskQueue: 5 } }, 'input.options.taskQueue'],
    ['whaleTaskQueue empty', { ...base, options: { whaleTaskQueue: '' } }, 'input.options.whaleTaskQueue'],
    ['maxAttempts out of range', { ...base, options: { maxAttempts: 101 } }, 'input.options.maxAttempts'],
    // carry
    ['carry a string', { ...base, carry: 'resume' }, 'input.carry'],
    ['carry null', { ...base, carry: null }, 'input.carry'],
    ['unknown carry field', { ...base, carry: { ...carry, page: 3 } }, 'input.carry.page'],
    ['__proto__ key in carry', parsed({ ...base, carry: { ...carry, KEY: {} } }, 'KEY', '"__proto__"'), 'input.carry.__proto__'],
    ['carry counter a string', { ...base, carry: { ...carry, nextPage: '500' } }, 'input.carry.nextPage'],
    ['carry counter negative', { ...base, carry: { ...carry, tinyRun: -1 } }, 'input.carry.tinyRun'],
    ['carry count a fraction', { ...base, carry: { ...carry, itemsSeen: 0.5 } }, 'input.carry.itemsSeen'],
    ['carry total 1e999', parsed({ ...base, carry: { ...carry, total: 'N' } }, 'N', '1e999'), 'input.carry.total'],
    ['carry page past maxPages', { ...base, carry: { ...carry, nextPage: 1_000_001 } }, 'input.carry.nextPage'],
    ['carry cursor a number', { ...base, carry: { ...carry, cursor: 42 } }, 'input.carry.cursor'],
    ['recentCursors a string', { ...base, carry: { ...carry, recentCursors: 'c-499' } }, 'input.carry.recentCursors'],
    ['recentCursors missing', { ...base, carry: { ...carry, recentCursors: undefined } }, 'input.carry.recentCursors'],
    ['recentCursors element a number', { ...base, carry: { ...carry, recentCursors: ['c-1', 2] } }, 'input.carry.recentCursors[1]'],
    ['recentCursors element an object', { ...base, carry: { ...carry, recentCursors: [{ cursor: 'c-1' }] } }, 'input.carry.recentCursors[0]'],
    ['recentCursors too long', { ...base, carry: { ...carry, recentCursors: Array.from({ length: RECENT_CURSORS + 1 }, (_, i) => `c-${i}`) } }, 'input.carry.recentCursors'],
    ['progress missing', { ...base, carry: { ...carry, progress: undefined } }, 'input.carry.progress'],
    ['unknown progress field', { ...base, carry: withProgress({ pages: 1 }) }, 'input.carry.progress.pages'],
    ['progress of another account', { ...base, carry: withProgress({ accountId: 'bob' }) }, 'input.carry.progress.accountId'],
    ['progress of a finished import', { ...base, carry: withProgress({ status: 'completed' }) }, 'input.carry.progress.status'],
    ['progress counter a string', { ...base, carry: withProgress({ pagesFetched: '500' }) }, 'input.carry.progress.pagesFetched'],
    ['progress counter negative', { ...base, carry: withProgress({ waitedMs: -5 }) }, 'input.carry.progress.waitedMs'],
    ['progress counter Infinity', parsed({ ...base, carry: withProgress({ runs: 'N' }) }, 'N', '1e999'), 'input.carry.progress.runs'],
    ['pages still in flight', { ...base, carry: withProgress({ pagesInFlight: 2 }) }, 'input.carry.progress.pagesInFlight'],
    ['unknown strategy', { ...base, carry: withProgress({ strategy: 'random' }) }, 'input.carry.progress.strategy'],
    ['strategy without its queue', { ...base, carry: withProgress({ taskQueue: undefined }) }, 'input.carry.progress.taskQueue'],
    ['strategy without its page size', { ...base, carry: withProgress({ pageSize: undefined }) }, 'input.carry.progress.pageSize'],
    ['whale a string', { ...base, carry: withProgress({ whale: 'no' }) }, 'input.carry.progress.whale'],
    ['importId a number', { ...base, carry: withProgress({ importId: 1 }) }, 'input.carry.progress.importId'],
    ['items an array', { ...base, carry: withProgress({ items: [] }) }, 'input.carry.progress.items'],
    ['items counter missing', { ...base, carry: withProgress({ items: { ...carry.progress.items, failed: undefined } }) }, 'input.carry.progress.items.failed'],
    ['reasons an array', { ...base, carry: withProgress({ items: { ...carry.progress.items, failedReasons: ['x'] } }) }, 'input.carry.progress.items.failedReasons'],
    ['reason count negative', { ...base, carry: withProgress({ items: { ...carry.progress.items, skippedReasons: { 'already imported': -1 } } }) }, 'input.carry.progress.items.skippedReasons.already imported'],
    [
      '__proto__ reason',
      parsed({ ...base, carry: withProgress({ items: { ...carry.progress.items, skippedReasons: { KEY: 1 } } }) }, 'KEY', '"__proto__"'),
      'input.carry.progress.items.skippedReasons.__proto__',
    ],
  ])('rejects %s, naming %s', (_name, input, field) => {
    expect(fieldOf(() => validateImportInput(input))).toBe(field);
  });
});

describe('validateTrickleInput', () => {
  const round = { mode: 'trickle', batchSize: 20, staleAfterMs: 900_000 };

  it('accepts a round and applies the defaults', () => {
    expect(validateTrickleInput(round)).toEqual({ ...round, taskQueue: 'trickle', importOptions: {} });
    expect(validateTrickleInput({ ...round, mode: 'resync', importOptions: { whaleTaskQueue: 'w' } })).toMatchObject({ mode: 'resync', importOptions: { whaleTaskQueue: 'w' } });
  });

  it.each<[string, unknown, string]>([
    ['not an object', 42, 'input'],
    ['unknown top-level field', { ...round, batchsize: 5 }, 'input.batchsize'],
    ['unknown import option', { ...round, importOptions: { pagesize: 10 } }, 'input.importOptions.pagesize'],
    ['bad import option', { ...round, importOptions: { pageSize: 0 } }, 'input.importOptions.pageSize'],
    ['importOptions a string', { ...round, importOptions: 'fast' }, 'input.importOptions'],
    ['__proto__ key', parsed({ ...round, KEY: {} }, 'KEY', '"__proto__"'), 'input.__proto__'],
    ['__proto__ key in importOptions', parsed({ ...round, importOptions: { KEY: {} } }, 'KEY', '"__proto__"'), 'input.importOptions.__proto__'],
    ['constructor key', parsed({ ...round, KEY: 1 }, 'KEY', '"constructor"'), 'input.constructor'],
    ['unknown mode', { ...round, mode: 'push' }, 'input.mode'],
    ['missing mode', { batchSize: 20, staleAfterMs: 0 }, 'input.mode'],
    ['batchSize a string', { ...round, batchSize: '20' }, 'input.batchSize'],
    ['batchSize missing', { mode: 'trickle', staleAfterMs: 0 }, 'input.batchSize'],
    ['staleAfterMs 1e999', parsed({ ...round, staleAfterMs: 'N' }, 'N', '1e999'), 'input.staleAfterMs'],
    ['staleAfterMs negative', { ...round, staleAfterMs: -1 }, 'input.staleAfterMs'],
    ['taskQueue a number', { ...round, taskQueue: 7 }, 'input.taskQueue'],
  ])('rejects %s, naming %s', (_name, input, field) => {
    expect(fieldOf(() => validateTrickleInput(input))).toBe(field);
  });
});

describe('validateShareInput', () => {
  const share = { network: 'fakebook', accountId: 'alice', activityId: 'a1' };

  it('accepts a share and applies the defaults', () => {
    expect(validateShareInput(share)).toEqual({ ...share, taskQueue: 'import', maxAttempts: 10 });
  });

  it.each<[string, unknown, string]>([
    ['null', null, 'input'],
    ['unknown top-level field', { ...share, activityID: 'a1' }, 'input.activityID'],
    ['__proto__ key', parsed({ ...share, KEY: { taskQueue: 'x' } }, 'KEY', '"__proto__"'), 'input.__proto__'],
    ['constructor key', parsed({ ...share, KEY: 1 }, 'KEY', '"constructor"'), 'input.constructor'],
    ['prototype key', parsed({ ...share, KEY: 1 }, 'KEY', '"prototype"'), 'input.prototype'],
    ['network a number', { ...share, network: 1 }, 'input.network'],
    ['accountId null', { ...share, accountId: null }, 'input.accountId'],
    ['activityId an array', { ...share, activityId: ['a1'] }, 'input.activityId'],
    ['taskQueue an object', { ...share, taskQueue: {} }, 'input.taskQueue'],
    ['maxAttempts 1e999', parsed({ ...share, maxAttempts: 'N' }, 'N', '1e999'), 'input.maxAttempts'],
    ['maxAttempts a fraction', { ...share, maxAttempts: 1.5 }, 'input.maxAttempts'],
  ])('rejects %s, naming %s', (_name, input, field) => {
    expect(fieldOf(() => validateShareInput(input))).toBe(field);
  });
});

describe('validateOrFail', () => {
  const failureOf = (fn: () => unknown): ApplicationFailure => {
    try {
      fn();
    } catch (err) {
      expect(err).toBeInstanceOf(ApplicationFailure);
      return err as ApplicationFailure;
    }
    throw new Error('expected a failure');
  };

  it('returns what the validator returns', () => {
    expect(validateOrFail(validateShareInput, { network: 'fakebook', accountId: 'a', activityId: 'b' })).toMatchObject({ maxAttempts: 10 });
  });

  it('turns a ValidationError into a non-retryable failure naming the field', () => {
    const failure = failureOf(() => validateOrFail(validateImportInput, { ...base, options: { pagesize: 1 } }));
    expect(failure).toMatchObject({ type: VALIDATION_FAILURE_TYPE, nonRetryable: true, details: ['input.options.pagesize'] });
    expect(failure.message).toMatch(/^input\.options\.pagesize /);
  });

  it('turns a TypeError thrown by a validator into a non-retryable ValidationError failure', () => {
    const buggy = (raw: unknown): number => (raw as { a: { b: number } }).a.b;
    const failure = failureOf(() => validateOrFail(buggy, {}));
    expect(failure).toMatchObject({ type: VALIDATION_FAILURE_TYPE, nonRetryable: true });
    expect(failure.message).toMatch(/^input is malformed: /);
    expect(failure.cause).toBeInstanceOf(TypeError);
  });

  it('copes with a thrown value that is not an Error', () => {
    const failure = failureOf(() =>
      validateOrFail(() => {
        throw Object.create(null); // String() of this throws a TypeError itself
      }, {}),
    );
    expect(failure).toMatchObject({ type: VALIDATION_FAILURE_TYPE, nonRetryable: true });
    expect(failure.message).toMatch(/^input is malformed: /);
  });
});
