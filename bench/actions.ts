/**
 * What a fanout costs on Temporal Cloud, which bills by action, not CPU. Two counts that check
 * each other:
 * - from the recorded histories of the fanout and everything it started (passes, partitions,
 *   continue-as-new runs), mapped to actions the way Temporal Cloud's documentation maps history
 *   events ("Temporal Cloud Actions", docs.temporal.io/cloud/actions);
 * - from the dev server's own `action` counter (its Prometheus endpoint), which the server keeps
 *   for the same purpose and which also sees what no history shows: workflow-task heartbeats,
 *   activity heartbeats, queries.
 * @module
 */
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const EventType = temporal.api.enums.v1.EventType;

/** Billable actions, in all and by kind. */
export interface ActionCount {
  total: number;
  byKind: Record<string, number>;
}

function add(count: ActionCount, kind: string, n = 1): void {
  if (n <= 0) return;
  count.total += n;
  count.byKind[kind] = (count.byKind[kind] ?? 0) + n;
}

/** The Marker name of the TypeScript SDK's local activities (patches record `core_patch`, not billed). */
const LOCAL_ACTIVITY_MARKER = 'core_local_activity';

/**
 * Adds the actions of one run's history to `count`:
 * - workflow started (client start, child start, continue-as-new): 1 per run; a child's start
 *   is billed twice (the parent's intent, then the start), so 1 more per child initiated;
 * - activity started or retried: 1 per attempt (the last attempt number is on the Started event);
 * - local activities: 1 per workflow task that recorded any, plus their non-first attempts as
 *   the server meters them on the WorkflowTaskCompleted event;
 * - timers started, signals received, search-attribute upserts, updates accepted: 1 each.
 */
function addHistory(count: ActionCount, events: temporal.api.history.v1.IHistoryEvent[]): void {
  let taskHadMarker = false;
  for (const e of events) {
    switch (e.eventType) {
      case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        add(count, 'workflow started');
        break;
      case EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        add(count, 'child workflow initiated');
        break;
      case EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        add(count, 'activity attempts', e.activityTaskStartedEventAttributes?.attempt ?? 1);
        break;
      case EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        taskHadMarker = false;
        add(count, 'local activity retries', Number(e.workflowTaskCompletedEventAttributes?.meteringMetadata?.nonfirstLocalActivityExecutionAttempts ?? 0));
        break;
      case EventType.EVENT_TYPE_MARKER_RECORDED:
        if (e.markerRecordedEventAttributes?.markerName === LOCAL_ACTIVITY_MARKER && !taskHadMarker) {
          taskHadMarker = true;
          add(count, 'local activities (per workflow task)');
        }
        break;
      case EventType.EVENT_TYPE_TIMER_STARTED:
        add(count, 'timers');
        break;
      case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        add(count, 'signals');
        break;
      case EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: {
        // Upserts of the versioning attribute alone are not billed.
        const fields = Object.keys(e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {});
        if (fields.some((f) => f !== 'TemporalChangeVersion')) add(count, 'search-attribute upserts');
        break;
      }
      case EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        add(count, 'updates');
        break;
      default:
        break;
    }
  }
}

/** Actions of the workflow `workflowId` and of every workflow it named after itself (`<id>/…`), all runs. */
export async function actionsFromHistories(client: Client, workflowId: string): Promise<ActionCount> {
  const count: ActionCount = { total: 0, byKind: {} };
  const query = `WorkflowId = '${workflowId}' OR WorkflowId STARTS_WITH '${workflowId}/'`;
  for await (const run of client.workflow.list({ query })) {
    const history = await client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
    addHistory(count, history.events ?? []);
  }
  return count;
}

/** The dev server's `action` counter for `namespace`, summed over its labels, by action type. */
export async function serverActions(metricsAddress: string, namespace = 'default'): Promise<ActionCount> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const count: ActionCount = { total: 0, byKind: {} };
  for (const line of text.split('\n')) {
    if (!line.startsWith('action{') || !line.includes(`namespace="${namespace}"`)) continue;
    const kind = /action_type="([^"]*)"/.exec(line)?.[1] ?? 'unknown';
    add(count, kind, Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return count;
}

/**
 * The server's `action` counter once it has settled: it reaches the endpoint seconds after the
 * work (the server reports metrics in intervals), so this reads until two reads a few seconds
 * apart agree (at most `maxWaitMs`).
 */
export async function settledServerActions(metricsAddress: string, maxWaitMs = 30_000): Promise<ActionCount> {
  const deadline = Date.now() + maxWaitMs;
  let last = await serverActions(metricsAddress);
  for (;;) {
    await new Promise((r) => setTimeout(r, 3_000));
    const next = await serverActions(metricsAddress);
    if (next.total === last.total || Date.now() > deadline) return next;
    last = next;
  }
}

/** `after - before`, by kind. */
export function actionsBetween(before: ActionCount, after: ActionCount): ActionCount {
  const count: ActionCount = { total: 0, byKind: {} };
  for (const [kind, n] of Object.entries(after.byKind)) add(count, kind, n - (before.byKind[kind] ?? 0));
  return count;
}

/** Actions per 1,000 entries, one decimal. */
export function actionsPerThousand(count: ActionCount, entries: number): string {
  return entries === 0 ? '-' : ((1000 * count.total) / entries).toFixed(1);
}

/** The kinds of a count, largest first: `kind n, kind n`. */
export function describeActions(count: ActionCount): string {
  return Object.entries(count.byKind)
    .sort((a, b) => b[1] - a[1])
    .map(([kind, n]) => `${kind} ${n}`)
    .join(', ');
}
