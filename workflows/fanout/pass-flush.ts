/**
 * When a pass lets its workflow task complete (a flush), and so reports: by count, by the size of
 * the markers since the last flush, near the history limit, at a hand-over and at the end.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { workflowInfo } from '@temporalio/workflow';

/**
 * Chunks a pass dispatches between two flushes at most: while its workflow task is open, nothing
 * else reaches the run (a cancel, a signal, a query of its current details). At full speed on the
 * development machine (about 300 chunks a second per pass) that is under half a second; each flush
 * drains the chunk pipeline once, a few milliseconds.
 */
const FLUSH_EVERY_CHUNKS = 128;

/**
 * Roughly how many bytes of local activity markers one workflow task of a pass may collect before
 * the pass waits for the task to complete. Well under gRPC's 4 MB message limit.
 */
const FLUSH_AFTER_BYTES = 512 * 1024;

/** History events a page adds besides its chunks' markers: the read's marker, a report's signal. */
const PAGE_EVENTS = 4;

/**
 * When a pass lets its workflow task complete, which is when it reports: the report's signal goes
 * out with the task's completion, which waits for every local activity in flight, so a flush
 * drains the chunk pipeline and records the chunks' markers. A drain per page cost throughput, and
 * never flushing outgrew gRPC's 4 MB message limit at 1,000,000 followers; so a pass flushes every
 * `FLUSH_EVERY_CHUNKS` chunks, once the markers since the last flush may reach
 * `FLUSH_AFTER_BYTES`, before its history could pass `maxHistoryEvents` (a workflow sees the
 * history length its task began with, so the hand-over check needs the flush to count the chunks),
 * before a hand-over and at the end.
 */
export class PassFlush {
  private bytes = 0;
  private events = 0;
  private chunks = 0;

  constructor(
    /** Runs started before the flush by size flushed after every page. */
    private readonly bySize: boolean,
    /** Runs started before the flush by count flushed by size only. */
    private readonly byCount: boolean,
    private readonly chunkSize: number,
    private readonly maxHistoryEvents: number,
    /** History events a chunk adds: a marker (local), or scheduled, started and completed (activity task). */
    private readonly eventsPerChunk: number,
  ) {}

  /** A chunk was dispatched: whether to flush before the next one. */
  dispatched(): boolean {
    return this.byCount && ++this.chunks >= FLUSH_EVERY_CHUNKS;
  }

  /** A page's chunks were dispatched: whether to flush now (`last`: the end, a stop or a hand-over). */
  dueAfterPage(ids: readonly string[], last: boolean): boolean {
    // An estimate of the marker bytes the page's chunks add: their follower ids as JSON, and an allowance per chunk.
    this.bytes += Math.ceil(ids.length / this.chunkSize) * 512;
    for (const id of ids) this.bytes += id.length + 3;
    this.events += Math.ceil(ids.length / this.chunkSize) * this.eventsPerChunk + PAGE_EVENTS;
    const nearLimit = workflowInfo().historyLength + this.events >= this.maxHistoryEvents;
    return !this.bySize || last || nearLimit || this.bytes >= FLUSH_AFTER_BYTES;
  }

  /** The task completed: start counting again. */
  flushed(): void {
    this.bytes = 0;
    this.events = 0;
    this.chunks = 0;
  }
}
