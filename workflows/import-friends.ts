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
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import {
  ApplicationFailure,
  CancelledFailure,
  CancellationScope,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { FetchResult, ImportRef, NetworkActivities, PrepareResult } from '../activities/networks';
import { CREDENTIALS_EXPIRED_FAILURE_TYPE, VALIDATION_FAILURE_TYPE } from '../src/errors';
import { validateOrFail } from '../src/model/failures';
import { apiActivities, withWaits } from './network-calls';
import {
  addOutcomes,
  IMPORT_DEFAULTS,
  type ImportCarry,
  type ImportFriendsInput,
  type ImportProgress,
  importProgressQuery,
  type ImportStatus,
  noOutcomes,
  RECENT_CURSORS,
  validateImportInput,
} from '../src/model/imports';

function storeActivities(taskQueue: string) {
  // MongoDB work only: retried with backoff and no attempt limit, so a database outage delays an
  // import but never loses a page.
  return proxyActivities<NetworkActivities>({
    taskQueue,
    // One page is one insertMany and one count (seconds even on FerretDB); a worker that dies
    // mid-page is noticed after this long and the page retried on another.
    startToCloseTimeout: '20 seconds',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: [VALIDATION_FAILURE_TYPE, 'PageNotStaged'] },
  });
}

type Ending = { status: Exclude<ImportStatus, 'running'>; message: string } | 'continue';

/** Imports the friends of one connected account; see the module comment. */
export async function importFriendsWorkflow(rawInput: ImportFriendsInput): Promise<ImportProgress> {
  const input = validateOrFail(validateImportInput, rawInput);
  const { network, accountId, options } = input;
  const info = workflowInfo();
  const carry: ImportCarry = input.carry ?? {
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
  const p = carry.progress;
  p.runs++;
  p.pagesInFlight = 0;
  setHandler(importProgressQuery, () => p);
  const ref: ImportRef = { network, accountId, importId: p.importId };
  const homeQueue = options.taskQueue || IMPORT_DEFAULTS.taskQueue;

  let fatal: unknown;
  // The walk's API calls run in this scope: the first fatal error (or the workflow's
  // cancellation) cancels it, stopping every call in flight at once.
  const walkScope = new CancellationScope();
  // Page tasks in flight. Their page imports run non-cancellably, so that what is counted is
  // exactly what was written: after a stop, they are drained before the import is finished.
  const running = new Set<Promise<void>>();

  const countWait = (ms: number): void => {
    p.rateLimitWaits++;
    p.waitedMs += ms;
  };

  /** Waits for every page task, whatever happened; never throws. */
  async function settle(): Promise<void> {
    while (running.size > 0) await Promise.race(running);
  }
  const finish = (): Promise<void> =>
    // Always recorded, even when the workflow is being cancelled.
    CancellationScope.nonCancellable(() => storeActivities(homeQueue).finishImport({ ...ref, status: p.status, message: p.message }));

  let ending: Ending;
  try {
    ending = await walkScope.run(async () => {
      if (p.strategy === undefined) {
        const prep = await withWaits<PrepareResult>(() => apiActivities(homeQueue, options.maxAttempts).prepareImport(ref), countWait);
        p.strategy = prep.strategy;
        p.networkSize = prep.networkSize;
        p.whale = prep.networkSize !== undefined && prep.networkSize >= options.whaleThreshold;
        // A network's own queue (where Temporal's queue-wide rate limit caps it) wins over the generic one.
        p.taskQueue = p.whale ? options.whaleTaskQueue : prep.networkTaskQueue || options.taskQueue || IMPORT_DEFAULTS.taskQueue;
        p.pageSize = Math.min(options.pageSize, prep.maxPageSize);
        p.message = `walking ${p.strategy} pages of ${p.pageSize} on ${p.taskQueue}`;
      }
      return walk();
    });
    // Cancelled between the walk's last check and here: do not carry a cancelled import over.
    if (ending === 'continue' && CancellationScope.current().consideredCancelled) throw new CancelledFailure('import cancelled');
  } catch (err) {
    if (fatal === undefined && !isCancellation(err)) fatal = err;
    await CancellationScope.nonCancellable(settle);
    p.pagesInFlight = 0;
    if (fatal === undefined) {
      // Cancelled from outside: the calls have stopped (WAIT_CANCELLATION_COMPLETED) and the page
      // imports under way have finished; record it.
      p.status = 'cancelled';
      p.message = `cancelled after ${p.pagesFetched} pages (${p.items.imported} friends imported)`;
      await finish();
      throw err;
    }
    ending = describeFailure(fatal);
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

  function describeFailure(err: unknown): Exclude<Ending, 'continue'> {
    const cause = (err as { cause?: { type?: string; message?: string } }).cause;
    const message = cause?.message ?? (err instanceof Error ? err.message : String(err));
    if (cause?.type === CREDENTIALS_EXPIRED_FAILURE_TYPE) return { status: 'needs_reauth', message };
    return { status: 'failed', message: `import stopped after ${p.pagesFetched} pages: ${message}` };
  }

  async function walk(): Promise<Ending> {
    const api = apiActivities(p.taskQueue!, options.maxAttempts);
    const store = storeActivities(p.taskQueue!);
    const pageSize = p.pageSize!;
    let pagesThisRun = 0;

    /** Throws the fatal error, or the cancellation, that stopped the walk. */
    function checkStop(): void {
      if (fatal !== undefined) throw fatal;
      if (walkScope.consideredCancelled) throw new CancelledFailure('import cancelled');
    }
    /** Runs a page task in the background; the first real failure stops the whole walk. */
    function launch(task: () => Promise<void>): void {
      p.pagesInFlight++;
      const promise: Promise<void> = task()
        .catch((err: unknown) => {
          // A cancelled task is the walk being stopped; `checkStop` reports why.
          if (fatal === undefined && !isCancellation(err)) {
            fatal = err;
            walkScope.cancel(); // stop the other calls at once (an expired token fails them all anyway)
          }
        })
        .finally(() => {
          p.pagesInFlight--;
          running.delete(promise);
        });
      running.add(promise);
    }
    async function waitForSlot(): Promise<void> {
      while (running.size >= options.maxPagesInFlight) {
        await Promise.race(running);
        checkStop();
      }
    }
    async function drain(): Promise<void> {
      await settle();
      checkStop();
    }
    const fetchPage = (pageNo: number, position: { offset?: number; cursor?: string }) =>
      withWaits<FetchResult>(() => api.fetchFriendsPage({ ...ref, pageNo, pageSize, ...position }), countWait);

    /**
     * Whether a page at `offset` lies past the total the network announced; counts a run of
     * short pages there (LinkedIn's off-by-one bug), which a full page past the total breaks.
     */
    function pastTotal(offset: number, count: number): boolean {
      if (carry.total === undefined || offset < carry.total) return false;
      if (count > 0 && count < pageSize) carry.tinyRun++;
      else if (count >= pageSize) carry.tinyRun = 0;
      return true;
    }
    /** Imports a fetched page. Not cancellable: once its items are being written, they are counted. */
    async function importPage(pageNo: number, skipReason?: string): Promise<void> {
      const outcomes = await CancellationScope.nonCancellable(() => store.importFriendsPage({ ...ref, pageNo, ...(skipReason ? { skipReason } : {}) }));
      addOutcomes(p.items, outcomes);
      p.pagesImported++;
    }
    /** Fetch, then import, one page of an offset list. */
    async function offsetPage(pageNo: number): Promise<void> {
      const offset = pageNo * pageSize;
      const page = await fetchPage(pageNo, { offset });
      p.pagesFetched++;
      if (page.total !== undefined && carry.total === undefined) carry.total = page.total;
      if (page.count === 0) {
        // Only a list of unknown size ends at its first empty page; with a known total, an empty
        // page (friends removed meanwhile) is just empty.
        if (p.strategy === 'unknown-size') carry.endedAt = Math.min(carry.endedAt ?? pageNo, pageNo);
        return;
      }
      // Items past the total the network announced are the off-by-one bug's ghosts: skip them.
      await importPage(pageNo, pastTotal(offset, page.count) ? 'beyond announced total' : undefined);
    }
    /** Whether to stop launching for continue-as-new. */
    const timeToContinue = (): boolean => pagesThisRun >= options.maxPagesPerRun || workflowInfo().continueAsNewSuggested;
    const tiny = (): boolean => carry.tinyRun >= options.tinyPageRun;
    const maxPagesEnding = (): Ending => ({
      status: 'stopped_max_pages',
      message: `stopped at the page limit (options.maxPages = ${options.maxPages}) after ${p.pagesFetched} pages; raise it if the list is really that long`,
    });
    const tinyEnding = (): Ending => ({
      status: 'stopped_tiny_pages',
      message: `stopped after ${p.pagesFetched} pages: ${carry.tinyRun} short pages in a row past the announced total of ${carry.total} (the network's pagination does not end); their items were skipped`,
    });
    const completed = (): Ending => ({
      status: 'completed',
      message: `imported ${p.items.imported} friends (${p.items.skipped} skipped, ${p.items.failed} failed) in ${p.pagesFetched} pages`,
    });

    if (p.strategy === 'cursor') {
      for (;;) {
        checkStop();
        if (carry.cursor === null) break;
        if (carry.nextPage >= options.maxPages || timeToContinue()) {
          await drain();
          return carry.nextPage >= options.maxPages ? maxPagesEnding() : 'continue';
        }
        const pageNo = carry.nextPage++;
        pagesThisRun++;
        const page = await fetchPage(pageNo, carry.cursor === undefined ? {} : { cursor: carry.cursor });
        p.pagesFetched++;
        if (page.total !== undefined && carry.total === undefined) carry.total = page.total;
        // Position by items fetched (not imported: imports finish in the background).
        const skip = pastTotal(carry.itemsSeen ?? 0, page.count);
        carry.itemsSeen = (carry.itemsSeen ?? 0) + page.count;
        if (page.count > 0) {
          await waitForSlot();
          launch(() => importPage(pageNo, skip ? 'beyond announced total' : undefined));
        }
        if (tiny()) {
          await drain();
          return tinyEnding();
        }
        const next = page.nextCursor ?? null;
        if (next !== null && (next === carry.cursor || carry.recentCursors.includes(next))) {
          await drain();
          return {
            status: 'stopped_repeated_cursor',
            message: `stopped after ${p.pagesFetched} pages: the network returned cursor "${next.slice(0, 80)}" a second time (its pagination loops); items up to there are imported`,
          };
        }
        if (carry.cursor !== undefined && carry.cursor !== null) carry.recentCursors = [...carry.recentCursors, carry.cursor].slice(-RECENT_CURSORS);
        carry.cursor = next;
      }
      await drain();
      return completed();
    }

    // offset and unknown-size lists
    if (p.strategy === 'offset' && carry.total === undefined) {
      // The first page announces the total; without one the list is walked as unknown-size.
      await offsetPage(carry.nextPage++);
      pagesThisRun++;
      if (carry.total === undefined) p.strategy = 'unknown-size';
    }
    const knownPages = p.strategy === 'offset' ? Math.ceil((carry.total ?? 0) / pageSize) : Infinity;
    const ended = (): boolean => carry.nextPage >= knownPages || carry.endedAt !== undefined;
    for (;;) {
      checkStop();
      if (ended()) break;
      if (tiny()) {
        await drain();
        return tinyEnding();
      }
      if (carry.nextPage >= options.maxPages || timeToContinue()) {
        await drain();
        // The pages in flight may have found the end meanwhile: a list that ended is complete.
        if (ended()) break;
        if (tiny()) return tinyEnding();
        return carry.nextPage >= options.maxPages ? maxPagesEnding() : 'continue';
      }
      if (running.size >= options.maxPagesInFlight) {
        await waitForSlot();
        continue; // a page that just finished may have ended the list: check again before launching
      }
      const pageNo = carry.nextPage++;
      pagesThisRun++;
      launch(() => offsetPage(pageNo));
    }
    await drain();
    return tiny() ? tinyEnding() : completed();
  }
}
