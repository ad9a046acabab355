/**
 * A removal: sweeps the activity's entries out of the feeds by activity id, one batch at a time
 * on the LOW queue (counted as LOW chunks), until none is left. Readers stopped seeing the
 * activity when the client marked it removed, so there is no follower order to keep.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { isCancellation } from '@temporalio/workflow';
import type { FanoutProgress } from '../../src/contract/fanout';
import { chunkActivities } from './chunks';
import { shouldContinueAsNew } from './policies';
import type { FanoutRun } from './run';

/** Sweeps until no entry is left (continuing as new on the way), then finishes. */
export async function sweepEntries(run: FanoutRun): Promise<FanoutProgress> {
  const { input } = run;
  const counters = run.progress.low;
  for (;;) {
    counters.chunksInFlight++;
    run.lastMoved.low = Date.now();
    let more: boolean;
    try {
      const summary = `removal batch ${counters.chunksDone + counters.chunksFailed + 1}: up to ${input.removeBatchSize} entries per feed type`;
      const res = await chunkActivities({ taskQueue: input.lowTaskQueue }, summary).removeActivityEntries({
        activityId: input.activityId,
        actorId: input.actorId,
        feedTypes: run.feedTypes,
        limit: input.removeBatchSize,
      });
      counters.chunksDone++;
      counters.entriesChanged += res.changed;
      more = res.more;
    } catch (err) {
      if (isCancellation(err)) throw err;
      counters.chunksFailed++;
      run.noteFailure('low', err as Error, input.removeBatchSize);
      more = false;
    } finally {
      counters.chunksInFlight--;
      run.moved('low');
    }
    if (!more) break;
    if (shouldContinueAsNew(input.maxHistoryEvents)) return run.continueAsNew(null);
  }
  return run.finish();
}
