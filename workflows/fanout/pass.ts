/**
 * `fanoutPassWorkflow`: one priority's pass of an `add` fanout. Its fanout starts it on the
 * priority's task queue (`high-fanout` for active followers, `low-fanout` for the rest), the HIGH
 * pass first and the LOW pass once every active follower has the entry: active followers first
 * across the whole fanout, not page by page.
 *
 * It pages through the actor's followers (`getFollowerPagePart`, keeping its priority's), cuts
 * them into chunks of `chunkSize` and writes each chunk with `writeFeedChunk`, at most
 * `maxInFlight` at a time. Both are *local* activities: they run in the worker that runs this pass,
 * on its queue, and their results are recorded in the pass's history with its workflow tasks, so a
 * chunk costs the Temporal server a marker instead of an activity task's scheduling, dispatch, start
 * and completion. That is most of the server's work per chunk (see the README's benchmark). A
 * worker that dies mid-pass loses only the chunks not yet recorded, which the next worker writes
 * again (idempotent writes: nothing is written twice).
 *
 * It signals its progress to the fanout, which shows it and watches for stalls, whenever it lets its
 * workflow task complete (see `PassFlush`). It continues as new before its history grows large.
 *
 * Every decision that issues a command here depends only on what replay sees the same way: counts
 * of what was dispatched, awaited results, and chunk outcomes read right after a flush (when every
 * chunk dispatched before it has ended). A local activity's result reaches replay at another moment
 * than it reached the first run, so deciding on outcomes as they arrive (to stop, to flush, to
 * record a marker) would issue commands in another order and fail the run's replay.
 *
 * Its state and steps are a `PassRun` (`pass-run.ts`), one per run.
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import { validateOrFail } from '../../src/contract/failures';
import { type FanoutPassInput, type PassProgress, validatePassInput } from '../../src/contract/fanout-pass';
import { PassRun } from './pass-run';

export { FLUSH_BY_COUNT_PATCH, FLUSH_BY_SIZE_PATCH, PROBE_PATCH, RECOVER_BEFORE_READ_PATCH } from './pass-run';

/** Writes one priority's followers' feeds; returns the pass's progress. */
export async function fanoutPassWorkflow(rawInput: FanoutPassInput): Promise<PassProgress> {
  return new PassRun(validateOrFail(validatePassInput, rawInput)).walk();
}
