/**
 * What a fanout says about itself in words: its current details in the Web UI (live counts per
 * priority, a stall, the failed chunks) and the failure it ends with when chunks failed for good.
 * Pure functions of the run's state.
 * @module
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { FANOUT_FAILED_FAILURE_TYPE } from '../../src/contract/errors';
import { FanoutOperation } from '../../src/contract/constants';
import { describeRetry, type FanoutProgress, type PriorityProgress, type ResolvedFanoutInput } from '../../src/contract/fanout';
import { describeFailure } from './policies';

/** What the details are made of: a run's progress and what its passes reported (see `FanoutRun`). */
export interface RunView {
  readonly input: ResolvedFanoutInput;
  readonly progress: FanoutProgress;
  readonly passRunning: { readonly high: boolean; readonly low: boolean };
  readonly highPassDone: boolean;
  readonly alreadyWritten: number;
  readonly partitions: number;
}

/** A count with thousands separators, as the Web UI shows it. */
export function num(x: number): string {
  return String(x).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * One priority's line of the current details. Every count says what it counts at that moment:
 * followers whose chunk finished, of those found so far (and of all there are, once known).
 */
export function priorityLine(name: 'HIGH' | 'LOW', c: PriorityProgress, done: boolean, passRunning: boolean, expected?: number): string {
  const chunks = `${c.chunksInFlight} chunks in flight, ${c.chunksDone} done, ${c.chunksFailed} failed`;
  if (!done && c.followers === 0) {
    const toWrite = expected === undefined ? '' : ` (${num(expected)} followers to write)`;
    return `${name}: ${passRunning ? 'pass started, nothing reported yet' : 'none found yet'}${toWrite}`;
  }
  const written = c.followersWritten ?? c.entriesChanged;
  if (done) return `${name}: ${num(written)} of ${num(c.followers)} followers written; ${chunks}`;
  const all = expected === undefined ? '' : ` (${num(expected)} in all)`;
  return `${name}: ${num(written)} of the ${num(c.followers)} followers found so far written${all}; ${chunks}`;
}

/** The run's current details: a stall or a removal first (the Web UI shows the top), then the counts, then the failed chunks. */
export function currentDetails(run: RunView): string {
  const { progress, input } = run;
  const failed = progress.high.chunksFailed + progress.low.chunksFailed;
  // LOW followers to expect, once the HIGH pass has seen every follower.
  const lowExpected = run.highPassDone ? progress.followersSeen - progress.high.followers - run.alreadyWritten : undefined;
  return [
    ...(progress.stalled ? [`**Stalled:** ${progress.stalled}`] : []),
    ...(progress.retrying && !progress.stalled ? [`**Retrying:** ${describeRetry(progress.retrying)}`] : []),
    ...(progress.activityRemoved ? ['**Removed:** the activity was removed while this fanout ran; its chunks stopped writing, and the removal sweeps what was written.'] : []),
    `**${input.operation} fanout of ${input.activityId}** by ${input.actorId}: ${progress.done ? 'done' : 'running'}, ` +
      `${num(progress.followersSeen)} followers seen in ${progress.pagesRead} pages (run ${progress.continuedAsNew + 1})` +
      (run.partitions > 1 ? `; ${run.partitions} partitions per priority, chunks as ${input.chunkExecution === 'activity' ? 'activity tasks' : 'local activities'}` : ''),
    ...(input.operation === FanoutOperation.REMOVE
      ? [`Removed ${num(progress.low.entriesChanged)} entries in ${progress.low.chunksDone} batches, ${progress.low.chunksInFlight} in flight, ${progress.low.chunksFailed} failed`]
      : [
          priorityLine('HIGH', progress.high, progress.done || run.highPassDone, run.passRunning.high),
          priorityLine('LOW', progress.low, progress.done, run.passRunning.low, lowExpected),
        ]),
    ...(failed
      ? [`**Failed chunks:** ${failed}${failed > progress.failures.length ? ` (the first ${progress.failures.length} listed)` : ''}`, ...progress.failures.map((f) => `- ${describeFailure(f)}`)]
      : []),
  ].join('\n\n');
}

/** The failure a fanout ends with when chunks failed for good: counts, then the first errors. */
export function fanoutFailure(progress: FanoutProgress, abortReason: string | null): ApplicationFailure {
  const failedChunks = progress.high.chunksFailed + progress.low.chunksFailed;
  const chunks = failedChunks + progress.high.chunksDone + progress.low.chunksDone;
  const failedFollowers = progress.failures.reduce((n, f) => n + (f.firstFollowerId === undefined ? 0 : f.size), 0);
  const first = progress.failures.slice(0, 3).map(describeFailure);
  const listed = progress.failures.length < failedChunks ? `the first ${progress.failures.length} of them hold ${failedFollowers}` : `${failedFollowers}`;
  const message =
    `${progress.operation} fanout of activity ${progress.activityId} failed: ${failedChunks} of ${chunks} chunks failed for good ` +
    `(${listed} of ${progress.followersSeen} followers seen)` +
    (abortReason ? `; stopped early: ${abortReason}` : '') +
    `. First errors: ${first.join(' | ')}`;
  return ApplicationFailure.create({ message, type: FANOUT_FAILED_FAILURE_TYPE, nonRetryable: true, details: [progress] });
}
