/**
 * `followWorkflow`: applies follow and unfollow requests for one (follower, followee) pair, one
 * at a time, in arrival order.
 *
 * Requests arrive as `followRequest` signals (the client uses signal-with-start, so the first
 * request starts the workflow and later ones join it while it runs). Only the newest pending
 * request matters: a follow then an unfollow sent while an earlier request is being applied ends
 * unfollowed, whatever order their activities would have run in. When no request is pending the
 * workflow returns; the next request starts a new run under the same id.
 *
 * Follow: record the edge and count it (`applyFollow`); if it is new, copy the followee's most
 * recent activities into the follower's feeds in batches (`backfillFeeds`) and notify the
 * followee. Unfollow: remove and uncount the edge, then remove the followee's activities from the
 * follower's feeds (always, which also cleans entries a concurrent fanout wrote).
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import { continueAsNew, log, patched, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { BackfillResult, FollowActivities } from '../activities/follow';
import { HEARTBEAT_TIMEOUT_MS } from '../src/contract/constants';
import { validateOrFail } from '../src/contract/failures';
import {
  type FollowRequest,
  followRequestSignal,
  type FollowState,
  followStateQuery,
  type FollowWorkflowInput,
  validateFollowInput,
  validateFollowRequest,
} from '../src/contract/follow';
import { backoffRetry } from './retry';

/** The patch id of the follow workflow's continue-as-new (kept while runs without it may exist). */
export const FOLLOW_CONTINUE_AS_NEW_PATCH = 'follow-continue-as-new';

// Transient failures (database down, worker crash) are retried with backoff and no attempt limit:
// an outage delays a follow but never leaves it half done. Bad input fails at once.
const retry = backoffRetry();

// Each activity is a handful of small writes (a backfill batch: one read and one insert per
// feed). They heartbeat while they run, so a worker killed mid-step costs the heartbeat timeout,
// not the start-to-close timeout; the latter only bounds a step that hangs outright.
const acts = proxyActivities<FollowActivities>({ startToCloseTimeout: '5 minutes', heartbeatTimeout: HEARTBEAT_TIMEOUT_MS, retry });

/** Applies the follow / unfollow requests of one pair; returns the pair's state when idle. */
export async function followWorkflow(rawInput: FollowWorkflowInput): Promise<FollowState> {
  const input = validateOrFail(validateFollowInput, rawInput);
  const { follower, followee } = input;
  const feedTypes = input.feedTypes ? { feedTypes: input.feedTypes } : {};
  const state: FollowState = input.carry?.state ?? {
    follower,
    followee,
    following: null,
    requestsReceived: 0,
    requestsApplied: 0,
    lastRequestId: null,
    followed: 0,
    unfollowed: 0,
    backfilled: 0,
    removedEntries: 0,
  };
  let pending: FollowRequest[] = input.carry?.pending ?? [];
  setHandler(followRequestSignal, (raw) => {
    try {
      pending.push(validateFollowRequest(raw));
      state.requestsReceived++;
    } catch (err) {
      // A bad signal cannot fail the sender (signals have no reply): log it and drop it.
      log.warn('ignored an invalid follow request', { follower, followee, error: (err as Error).message });
    }
  });
  setHandler(followStateQuery, () => state);

  let seq = 0;
  while (pending.length > 0) {
    // A pair whose requests never stop coming would grow its history toward Temporal's limit:
    // hand the pending requests and the state to a new run. Added after runs were in flight, so
    // behind a patch: a run recorded without the marker replays the old way (no handover), one
    // started by this code records it (see the README, "Changing a workflow safely").
    const info = workflowInfo();
    if ((info.continueAsNewSuggested || info.historyLength > input.maxHistoryEvents) && patched(FOLLOW_CONTINUE_AS_NEW_PATCH)) {
      const { carry: _previous, ...original } = rawInput;
      return continueAsNew<typeof followWorkflow>({ ...original, carry: { pending, state } });
    }
    // Newest wins: requests that arrived while the previous one was applied are superseded.
    const req = pending[pending.length - 1];
    const superseded = pending.length - 1;
    pending = [];
    // Unique per applied request: the idempotency token of its edge and count changes.
    const op = `${workflowInfo().runId}.${seq++}`;
    const change = { follower, followee, op, at: req.at };
    if (req.follow) {
      const { created } = await acts.applyFollow(change);
      if (created) {
        state.followed++;
        let before: string | null = null;
        let copied = 0;
        while (copied < input.backfillLimit) {
          const limit = Math.min(input.backfillBatchSize, input.backfillLimit - copied);
          const batch: BackfillResult = await acts.backfillFeeds({ follower, followee, ...feedTypes, before, limit });
          copied += batch.copied;
          before = batch.nextCursor;
          if (before === null) break;
        }
        state.backfilled += copied;
        if (input.notify) await acts.notifyFollow(change);
      }
    } else {
      const { removed } = await acts.applyUnfollow(change);
      if (removed) state.unfollowed++;
      state.removedEntries += (await acts.removeFolloweeActivities({ follower, followee, ...feedTypes })).removed;
    }
    state.following = req.follow;
    state.requestsApplied += superseded + 1;
    state.lastRequestId = req.requestId;
  }
  // A request signalled while this run completes makes the server reject the completion and run
  // the workflow again with it, so no request is lost between "nothing pending" and "done".
  return state;
}
