/**
 * Deploys that change workflow code: every recorded history (test/replay/histories/, one per shape
 * of run the project makes: a fanout across continue-as-new, a removal, a scheduled post, a failed
 * fanout, each from before the priority passes and by them (a fanout of one page written inline),
 * the HIGH and LOW passes across continue-as-new, a follow, a follow across continue-as-new and a long follow run from before that
 * change, an import across continue-as-new, a share, a trickle round) is replayed with
 * today's workflow code by the SDK's replayer. A change that would make runs in flight during a
 * deploy fail (a non-deterministic change) fails here; guard it with `patched()` (see the README's
 * "Changing a workflow safely"). Needs no server.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import { quietRuntime, workflowBundle } from '../utils/env';

const DIR = path.resolve(__dirname, '../replay/histories');
const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

beforeAll(() => quietRuntime());

/**
 * A recorded history as the replayer takes it. Decoded with @temporalio/proto's own classes, not
 * the SDK's historyFromJSON: with the npm layout here (protobufjs 8 nested once per @temporalio
 * package, 7 at the top) that function fails with "type must be a Type".
 */
export function loadHistory(file: string): temporal.api.history.v1.History {
  return temporal.api.history.v1.History.fromObject(JSON.parse(readFileSync(path.join(DIR, file), 'utf8')));
}

/** The workflow type a recorded history ran. */
function typeOf(history: { events?: Array<{ workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }> }): string {
  return history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?';
}

describe('replaying recorded histories with the current workflow code', () => {
  it('covers every workflow type, and a fanout and an import across continue-as-new', () => {
    const types = new Set(files.map((f) => typeOf(JSON.parse(readFileSync(path.join(DIR, f), 'utf8')))));
    expect([...types].sort()).toEqual(['fanoutPassWorkflow', 'fanoutWorkflow', 'followWorkflow', 'importFriendsWorkflow', 'shareActivityWorkflow', 'trickleSyncWorkflow']);
    // Fanouts from before the priority passes (page by page) and by them, with both passes across continue-as-new.
    expect(files.filter((f) => f.startsWith('fanout-add-continue-as-new.run')).length).toBeGreaterThanOrEqual(2);
    expect(files).toContain('fanout-passes.json');
    // A fanout of one page, written inline (its chunks local activities of the fanout itself).
    expect(files).toContain('fanout-inline-failed.json');
    expect(files.filter((f) => f.startsWith('fanout-pass-high.run')).length).toBeGreaterThanOrEqual(2);
    expect(files.filter((f) => f.startsWith('fanout-pass-low.run')).length).toBeGreaterThanOrEqual(2);
    expect(files.filter((f) => f.startsWith('import-continue-as-new.run')).length).toBeGreaterThanOrEqual(2);
    expect(files.filter((f) => f.startsWith('follow-continue-as-new.run')).length).toBeGreaterThanOrEqual(2);
    // Passes that flush every 128 chunks and read chunk outcomes at flushes, with a FAILED marker.
    expect(files).toEqual(expect.arrayContaining(['fanout-pass-low-by-count.json', 'fanout-pass-high-by-count.json', 'fanout-inline-failed-marker.json']));
    // Partitioned fanouts in both chunk shapes, and a one-page fanout written as activity tasks.
    expect(files).toEqual(
      expect.arrayContaining(['fanout-partitioned-activity.json', 'fanout-partitioned-local.json', 'fanout-partition-low-1-activity.json', 'fanout-one-page-activity-tasks.json']),
    );
    // Passes that took their retries over: a chunk and a page read probed by activity tasks, both shapes.
    expect(files).toEqual(expect.arrayContaining(['fanout-pass-low-probing-local.json', 'fanout-pass-low-probing-activity.json', 'fanout-probing-local.json']));
    // A long follow run recorded by the code before its continue-as-new patch: it must still replay.
    expect(files).toContain('follow-long.json');
  });

  it.each(files)('%s replays without a determinism error', async (file) => {
    // Under the workflow id it ran with: a fanout names its passes after it.
    const started = JSON.parse(readFileSync(path.join(DIR, file), 'utf8')).events?.[0]?.workflowExecutionStartedEventAttributes;
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, loadHistory(file), started?.workflowId ?? `replay-${file}`);
  });
});
