/**
 * A fanout of one page (most posts: a page holds `pageSize`, 5,000 by default): the fanout reads
 * the first page itself and, when it is the only one, writes its chunks itself, HIGH first, as
 * local activities: no child workflow and no activity task, a marker per chunk.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { proxyLocalActivities } from '@temporalio/workflow';
import type { FanoutActivities } from '../../activities/fanout';
import type { FanoutProgress } from '../../src/contract/fanout';
import type { FollowerPage } from '../../src/contract/follower-source';
import { walkPages } from './page-walk';
import { CHUNK_RETRY, startedAhead } from './policies';
import type { FanoutRun } from './run';

// The first page of an add, read in this worker: one marker in history, no activity task.
const { getFollowerPage: readPageHere } = proxyLocalActivities<FanoutActivities>({ startToCloseTimeout: '5 minutes', retry: CHUNK_RETRY });

/** Starts reading the first page in this worker; awaited later (once the feed types are settled): see `startedAhead`. */
export function readFirstPage(run: FanoutRun): Promise<FollowerPage> {
  return startedAhead(readPageHere({ userId: run.input.actorId, cursor: null, limit: run.input.pageSize }));
}

/** Writes the one page `first` (its `nextCursor` is null) with chunks as local activities, then finishes. */
export function writeOnePage(run: FanoutRun, first: FollowerPage): Promise<FanoutProgress> {
  run.chunksHere = true;
  return walkPages(run, Promise.resolve(first));
}
