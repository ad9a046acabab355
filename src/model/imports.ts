/**
 * The import workflows' contract: inputs, options with defaults, statuses, progress and queries.
 * Pure: shared by the workflows, the activities and the client.
 *
 * An app in another language starts an import with workflow type `importFriendsWorkflow` on
 * task queue `fanout`, workflow id `import/<network>/<accountId>`, and one JSON argument shaped
 * like {@link ImportFriendsInput}, e.g. `{"network":"fakebook","accountId":"alice"}`; the
 * account must have been connected first (its token is stored in MongoDB, never passed in).
 * @module
 */
import { defineQuery } from '@temporalio/workflow';
import { ValidationError } from '../errors';
import { TaskQueue } from './constants';
import { checkId, checkInt, checkNetworkName, checkObject, checkTaskQueue } from './validation';

/** Workflow type of a friend import. */
export const IMPORT_WORKFLOW_TYPE = 'importFriendsWorkflow';
/** Workflow type of a trickle / re-sync round (started by the schedules). */
export const TRICKLE_WORKFLOW_TYPE = 'trickleSyncWorkflow';

/** Workflow id of the import of one account: one import per account runs at a time. */
export function importWorkflowId(network: string, accountId: string): string {
  return `import/${network}/${accountId}`;
}

/** Defaults of {@link ImportOptions}. */
export const IMPORT_DEFAULTS = {
  pageSize: 100,
  maxPagesInFlight: 4,
  maxPages: 10_000,
  tinyPageRun: 3,
  whaleThreshold: 5_000,
  taskQueue: TaskQueue.IMPORT,
  whaleTaskQueue: TaskQueue.IMPORT_WHALE,
  maxPagesPerRun: 500,
  maxAttempts: 10,
} as const;

/** Tuning of one import. Every field is optional. */
export interface ImportOptions {
  /** Items asked per page (1..10,000), capped to the network's `maxPageSize`. @default 100 */
  pageSize?: number;
  /** Page fetches in flight at once for `offset` and `unknown-size` lists (1..100). @default 4 */
  maxPagesInFlight?: number;
  /** Guard: stop (status `stopped_max_pages`) after this many pages (1..1,000,000). @default 10000 */
  maxPages?: number;
  /**
   * Guard: stop (status `stopped_tiny_pages`) after this many short pages in a row that lie past
   * the total the network announced: LinkedIn's endless run of 1-item pages (1..100). @default 3
   */
  tinyPageRun?: number;
  /** Accounts with at least this many friends are whales: their pages go to `whaleTaskQueue`. @default 5000 */
  whaleThreshold?: number;
  /**
   * Queue of the profile call, and of the page fetches and imports of networks without a queue of
   * their own (a network's `taskQueue` wins, so its queue-wide rate limit covers every call). @default 'import'
   */
  taskQueue?: string;
  /** Queue of whales' page fetches and imports, served by workers of their own. @default 'import-whale' */
  whaleTaskQueue?: string;
  /** Continue as new after this many pages in one run (10..10,000), or when Temporal suggests it. @default 500 */
  maxPagesPerRun?: number;
  /** Attempts per API call on transient errors (1..100); rate-limit waits don't count. @default 10 */
  maxAttempts?: number;
}

/** How an import ended (or `running`). */
export type ImportStatus =
  | 'running'
  /** Every page walked and imported. */
  | 'completed'
  /** Guard: the network handed out a cursor it had handed out before. */
  | 'stopped_repeated_cursor'
  /** Guard: a run of short pages past the announced total (LinkedIn's off-by-one). */
  | 'stopped_tiny_pages'
  /** Guard: `maxPages` reached. */
  | 'stopped_max_pages'
  /** The token is expired or revoked: the account is marked and must reconnect. */
  | 'needs_reauth'
  /** An API call failed for good (rejected request, or transient errors past `maxAttempts`). */
  | 'failed'
  | 'cancelled';

/** Per-item outcomes of importing a page (or a whole import). Reasons count items. */
export interface ItemOutcomes {
  imported: number;
  skipped: number;
  failed: number;
  /** e.g. `{ "already imported": 3, "beyond announced total": 1 }` */
  skippedReasons: Record<string, number>;
  /** e.g. `{ "item has no id": 2 }` */
  failedReasons: Record<string, number>;
}

/** Empty outcomes. */
export const noOutcomes = (): ItemOutcomes => ({ imported: 0, skipped: 0, failed: 0, skippedReasons: {}, failedReasons: {} });

/** Adds `b` into `a`. */
export function addOutcomes(a: ItemOutcomes, b: ItemOutcomes): ItemOutcomes {
  a.imported += b.imported;
  a.skipped += b.skipped;
  a.failed += b.failed;
  for (const [k, v] of Object.entries(b.skippedReasons)) a.skippedReasons[k] = (a.skippedReasons[k] ?? 0) + v;
  for (const [k, v] of Object.entries(b.failedReasons)) a.failedReasons[k] = (a.failedReasons[k] ?? 0) + v;
  return a;
}

/** What the `importProgress` query answers, and what the workflow returns. */
export interface ImportProgress {
  network: string;
  accountId: string;
  /** Stable across continue-as-new; names the import in the account's `lastImport`. */
  importId: string;
  status: ImportStatus;
  /** One line for people: what happened and, when it stopped early, what to do. */
  message: string;
  /** How the list is walked, once known. */
  strategy?: 'offset' | 'cursor' | 'unknown-size';
  /** Friend count the network announced. */
  networkSize?: number;
  /** True if routed to the whale queue. */
  whale: boolean;
  /** Queue of this import's API calls. */
  taskQueue?: string;
  pageSize?: number;
  pagesFetched: number;
  pagesImported: number;
  pagesInFlight: number;
  /** Per-item outcomes so far. */
  items: ItemOutcomes;
  /** Times a call waited for a rate limit (ours or the network's), and for how long in all. */
  rateLimitWaits: number;
  waitedMs: number;
  /** Runs of this import so far (1 + continue-as-new count). */
  runs: number;
}

/** Query answering {@link ImportProgress}. */
export const importProgressQuery = defineQuery<ImportProgress>('importProgress');

/** Where a walk stands; carried over continue-as-new. Internal, but plain JSON. */
export interface ImportCarry {
  progress: ImportProgress;
  /** Next page number to launch. */
  nextPage: number;
  /** Cursor of the next page (`cursor` lists); null when the list ended. */
  cursor?: string | null;
  /** The most recent cursors, for the repeated-cursor guard. */
  recentCursors: string[];
  /** Total the network announced, if any. */
  total?: number;
  /** Short pages in a row past `total`. */
  tinyRun: number;
  /** Unknown-size lists: the first page found empty (the end of the list). */
  endedAt?: number;
  /** Cursor lists: items fetched so far (the position compared with `total`). */
  itemsSeen?: number;
}

/** Input of `importFriendsWorkflow`. */
export interface ImportFriendsInput {
  network: string;
  accountId: string;
  options?: ImportOptions;
  /** Set by the workflow itself when it continues as new. */
  carry?: ImportCarry;
}

/** Checks an import input; throws `ValidationError` naming the field. */
export function validateImportInput(input: unknown): { network: string; accountId: string; options: Required<ImportOptions>; carry?: ImportCarry } {
  const obj = checkObject('input', input);
  const network = checkNetworkName('network', obj.network);
  const accountId = checkId('accountId', obj.accountId);
  const o = obj.options === undefined ? {} : checkObject('options', obj.options);
  const options: Required<ImportOptions> = {
    pageSize: checkInt('options.pageSize', o.pageSize, 1, 10_000, IMPORT_DEFAULTS.pageSize),
    maxPagesInFlight: checkInt('options.maxPagesInFlight', o.maxPagesInFlight, 1, 100, IMPORT_DEFAULTS.maxPagesInFlight),
    maxPages: checkInt('options.maxPages', o.maxPages, 1, 1_000_000, IMPORT_DEFAULTS.maxPages),
    tinyPageRun: checkInt('options.tinyPageRun', o.tinyPageRun, 1, 100, IMPORT_DEFAULTS.tinyPageRun),
    whaleThreshold: checkInt('options.whaleThreshold', o.whaleThreshold, 1, Number.MAX_SAFE_INTEGER, IMPORT_DEFAULTS.whaleThreshold),
    taskQueue: o.taskQueue === undefined ? '' : checkTaskQueue('options.taskQueue', o.taskQueue),
    whaleTaskQueue: checkTaskQueue('options.whaleTaskQueue', o.whaleTaskQueue ?? IMPORT_DEFAULTS.whaleTaskQueue),
    maxPagesPerRun: checkInt('options.maxPagesPerRun', o.maxPagesPerRun, 10, 10_000, IMPORT_DEFAULTS.maxPagesPerRun),
    maxAttempts: checkInt('options.maxAttempts', o.maxAttempts, 1, 100, IMPORT_DEFAULTS.maxAttempts),
  };
  const known = new Set(Object.keys(IMPORT_DEFAULTS));
  for (const key of Object.keys(o)) if (!known.has(key)) throw new ValidationError(`options.${key}`, 'is not an import option');
  return { network, accountId, options, carry: obj.carry as ImportCarry | undefined };
}

/** Input of `trickleSyncWorkflow`: one polling round. */
export interface TrickleSyncInput {
  /** `trickle`: networks that cannot push (`canPush: false`); `resync`: every network. */
  mode: 'trickle' | 'resync';
  /** Accounts per round (1..1,000). */
  batchSize: number;
  /** Accounts synced more recently than this are left alone (ms, ≥ 0). */
  staleAfterMs: number;
  /** Queue of the imports' API calls. @default 'trickle' */
  taskQueue?: string;
  /** Options of each import. */
  importOptions?: ImportOptions;
}

/** Checks a trickle round's input; throws `ValidationError` naming the field. */
export function validateTrickleInput(input: unknown): Required<Omit<TrickleSyncInput, 'importOptions'>> & { importOptions: ImportOptions } {
  const obj = checkObject('input', input);
  if (obj.mode !== 'trickle' && obj.mode !== 'resync') throw new ValidationError('mode', `must be "trickle" or "resync", got ${JSON.stringify(obj.mode)}`);
  return {
    mode: obj.mode,
    batchSize: checkInt('batchSize', obj.batchSize, 1, 1000),
    staleAfterMs: checkInt('staleAfterMs', obj.staleAfterMs, 0, Number.MAX_SAFE_INTEGER),
    taskQueue: checkTaskQueue('taskQueue', obj.taskQueue ?? TaskQueue.TRICKLE),
    importOptions: obj.importOptions === undefined ? {} : (checkObject('importOptions', obj.importOptions) as ImportOptions),
  };
}

/** What a trickle round returns: how many accounts it polled and how their imports ended. */
export interface TrickleSyncResult {
  accounts: number;
  /** Imports by final status, plus `already_running` for accounts whose import was under way. */
  byStatus: Record<string, number>;
  items: ItemOutcomes;
}
