/**
 * Stable activity ids. Uses `node:crypto`: for the client and activities, not for workflows.
 * @module
 */
import { createHash } from 'node:crypto';

/**
 * Derives a stable activity id from an activity's fields: the same activity submitted twice gets
 * the same id, so its fanout runs once (and a retried notification is stored once).
 */
export function deriveActivityId(a: { actor: string; verb: string; object: string; target?: string; time: Date }): string {
  const key = JSON.stringify([a.actor, a.verb, a.object, a.target ?? null, a.time.toISOString()]);
  return createHash('sha256').update(key).digest('hex').slice(0, 32);
}
