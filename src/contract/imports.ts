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
import { ValidationError } from './errors';
import { Limits, TaskQueue } from './constants';
import { checkBoolean, checkCount, checkCountRecord, checkId, checkInt, checkKeys, checkNetworkName, checkTaskQueue, checkText } from './validation';

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

/** Every option of {@link ImportOptions}, for checking that no unknown one is passed. */
export const IMPORT_OPTION_KEYS = [
  'pageSize',
  'maxPagesInFlight',
  'maxPages',
  'tinyPageRun',
  'whaleThreshold',
  'taskQueue',
  'whaleTaskQueue',
  'maxPagesPerRun',
  'maxAttempts',
] as const satisfies ReadonlyArray<keyof ImportOptions>;

/** Largest `maxPages`, hence the largest page number an import reaches. */
const MAX_PAGES = 1_000_000;

/**
 * Validates import options at `field` (e.g. `input.options`): unknown options and prototype keys
 * fail, naming `<field>.<key>`. Returns them with defaults applied; `taskQueue` stays `''` when
 * not given (the network's own queue, else `import`, is chosen once the network is known).
 */
export function resolveImportOptions(field: string, raw: unknown): Required<ImportOptions> {
  const o = checkKeys(field, raw, IMPORT_OPTION_KEYS);
  return {
    pageSize: checkInt(`${field}.pageSize`, o.pageSize, 1, Limits.MAX_PAGE_SIZE, IMPORT_DEFAULTS.pageSize),
    maxPagesInFlight: checkInt(`${field}.maxPagesInFlight`, o.maxPagesInFlight, 1, 100, IMPORT_DEFAULTS.maxPagesInFlight),
    maxPages: checkInt(`${field}.maxPages`, o.maxPages, 1, MAX_PAGES, IMPORT_DEFAULTS.maxPages),
    tinyPageRun: checkInt(`${field}.tinyPageRun`, o.tinyPageRun, 1, 100, IMPORT_DEFAULTS.tinyPageRun),
    whaleThreshold: checkInt(`${field}.whaleThreshold`, o.whaleThreshold, 1, Number.MAX_SAFE_INTEGER, IMPORT_DEFAULTS.whaleThreshold),
    taskQueue: o.taskQueue === undefined ? '' : checkTaskQueue(`${field}.taskQueue`, o.taskQueue),
    whaleTaskQueue: checkTaskQueue(`${field}.whaleTaskQueue`, o.whaleTaskQueue ?? IMPORT_DEFAULTS.whaleTaskQueue),
    maxPagesPerRun: checkInt(`${field}.maxPagesPerRun`, o.maxPagesPerRun, 10, 10_000, IMPORT_DEFAULTS.maxPagesPerRun),
    maxAttempts: checkInt(`${field}.maxAttempts`, o.maxAttempts, 1, 100, IMPORT_DEFAULTS.maxAttempts),
  };
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
  networkSize?: number | undefined;
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

/** Every field of {@link ImportFriendsInput}. */
const IMPORT_INPUT_KEYS = ['network', 'accountId', 'options', 'carry'] as const satisfies ReadonlyArray<keyof ImportFriendsInput>;

/** An import's input after validation: options with defaults applied, `carry` checked. */
export interface ResolvedImportInput {
  network: string;
  accountId: string;
  options: Required<ImportOptions>;
  carry?: ImportCarry;
}

/**
 * Validates an import's input (it may come from another language, the CLI or a schedule):
 * unknown fields, prototype keys, wrong types, non-finite numbers and a malformed `carry` all
 * fail here.
 * @throws ValidationError naming the field (`input.<field>`).
 */
export function validateImportInput(raw: unknown): ResolvedImportInput {
  const input = checkKeys('input', raw, IMPORT_INPUT_KEYS);
  const network = checkNetworkName('input.network', input.network);
  const accountId = checkId('input.accountId', input.accountId);
  const options = resolveImportOptions('input.options', input.options === undefined ? {} : input.options);
  if (input.carry === undefined) return { network, accountId, options };
  return { network, accountId, options, carry: validateCarry('input.carry', input.carry, network, accountId) };
}

/** How many recent cursors the repeated-cursor guard remembers across continue-as-new. */
export const RECENT_CURSORS = 50;
/** Longest cursor carried over: a network's cursor goes back in a URL, where ~8 KB is the usual limit. */
const MAX_CURSOR_LENGTH = 8192;
/** Distinct skip or failure reasons kept per import, and their length (the store uses a handful of short ones). */
const MAX_REASONS = 50;
const MAX_REASON_LENGTH = 200;

const CARRY_KEYS = ['progress', 'nextPage', 'cursor', 'recentCursors', 'total', 'tinyRun', 'endedAt', 'itemsSeen'] as const satisfies ReadonlyArray<keyof ImportCarry>;
const PROGRESS_KEYS = [
  'network', 'accountId', 'importId', 'status', 'message', 'strategy', 'networkSize', 'whale', 'taskQueue', 'pageSize',
  'pagesFetched', 'pagesImported', 'pagesInFlight', 'items', 'rateLimitWaits', 'waitedMs', 'runs',
] as const satisfies ReadonlyArray<keyof ImportProgress>;
const OUTCOME_KEYS = ['imported', 'skipped', 'failed', 'skippedReasons', 'failedReasons'] as const satisfies ReadonlyArray<keyof ItemOutcomes>;
const STRATEGIES = ['offset', 'cursor', 'unknown-size'] as const;

/**
 * Checks the state an import carries over continue-as-new. Written by the workflow itself, but it
 * is input all the same (a hand-made start can pass anything), and a bad one must fail the run
 * with a clear error rather than a TypeError in every workflow task. Returns a fresh copy.
 */
function validateCarry(field: string, raw: unknown, network: string, accountId: string): ImportCarry {
  const c = checkKeys(field, raw, CARRY_KEYS);
  const optionalCount = (key: 'total' | 'endedAt' | 'itemsSeen'): Partial<ImportCarry> =>
    c[key] === undefined ? {} : { [key]: checkCount(`${field}.${key}`, c[key]) };
  const cursors = c.recentCursors;
  if (!Array.isArray(cursors) || cursors.length > RECENT_CURSORS) {
    throw new ValidationError(`${field}.recentCursors`, `must be a list of at most ${RECENT_CURSORS} cursors`);
  }
  return {
    progress: validateCarriedProgress(`${field}.progress`, c.progress, network, accountId),
    nextPage: checkCount(`${field}.nextPage`, c.nextPage, MAX_PAGES),
    ...(c.cursor === undefined ? {} : { cursor: c.cursor === null ? null : checkText(`${field}.cursor`, c.cursor, MAX_CURSOR_LENGTH) }),
    recentCursors: cursors.map((v: unknown, i) => checkText(`${field}.recentCursors[${i}]`, v, MAX_CURSOR_LENGTH)),
    tinyRun: checkCount(`${field}.tinyRun`, c.tinyRun),
    ...optionalCount('total'),
    ...optionalCount('endedAt'),
    ...optionalCount('itemsSeen'),
  };
}

/** Checks a carried {@link ImportProgress}: the progress of a running import of this very account. */
function validateCarriedProgress(f: string, raw: unknown, network: string, accountId: string): ImportProgress {
  const p = checkKeys(f, raw, PROGRESS_KEYS);
  if (p.network !== network) throw new ValidationError(`${f}.network`, `must equal input.network (${JSON.stringify(network)}), got ${JSON.stringify(p.network)}`);
  if (p.accountId !== accountId) throw new ValidationError(`${f}.accountId`, `must equal input.accountId (${JSON.stringify(accountId)}), got ${JSON.stringify(p.accountId)}`);
  if (p.status !== 'running') throw new ValidationError(`${f}.status`, 'must be "running" (a finished import does not continue)');
  const strategy = p.strategy;
  if (strategy !== undefined && !STRATEGIES.includes(strategy as (typeof STRATEGIES)[number])) {
    throw new ValidationError(`${f}.strategy`, `must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`);
  }
  // Once the strategy is known, the walk uses the queue and page size settled with it.
  const settled = strategy !== undefined;
  const i = checkKeys(`${f}.items`, p.items, OUTCOME_KEYS);
  // A run hands over only once its pages have finished, so nothing is in flight at the start.
  checkInt(`${f}.pagesInFlight`, p.pagesInFlight, 0, 0);
  return {
    network,
    accountId,
    importId: checkText(`${f}.importId`, p.importId, 512),
    status: 'running',
    message: checkText(`${f}.message`, p.message, 2000),
    ...(settled ? { strategy: strategy as (typeof STRATEGIES)[number] } : {}),
    ...(p.networkSize === undefined ? {} : { networkSize: checkCount(`${f}.networkSize`, p.networkSize) }),
    whale: checkBoolean(`${f}.whale`, p.whale),
    ...(settled || p.taskQueue !== undefined ? { taskQueue: checkTaskQueue(`${f}.taskQueue`, p.taskQueue) } : {}),
    ...(settled || p.pageSize !== undefined ? { pageSize: checkInt(`${f}.pageSize`, p.pageSize, 1, Limits.MAX_PAGE_SIZE) } : {}),
    pagesFetched: checkCount(`${f}.pagesFetched`, p.pagesFetched),
    pagesImported: checkCount(`${f}.pagesImported`, p.pagesImported),
    pagesInFlight: 0,
    items: {
      imported: checkCount(`${f}.items.imported`, i.imported),
      skipped: checkCount(`${f}.items.skipped`, i.skipped),
      failed: checkCount(`${f}.items.failed`, i.failed),
      skippedReasons: checkCountRecord(`${f}.items.skippedReasons`, i.skippedReasons, MAX_REASONS, MAX_REASON_LENGTH),
      failedReasons: checkCountRecord(`${f}.items.failedReasons`, i.failedReasons, MAX_REASONS, MAX_REASON_LENGTH),
    },
    rateLimitWaits: checkCount(`${f}.rateLimitWaits`, p.rateLimitWaits),
    waitedMs: checkCount(`${f}.waitedMs`, p.waitedMs),
    runs: checkCount(`${f}.runs`, p.runs),
  };
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

/** Every field of {@link TrickleSyncInput}. */
const TRICKLE_INPUT_KEYS = ['mode', 'batchSize', 'staleAfterMs', 'taskQueue', 'importOptions'] as const satisfies ReadonlyArray<keyof TrickleSyncInput>;

/** Largest `staleAfterMs`: `now - staleAfterMs` must still be a valid `Date`. */
const MAX_STALE_AFTER_MS = 8.64e15;

/**
 * Checks a trickle round's input: unknown fields and prototype keys fail, and `importOptions` is
 * checked like an import's `options`. `importOptions` is returned as given (each import applies
 * the defaults itself).
 * @throws ValidationError naming the field (`input.<field>`).
 */
export function validateTrickleInput(raw: unknown): Required<Omit<TrickleSyncInput, 'importOptions'>> & { importOptions: ImportOptions } {
  const input = checkKeys('input', raw, TRICKLE_INPUT_KEYS);
  if (input.mode !== 'trickle' && input.mode !== 'resync') throw new ValidationError('input.mode', `must be "trickle" or "resync", got ${JSON.stringify(input.mode)}`);
  if (input.importOptions !== undefined) resolveImportOptions('input.importOptions', input.importOptions);
  return {
    mode: input.mode,
    batchSize: checkInt('input.batchSize', input.batchSize, 1, 1000),
    staleAfterMs: checkInt('input.staleAfterMs', input.staleAfterMs, 0, MAX_STALE_AFTER_MS),
    taskQueue: checkTaskQueue('input.taskQueue', input.taskQueue ?? TaskQueue.TRICKLE),
    // Checked above: only known options, so a copy carries nothing else.
    importOptions: input.importOptions === undefined ? {} : { ...(input.importOptions as ImportOptions) },
  };
}

/** What a trickle round returns: how many accounts it polled and how their imports ended. */
export interface TrickleSyncResult {
  accounts: number;
  /** Imports by final status, plus `already_running` for accounts whose import was under way. */
  byStatus: Record<string, number>;
  items: ItemOutcomes;
}
