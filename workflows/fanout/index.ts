/**
 * `fanoutWorkflow`: writes one activity into (or removes it from) the feeds of every follower of
 * its actor.
 *
 * It settles the feed types first (a local activity that checks them against the worker's
 * configuration, so a misspelled one fails the run before anything is written). To add, it runs
 * two priority passes one after the other (`fanoutPassWorkflow`, a child on each priority's queue):
 * the HIGH pass writes every active follower's feed on `high-fanout`, then the LOW pass the others'
 * on `low-fanout`, so active followers come first across the whole fanout, not page by page. Each
 * pass pages through the followers, cuts its priority's ids into chunks of `chunkSize` and writes
 * them as local activities, at most `maxInFlight` at a time, and reports to this run after every
 * page. To remove, it sweeps the activity's entries out by activity id, in batches on the LOW
 * queue. Runs started before the passes existed go on page by page (`PRIORITY_PASSES_PATCH`).
 * Before a history grows large the run waits for the work in flight and continues as new, carrying
 * only the cursor and the counters, so it scales to millions of followers.
 *
 * Failures are visible: chunks that fail for good make the run end *Failed* (`FanoutFailed`, with
 * counts and the first errors) once the others are done; a fanout whose chunks stop finishing for
 * `stalledAfterMs` (no worker on a queue, store down) is flagged `FanoutStalled` in the list view
 * and in its current details until they move again. Its `progress` query answers at any time.
 *
 * This file is the entry and the choice between the strategies, one file each: `inline.ts` (one
 * page), `passes.ts` (and `pass.ts`, the pass itself), `page-walk.ts` (chunks as activity tasks),
 * `sweep.ts` (a removal); `run.ts` holds the run's state, `stall-watch.ts` the stall flag,
 * `details.ts` what the Web UI shows, `chunks.ts` and `policies.ts` what the strategies share.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import { CancellationScope, condition, isCancellation, log, patched, proxyLocalActivities, setHandler, sleep } from '@temporalio/workflow';
import type { FanoutActivities } from '../../activities/fanout';
import { ValidationError } from '../../src/contract/errors';
import { validateOrFail } from '../../src/contract/failures';
import { FanoutOperation, FeedType } from '../../src/contract/constants';
import {
  ChunkExecution,
  type FanoutProgress,
  type FanoutWorkflowInput,
  initialProgress,
  progressQuery,
  type ResolvedFanoutInput,
  validateFanoutInput,
} from '../../src/contract/fanout';
import { chunkActivities } from './chunks';
import { readFirstPage, writeOnePage } from './inline';
import { readPage, walkPages } from './page-walk';
import { runPasses } from './passes';
import { CHUNK_RETRY } from './policies';
import { FanoutRun } from './run';
import { watchForStalls } from './stall-watch';
import { sweepEntries } from './sweep';

export { CHUNK_FAILURE_MARKER_PATCH } from './run';

/**
 * The patch that made fanouts write by priority passes (`fanoutPassWorkflow`): runs started
 * before it go on page by page when they replay. Kept while such runs may exist.
 */
export const PRIORITY_PASSES_PATCH = 'fanout-priority-passes';

/**
 * The patch that made `chunksAsActivities: true` mean passes whose chunks are activity tasks
 * (`chunkExecution: 'activity'`); runs started before it asked for the page-by-page walk.
 */
export const ACTIVITY_CHUNK_PASSES_PATCH = 'fanout-activity-chunk-passes';

// Checked against the workflow worker's configuration, in-process: no task queue round trip.
const { resolveFanoutFeedTypes } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: '10 seconds', retry: CHUNK_RETRY });

/** Validates the input (a bad one, even a bizarre one, fails the run, never the workflow task). */
function validate(raw: FanoutWorkflowInput): ResolvedFanoutInput {
  return validateOrFail((value) => {
    const input = validateFanoutInput(value);
    const chunksPerPage = Math.ceil(input.pageSize / input.chunkSize);
    if (chunksPerPage > 1000) {
      throw new ValidationError('input.pageSize', `divided by chunkSize must give at most 1000 chunks per page, got ${chunksPerPage}`);
    }
    return input;
  }, raw);
}

/** Fans one activity out to (or removes it from) the feeds of its actor's followers. */
export async function fanoutWorkflow(rawInput: FanoutWorkflowInput): Promise<FanoutProgress> {
  const input = validate(rawInput);
  const run = new FanoutRun(input, rawInput, input.continued?.progress ?? initialProgress(input));
  setHandler(progressQuery, () => run.progress);
  try {
    return await fanOut(run);
  } catch (err) {
    if (isCancellation(err)) {
      // Cancelled (the activity is being removed): the chunks in flight were asked to cancel and
      // stop between feed types. Wait for them before closing, so the caller
      // (FeedClient.removeActivity) knows no write of this run can land after the removal.
      await CancellationScope.nonCancellable(() => condition(() => run.inFlight() === 0));
      log.info('fanout cancelled; chunks in flight finished', { activityId: input.activityId, followers: run.progress.followersSeen });
    }
    throw err;
  } finally {
    run.finished = true;
  }
}

/**
 * Settles the feed types and picks the strategy: a removal sweeps; an add of one page is written
 * here (`inline.ts`), a larger one by a HIGH then a LOW pass (`passes.ts`); a run that began before
 * the passes (no marker in its history) goes on page by page (see the README, "Changing a
 * workflow safely"), as does one that asked for `chunksAsActivities` before it meant
 * `chunkExecution: 'activity'`.
 */
async function fanOut(run: FanoutRun): Promise<FanoutProgress> {
  const { input, progress } = run;
  if (!input.continued && input.publishAt !== undefined) {
    // Scheduled post: a durable timer, so the wait survives worker restarts and deploys.
    const wait = input.publishAt - Date.now();
    if (wait > 0) await sleep(wait);
  }
  // Watched from here on (not during a scheduled post's wait: its timers would fill history).
  watchForStalls(run).catch(() => undefined);
  const removal = input.operation === FanoutOperation.REMOVE;
  // Passes read their own pages; the page-by-page walk reads its first page while the feed types
  // are settled (no chunk goes out before both).
  const byPasses =
    !removal && !input.continued && (!input.chunksAsActivities || patched(ACTIVITY_CHUNK_PASSES_PATCH)) && patched(PRIORITY_PASSES_PATCH);
  const nextPage = removal || byPasses ? null : readPage(run, run.cursor);
  // Fanouts by passes read the first page here, alongside the feed types (both are local
  // activities: they run at once): most fanouts fit in it.
  const firstPage = byPasses ? readFirstPage(run) : null;
  if (!(input.continued && input.feedTypes)) {
    run.feedTypes = await resolveFanoutFeedTypes(input.feedTypes ? { feedTypes: input.feedTypes } : {});
    progress.feedTypes = run.feedTypes;
  }
  if (removal) return sweepEntries(run);
  if (!input.continued && input.publishAt !== undefined) {
    // The client leaves the actor's own feed to us for scheduled posts: publish it now.
    await chunkActivities({ taskQueue: input.highTaskQueue }, `the actor's own ${FeedType.USER} feed (scheduled post)`).writeFeedChunk({
      ...run.chunkBase(),
      feedTypes: [FeedType.USER],
      followerIds: [input.actorId],
    });
  }
  if (!firstPage) return walkPages(run, nextPage!);
  run.pageWaitSince = Date.now();
  const first = await firstPage;
  run.pageWaitSince = null;
  if (first.nextCursor !== null) return runPasses(run);
  // One page: written here, as local activities, or as activity tasks on the priority queues.
  return input.chunkExecution === ChunkExecution.ACTIVITY ? walkPages(run, Promise.resolve(first)) : writeOnePage(run, first);
}
