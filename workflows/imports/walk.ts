/**
 * One run's walk through a friend list: its page tasks in flight (an import of a fetched page
 * each, in the background), the first failure that stops them all, the guards against endless
 * pagination, and how a walk ends. The cursor and offset walks (`cursor-walk.ts`,
 * `offset-walk.ts`) drive it. Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { CancelledFailure, CancellationScope, isCancellation, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { FetchResult, ImportRef, NetworkActivities, WaitResult } from '../../activities/networks';
import { addOutcomes, type ImportCarry, type ImportOptions, type ImportProgress, type ImportStatus } from '../../src/contract/imports';
import { apiActivities, withWaits } from '../network-calls';
import { backoffRetry } from '../retry';

/** How a walk ended: a final status with its message, or `continue` (as new, carrying the position). */
export type Ending = { status: Exclude<ImportStatus, 'running'>; message: string } | 'continue';

/** The store activities (MongoDB work only) on `taskQueue`. */
export function storeActivities(taskQueue: string) {
  // Retried with backoff and no attempt limit, so a database outage delays an import but never
  // loses a page.
  return proxyActivities<NetworkActivities>({
    taskQueue,
    // One page is one insertMany and one count (seconds even on FerretDB); a worker that dies
    // mid-page is noticed after this long and the page retried on another.
    startToCloseTimeout: '20 seconds',
    retry: backoffRetry({ nonRetryable: ['PageNotStaged'] }),
  });
}

/** The state of one run's walk (see the module comment). */
export class ImportWalk {
  /** The first real failure of a page task; it stops the walk. */
  fatal: Error | undefined;
  /**
   * The scope the walk's API calls run in: the first fatal error (or the workflow's cancellation)
   * cancels it, stopping every call in flight at once.
   */
  readonly scope = new CancellationScope();
  /**
   * Page tasks in flight. Their page imports run non-cancellably, so that what is counted is
   * exactly what was written: after a stop, they are drained before the import is finished.
   */
  private readonly running = new Set<Promise<void>>();
  /** Pages this run launched (for continue-as-new). */
  pagesThisRun = 0;

  constructor(
    readonly p: ImportProgress,
    readonly carry: ImportCarry,
    readonly ref: ImportRef,
    readonly options: Required<ImportOptions>,
  ) {}

  /** Counts a rate-limit wait. */
  readonly countWait = (ms: number): void => {
    this.p.rateLimitWaits++;
    this.p.waitedMs += ms;
  };

  /** Page tasks in flight now. */
  get inFlight(): number {
    return this.running.size;
  }

  /** Waits for every page task, whatever happened; never throws. */
  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.race(this.running);
  }

  /** Throws the fatal error, or the cancellation, that stopped the walk. */
  checkStop(): void {
    if (this.fatal !== undefined) throw this.fatal;
    if (this.scope.consideredCancelled) throw new CancelledFailure('import cancelled');
  }

  /** Runs a page task in the background; the first real failure stops the whole walk. */
  launch(task: () => Promise<void>): void {
    this.p.pagesInFlight++;
    const promise: Promise<void> = task()
      .catch((err: unknown) => {
        // A cancelled task is the walk being stopped; `checkStop` reports why.
        if (this.fatal === undefined && !isCancellation(err)) {
          this.fatal = err instanceof Error ? err : new Error(String(err));
          this.scope.cancel(); // stop the other calls at once (an expired token fails them all anyway)
        }
      })
      .finally(() => {
        this.p.pagesInFlight--;
        this.running.delete(promise);
      });
    this.running.add(promise);
  }

  /** Waits until fewer than `maxPagesInFlight` page tasks run. */
  async waitForSlot(): Promise<void> {
    while (this.running.size >= this.options.maxPagesInFlight) {
      await Promise.race(this.running);
      this.checkStop();
    }
  }

  /** Waits for every page task, then stops if one failed. */
  async drain(): Promise<void> {
    await this.settle();
    this.checkStop();
  }

  /** Fetches page `pageNo` at `position` (an offset or a cursor), waiting out rate limits on timers. */
  fetchPage(pageNo: number, position: { offset?: number; cursor?: string }): Promise<Exclude<FetchResult, WaitResult>> {
    const api = apiActivities(this.p.taskQueue!, this.options.maxAttempts);
    return withWaits<FetchResult>(() => api.fetchFriendsPage({ ...this.ref, pageNo, pageSize: this.p.pageSize!, ...position }), this.countWait);
  }

  /** Imports a fetched page. Not cancellable: once its items are being written, they are counted. */
  async importPage(pageNo: number, skipReason?: string): Promise<void> {
    const store = storeActivities(this.p.taskQueue!);
    const outcomes = await CancellationScope.nonCancellable(() => store.importFriendsPage({ ...this.ref, pageNo, ...(skipReason ? { skipReason } : {}) }));
    addOutcomes(this.p.items, outcomes);
    this.p.pagesImported++;
  }

  /**
   * Whether a page at `offset` lies past the total the network announced; counts a run of
   * short pages there (LinkedIn's off-by-one bug), which a full page past the total breaks.
   */
  pastTotal(offset: number, count: number): boolean {
    const { carry } = this;
    const pageSize = this.p.pageSize!;
    if (carry.total === undefined || offset < carry.total) return false;
    if (count > 0 && count < pageSize) carry.tinyRun++;
    else if (count >= pageSize) carry.tinyRun = 0;
    return true;
  }

  /** Whether to stop launching for continue-as-new. */
  timeToContinue(): boolean {
    return this.pagesThisRun >= this.options.maxPagesPerRun || workflowInfo().continueAsNewSuggested;
  }

  /** A run of short pages past the announced total: the network's pagination does not end. */
  tiny(): boolean {
    return this.carry.tinyRun >= this.options.tinyPageRun;
  }

  maxPagesEnding(): Ending {
    return {
      status: 'stopped_max_pages',
      message: `stopped at the page limit (options.maxPages = ${this.options.maxPages}) after ${this.p.pagesFetched} pages; raise it if the list is really that long`,
    };
  }

  tinyEnding(): Ending {
    return {
      status: 'stopped_tiny_pages',
      message: `stopped after ${this.p.pagesFetched} pages: ${this.carry.tinyRun} short pages in a row past the announced total of ${this.carry.total} (the network's pagination does not end); their items were skipped`,
    };
  }

  completed(): Ending {
    const { items, pagesFetched } = this.p;
    return { status: 'completed', message: `imported ${items.imported} friends (${items.skipped} skipped, ${items.failed} failed) in ${pagesFetched} pages` };
  }
}
