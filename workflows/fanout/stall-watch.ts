/**
 * The stall watch of a fanout run: a timer that compares when each priority's chunks last moved
 * with `stalledAfterMs`, and flags the run `FanoutStalled` (in the list view and its current
 * details) with the likely cause, clearing it once the chunks move again. Workflow code.
 * @module
 */
import { condition } from '@temporalio/workflow';
import { describeRetry } from '../../src/contract/fanout';
import type { FanoutRun } from './run';

/** Longest wait between checks of a run that stays stalled. */
const MAX_CHECK_INTERVAL_MS = 30 * 60_000;

/**
 * Watches `run` until it finishes. Checks every `stalledAfterMs / 2` while the run moves; once
 * stalled, twice as long each time up to 30 minutes, so a run stuck for days does not fill its
 * history with timers (about 5 events per check) on the way to Temporal's 51,200-event limit.
 * Started once the run writes (not during a scheduled post's wait); its pending timer is abandoned
 * when the run ends, and a cancellation ends it.
 */
export async function watchForStalls(run: FanoutRun): Promise<void> {
  const { input, progress } = run;
  const seconds = (ms: number) => `${Math.round(ms / 1000)} s`;
  const base = Math.max(1000, Math.floor(input.stalledAfterMs / 2));
  let interval = base;
  while (!run.finished) {
    // Woken early when a stalled run moves again, to clear the flag at once.
    await condition(() => run.wakeWatch || run.finished, interval);
    run.wakeWatch = false;
    if (run.finished) return;
    const now = Date.now();
    const reasons: string[] = [];
    for (const priority of ['high', 'low'] as const) {
      const idle = now - run.lastMoved[priority];
      if (idle < input.stalledAfterMs) continue;
      const queue = priority === 'high' ? input.highTaskQueue : input.lowTaskQueue;
      const hint = `is a worker polling it? (${priority}TaskQueue, workers, store)`;
      const waiting = progress[priority].chunksInFlight;
      if (run.passRunning[priority] && progress.retrying) {
        reasons.push(`no ${priority.toUpperCase()} chunk finished for ${seconds(idle)}: ${describeRetry(progress.retrying)}`);
      } else if (run.passRunning[priority]) {
        reasons.push(`the ${priority.toUpperCase()} pass has reported no progress for ${seconds(idle)} on task queue "${queue}": ${hint}`);
      } else if (waiting > 0 && run.chunksHere) {
        reasons.push(`no ${priority.toUpperCase()} chunk finished for ${seconds(idle)}; ${waiting} being written by this fanout's worker: is the store reachable?`);
      } else if (waiting > 0) {
        reasons.push(`no ${priority.toUpperCase()} chunk finished for ${seconds(idle)}; ${waiting} wait on task queue "${queue}": ${hint}`);
      }
    }
    if (run.pageWaitSince !== null && now - run.pageWaitSince >= input.stalledAfterMs) {
      reasons.push(`reading a page of followers has taken ${seconds(now - run.pageWaitSince)} (is the store reachable?)`);
    }
    run.setStalled(reasons.length ? reasons.join('; ') : null);
    interval = progress.stalled === null ? base : Math.min(interval * 2, MAX_CHECK_INTERVAL_MS);
  }
}
