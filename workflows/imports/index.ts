/**
 * `importFriendsWorkflow`: imports one account's friends from a third-party network, page by
 * page, and knows when the whole tree (page fetches, then each page's import) is done.
 *
 * 1. `prepareImport` checks the account and asks the network for its size. Accounts at or above
 *    `whaleThreshold` are whales: their calls go to the whale queue, served by workers of their
 *    own, so one whale never delays everybody else's import.
 * 2. The friend list is walked as its network pages it:
 *    - `offset`: the first page announces the total, then every other page is fetched at once,
 *      `maxPagesInFlight` at a time;
 *    - `cursor`: each page is fetched as soon as the previous one named its cursor, while earlier
 *      pages are still being imported;
 *    - `unknown-size`: `maxPagesInFlight` pages in flight until the first empty page.
 *    Guards end endless walks with a clear status instead of a loop: a cursor seen before, a run
 *    of short pages past the announced total (LinkedIn's off-by-one), `maxPages`.
 * 3. Each fetched page is imported by its own activity, which loads the page from MongoDB (the
 *    fetch activity staged it): no API payload ever passes through the workflow.
 * Rate-limit waits are durable timers (`sleep`), not retries; they cost no worker slot (waits for
 * our own limiter under a second happen in the activity: Temporal timers have ~1 s resolution). Long walks
 * continue as new, carrying the position and the counters. The `importProgress` query answers at
 * any time; the workflow returns the same shape with per-outcome counts.
 *
 * The walks are `cursor-walk.ts` and `offset-walk.ts`; `walk.ts` holds a run's walk state.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import { ApplicationFailure, CancelledFailure, CancellationScope, continueAsNew, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import type { PrepareResult } from '../../activities/networks';
import { CREDENTIALS_EXPIRED_FAILURE_TYPE } from '../../src/contract/errors';
import { validateOrFail } from '../../src/contract/failures';
import { IMPORT_DEFAULTS, type ImportCarry, type ImportFriendsInput, type ImportProgress, importProgressQuery, noOutcomes, validateImportInput } from '../../src/contract/imports';
import { apiActivities, withWaits } from '../network-calls';
import { walkCursorList } from './cursor-walk';
import { walkOffsetList } from './offset-walk';
import { type Ending, ImportWalk, storeActivities } from './walk';

/** Imports the friends of one connected account; see the module comment. */
export async function importFriendsWorkflow(rawInput: ImportFriendsInput): Promise<ImportProgress> {
  const input = validateOrFail(validateImportInput, rawInput);
  const { network, accountId, options } = input;
  const carry = input.carry ?? firstCarry(network, accountId);
  const p = carry.progress;
  p.runs++;
  p.pagesInFlight = 0;
  setHandler(importProgressQuery, () => p);
  const walk = new ImportWalk(p, carry, { network, accountId, importId: p.importId }, options);
  const homeQueue = options.taskQueue || IMPORT_DEFAULTS.taskQueue;
  const finish = (): Promise<void> =>
    // Always recorded, even when the workflow is being cancelled.
    CancellationScope.nonCancellable(() => storeActivities(homeQueue).finishImport({ ...walk.ref, status: p.status, message: p.message }));

  let ending: Ending;
  try {
    ending = await walk.scope.run(async () => {
      if (p.strategy === undefined) {
        const prep = await withWaits<PrepareResult>(() => apiActivities(homeQueue, options.maxAttempts).prepareImport(walk.ref), walk.countWait);
        p.strategy = prep.strategy;
        p.networkSize = prep.networkSize;
        p.whale = prep.networkSize !== undefined && prep.networkSize >= options.whaleThreshold;
        // A network's own queue (where Temporal's queue-wide rate limit caps it) wins over the generic one.
        p.taskQueue = p.whale ? options.whaleTaskQueue : prep.networkTaskQueue || options.taskQueue || IMPORT_DEFAULTS.taskQueue;
        p.pageSize = Math.min(options.pageSize, prep.maxPageSize);
        p.message = `walking ${p.strategy} pages of ${p.pageSize} on ${p.taskQueue}`;
      }
      return p.strategy === 'cursor' ? walkCursorList(walk) : walkOffsetList(walk);
    });
    // Cancelled between the walk's last check and here: do not carry a cancelled import over.
    if (ending === 'continue' && CancellationScope.current().consideredCancelled) throw new CancelledFailure('import cancelled');
  } catch (err) {
    if (walk.fatal === undefined && !isCancellation(err)) walk.fatal = err instanceof Error ? err : new Error(String(err));
    await CancellationScope.nonCancellable(() => walk.settle());
    p.pagesInFlight = 0;
    if (walk.fatal === undefined) {
      // Cancelled from outside: the calls have stopped (WAIT_CANCELLATION_COMPLETED) and the page
      // imports under way have finished; record it.
      p.status = 'cancelled';
      p.message = `cancelled after ${p.pagesFetched} pages (${p.items.imported} friends imported)`;
      await finish();
      throw err;
    }
    ending = failureEnding(walk.fatal, p);
  }
  if (ending === 'continue') {
    p.message = `continuing as new after ${p.pagesFetched} pages`;
    await continueAsNew<typeof importFriendsWorkflow>({ network, accountId, ...(rawInput.options === undefined ? {} : { options: rawInput.options }), carry });
    throw new Error('unreachable: continueAsNew does not return');
  }
  p.status = ending.status;
  p.message = ending.message;
  p.pagesInFlight = 0;
  await finish();
  if (p.status === 'failed') {
    throw ApplicationFailure.create({ type: 'ImportFailed', nonRetryable: true, message: p.message, details: [p] });
  }
  return p;
}

/** What the first run of an import carries: nothing done yet. */
function firstCarry(network: string, accountId: string): ImportCarry {
  const info = workflowInfo();
  return {
    progress: {
      network,
      accountId,
      importId: `${info.workflowId}/${info.firstExecutionRunId}`,
      status: 'running',
      message: 'starting',
      whale: false,
      pagesFetched: 0,
      pagesImported: 0,
      pagesInFlight: 0,
      items: noOutcomes(),
      rateLimitWaits: 0,
      waitedMs: 0,
      runs: 0,
    },
    nextPage: 0,
    recentCursors: [],
    tinyRun: 0,
  };
}

/** How a walk stopped by `err` ends: `needs_reauth` for expired credentials, else `failed` with the reason. */
function failureEnding(err: Error, p: ImportProgress): Exclude<Ending, 'continue'> {
  const cause = (err as { cause?: { type?: string; message?: string } }).cause;
  const message = cause?.message ?? err.message;
  if (cause?.type === CREDENTIALS_EXPIRED_FAILURE_TYPE) return { status: 'needs_reauth', message };
  return { status: 'failed', message: `import stopped after ${p.pagesFetched} pages: ${message}` };
}
