/**
 * `postBatchWorkflow`: one shard of batched small posts (see `src/contract/post-batch.ts`).
 *
 * Posts arrive as signals (the client's `signalWithStart`, durable once it returns). Whenever
 * posts wait, the shard writes up to `maxBatch` of them in one local activity, `writePostBatch`,
 * in the worker holding this workflow's task: one workflow task and one marker for the batch,
 * where a workflow per post paid a start, a task and a completion each. The activity records each
 * post's state in its activity document; a post with more than a page of followers is handed to a
 * `fanoutWorkflow` of its own (a child this run abandons), as if it had never been batched.
 *
 * Retries: a batch that fails with an error a retry may cure (the store down) is retried whole,
 * with backoff, for as long as it takes: its writes are idempotent and posts already finished are
 * skipped, so a worker killed mid-batch loses and duplicates nothing. Posts that keep arriving wait
 * in the run (and in its continue-as-new input).
 *
 * Deterministic: no I/O, clock or randomness here, only Temporal APIs.
 * @module
 */
import {
  ParentClosePolicy,
  WorkflowIdReusePolicy,
  condition,
  continueAsNew,
  log,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { PostBatchActivities } from '../activities/post-batch';
import { validateOrFail } from '../src/contract/failures';
import { FanoutOperation, fanoutWorkflowId } from '../src/contract/constants';
import type { FanoutWorkflowInput } from '../src/contract/fanout';
import { POST_BATCH_DEFAULTS, type PostBatchInput, type PostOutcome, type PostRequest, postSignal, validatePostBatchInput, validatePostRequest } from '../src/contract/post-batch';
import { actorKey, operationKey } from '../src/contract/search-attributes';
import { CHUNK_RETRY, shouldContinueAsNew } from './fanout/policies';

// A batch is a few point reads and writes per post: seconds even on a slow store. An attempt
// stuck longer is abandoned and retried (idempotent).
const { writePostBatch } = proxyLocalActivities<PostBatchActivities>({ startToCloseTimeout: '1 minute', retry: CHUNK_RETRY, summary: 'write a batch of small posts' });

/** Counts of a shard, for its current details. */
interface ShardCounts {
  written: number;
  handedOver: number;
  failed: number;
  removed: number;
  rejected: number;
}

/** Writes the small posts signalled to this shard, batch by batch, for ever (continuing as new). */
export async function postBatchWorkflow(rawInput: PostBatchInput): Promise<never> {
  const input = validateOrFail(validatePostBatchInput, rawInput);
  const { workflowId } = workflowInfo();
  const pending: PostRequest[] = [...(input.pending ?? [])];
  const counts: ShardCounts = { written: input.postsBefore ?? 0, handedOver: 0, failed: 0, removed: 0, rejected: 0 };
  const lastFailures: string[] = [];
  let lastRefusal: string | null = null;
  // Only runs started with the project's search attributes may set them on a child.
  const searchAttributes = workflowInfo().typedSearchAttributes.get(operationKey) !== undefined;
  const show = () =>
    setCurrentDetails(
      [
        `**Shard ${input.shard} of batched small posts.** Written: ${counts.written}; handed to their own fanout (more than a page of followers): ${counts.handedOver}; ` +
          `failed for good: ${counts.failed}; removed before written: ${counts.removed}; refused (bad input): ${counts.rejected}; waiting: ${pending.length}.`,
        ...(lastFailures.length ? [`Latest failures:\n${lastFailures.map((f) => `- ${f}`).join('\n')}`] : []),
        ...(lastRefusal ? [`Latest refused post: ${lastRefusal}`] : []),
        'Where one post stands: `FeedClient.getProgress(activityId)` (its activity document).',
      ].join('\n\n'),
    );
  // Set after `show`: signals that came with the start are delivered as the handler is set.
  setHandler(postSignal, (raw: PostRequest) => {
    // A bad post (an app in another language may send anything) is refused, never the shard's task.
    try {
      pending.push(validatePostRequest(raw));
    } catch (err) {
      counts.rejected++;
      lastRefusal = (err as Error).message;
      log.warn('batched post refused: bad input', { error: lastRefusal });
      show();
    }
  });
  show();
  const maxEvents = input.maxHistoryEvents ?? POST_BATCH_DEFAULTS.maxHistoryEvents;
  for (;;) {
    await condition(() => pending.length > 0 || shouldContinueAsNew(maxEvents));
    if (shouldContinueAsNew(maxEvents)) {
      // Posts not yet written travel with the new run; signals arriving meanwhile make the server
      // refuse this completion and deliver them first, so none is lost.
      const { pending: _before, postsBefore: _written, ...same } = input;
      return continueAsNew<typeof postBatchWorkflow>({ ...same, pending, postsBefore: counts.written });
    }
    const batch = pending.splice(0, POST_BATCH_DEFAULTS.maxBatch);
    const outcomes = await writePostBatch({ workflowId, posts: batch });
    const byId = new Map(batch.map((p) => [p.activityId, p]));
    for (const o of outcomes) await settle(o, byId.get(o.activityId)!, counts, lastFailures, searchAttributes);
    show();
  }
}

/** Counts one post's outcome; a big one gets its own fanout (a child this run abandons). */
async function settle(o: PostOutcome, post: PostRequest, counts: ShardCounts, lastFailures: string[], searchAttributes: boolean): Promise<void> {
  if (o.outcome === 'done') counts.written++;
  else if (o.outcome === 'removed') counts.removed++;
  else if (o.outcome === 'failed') {
    counts.failed++;
    lastFailures.unshift(`${o.activityId}: ${o.error ?? 'failed'}`);
    lastFailures.splice(5);
  } else {
    counts.handedOver++;
    const fanoutInput: FanoutWorkflowInput = { ...post, operation: FanoutOperation.ADD };
    try {
      await startChild('fanoutWorkflow', {
        workflowId: fanoutWorkflowId(FanoutOperation.ADD, post.activityId),
        args: [fanoutInput],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        staticSummary: `add fanout: ${post.activityId} by ${post.actorId} (handed over by a shard of batched posts: more than a page of followers)`,
        ...(searchAttributes
          ? { typedSearchAttributes: [{ key: actorKey, value: post.actorId }, { key: operationKey, value: FanoutOperation.ADD }] }
          : {}),
      });
    } catch (err) {
      // Handed over before (a batch retried after the start): its fanout runs already.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }
}
