/**
 * Heartbeats for activities whose one call can take long (a page of followers, a batched write on a
 * slow store). The workflows give these activities a short heartbeat timeout, so a worker that dies
 * mid-call is noticed in seconds and the call retried elsewhere, instead of after the (long)
 * start-to-close timeout; a live worker keeps heartbeating however slow its store is, so a slow
 * call is never timed out and retried while it is still writing.
 * @module
 */
import { Context } from '@temporalio/activity';
import { HEARTBEAT_TIMEOUT_MS } from '../src/contract/constants';

/** How often {@link withHeartbeats} heartbeats: well inside the timeout (the SDK throttles to 80% of it). */
const HEARTBEAT_INTERVAL_MS = Math.floor(HEARTBEAT_TIMEOUT_MS / 3);

/**
 * Runs `fn`, heartbeating every few seconds until it settles. Calls that finish sooner (most of
 * them) send no heartbeat at all, so this costs the server nothing on the fast path. `fn` gets the
 * activity's cancellation signal: check it between the steps of multi-step work, so a cancelled
 * or timed-out attempt stops writing before its retry runs.
 */
export async function withHeartbeats<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ctx = Context.current();
  // A local activity has no heartbeat: its workflow task is kept alive by the worker instead.
  if (ctx.info.isLocal) return fn(ctx.cancellationSignal);
  const timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_INTERVAL_MS);
  try {
    return await fn(ctx.cancellationSignal);
  } finally {
    clearInterval(timer);
  }
}
