/**
 * A fanout page by page: it reads a page of followers, starts the page's chunks (HIGH first) and
 * reads the next page while they are written; past `maxHistoryEvents` it waits for the chunks in
 * flight and continues as new with the cursor. The chunks of a one-page fanout run here as local
 * activities (`inline.ts`); with `chunksAsActivities` (and in runs started before the passes) each
 * is an activity task on its priority's queue, HIGH before LOW within each page only.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { condition, proxyActivities } from '@temporalio/workflow';
import type { FanoutActivities } from '../../activities/fanout';
import { HEARTBEAT_TIMEOUT_MS } from '../../src/contract/constants';
import type { FanoutProgress } from '../../src/contract/fanout';
import type { FollowerPage } from '../../src/contract/follower-source';
import { CHUNK_RETRY, shouldContinueAsNew, startedAhead } from './policies';
import type { FanoutRun } from './run';

// The page read heartbeats while it runs (activities/heartbeat.ts): a worker killed mid-call is
// noticed after the heartbeat timeout (seconds), and a live one on a slow store is never timed
// out while it still works. The start-to-close timeout only bounds a call that hangs outright.
const { getFollowerPage } = proxyActivities<FanoutActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT_MS,
  retry: CHUNK_RETRY,
});

/** Starts reading the page after `from` (an activity task on the fanout's queue); awaited later: see `startedAhead`. */
export function readPage(run: FanoutRun, from: string | null): Promise<FollowerPage> {
  return startedAhead(getFollowerPage({ userId: run.input.actorId, cursor: from, limit: run.input.pageSize }));
}

/** Writes the pages from `nextPage` on, then finishes (or continues as new). */
export async function walkPages(run: FanoutRun, nextPage: Promise<FollowerPage>): Promise<FanoutProgress> {
  const { input, progress } = run;
  for (;;) {
    run.pageWaitSince = Date.now();
    const page = await nextPage;
    run.pageWaitSince = null;
    if (progress.stalled !== null) run.wakeWatch = true;
    progress.pagesRead++;
    progress.followersSeen += page.high.length + page.low.length;
    progress.high.followers += page.high.length;
    progress.low.followers += page.low.length;
    run.cursor = page.nextCursor;
    const handOver = run.cursor !== null && shouldContinueAsNew(input.maxHistoryEvents);
    // Read the next page while this page's chunks are written (not when handing over to a new run).
    if (run.cursor !== null && !handOver) nextPage = readPage(run, run.cursor);
    run.showProgress();
    // HIGH chunks go first so active users see the activity first.
    dispatch: for (const [priority, ids] of [['high', page.high], ['low', page.low]] as const) {
      for (let i = 0; i < ids.length; i += input.chunkSize) {
        // Wait only when full: `condition` makes promises even when already true.
        if (run.inFlight() >= input.maxInFlight) await condition(() => run.inFlight() < input.maxInFlight);
        if (run.stopsMidPage()) break dispatch;
        run.startChunk(priority, ids.slice(i, i + input.chunkSize));
      }
    }
    if (run.cursor === null || run.stopped()) break;
    if (handOver) {
      // Pending activities cannot be carried over: let them finish, then hand over the cursor.
      await condition(() => run.inFlight() === 0);
      if (run.stopped()) break;
      return run.continueAsNew(run.cursor);
    }
  }
  return run.finish();
}
