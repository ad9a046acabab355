/**
 * When followers got an activity, seen from outside the workflows: wraps the chunk write of the
 * benchmark's workers and notes, per activity, when each write was acknowledged and how many of
 * its followers were active ones. Measures what a follower experiences (the entry is in the
 * store), independent of what the fanout reports about itself.
 * @module
 */
import type { WriteFeedChunkInput } from '../activities';
import { FanoutOperation } from '../src/contract/constants';
import type { AllActivities } from '../src/worker/workers';
import { FeedStore } from '../src/storage/feed-store';

/** What was seen of one activity's writes (epoch ms). */
export interface ActivityWrites {
  /** Acknowledged entries for active followers, and for all (retries may count twice). */
  highWritten: number;
  written: number;
  /** First acknowledged write to an active follower. */
  firstHighAt: number | null;
  /** When `highWritten` first reached the expected number of active followers. */
  allHighAt: number | null;
  /** The last acknowledged write of any follower. */
  lastAt: number | null;
}

/** Tracks chunk writes of `add` fanouts by activity id. */
export class WriteTracker {
  private readonly seen = new Map<string, ActivityWrites>();
  private readonly expectedHigh = new Map<string, number>();

  /** @param isActive whether a follower id belongs to an active follower (a HIGH one). */
  constructor(private readonly isActive: (followerId: string) => boolean) {}

  /** Declares how many active followers `activityId` has, so `allHighAt` can be set. */
  expect(activityId: string, activeFollowers: number): void {
    this.expectedHigh.set(activityId, activeFollowers);
    const w = this.seen.get(activityId);
    if (w && w.allHighAt === null && w.highWritten >= activeFollowers) w.allHighAt = w.lastAt;
  }

  /** What was seen of `activityId` so far. */
  get(activityId: string): ActivityWrites | undefined {
    return this.seen.get(activityId);
  }

  /** For `createWorkers({ wrapActivities })`: the same activities, chunk writes noted. */
  readonly wrap = (activities: AllActivities): AllActivities => ({
    ...activities,
    writeFeedChunk: async (input: WriteFeedChunkInput) => {
      const result = await activities.writeFeedChunk(input);
      if (input.operation === FanoutOperation.ADD) this.note(input.activityId, input.followerIds);
      return result;
    },
  });

  /**
   * Notes every acknowledged write of `feedType` made through a `FeedStore` in this process: the
   * chunks of fanout workflows and the posts of batched shards alike (the latter write without a
   * chunk activity). Returns the undo. For the bench only: it patches the class.
   */
  watchStore(feedType: string): () => void {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- always called with `.call(this)` on the store it patches
    const original = FeedStore.prototype.addToFeeds;
    const note = (activityId: string, owners: readonly string[]) => this.note(activityId, [...owners]);
    FeedStore.prototype.addToFeeds = async function (this: FeedStore, type, owners, activity) {
      const res = await original.call(this, type, owners, activity);
      if (type === feedType) note(activity.id, owners);
      return res;
    };
    return () => {
      FeedStore.prototype.addToFeeds = original;
    };
  }

  private note(activityId: string, followerIds: string[]): void {
    const now = Date.now();
    let w = this.seen.get(activityId);
    if (!w) this.seen.set(activityId, (w = { highWritten: 0, written: 0, firstHighAt: null, allHighAt: null, lastAt: null }));
    // A chunk is all HIGH or all LOW: its first id tells which.
    const high = followerIds.length > 0 && this.isActive(followerIds[0]);
    w.written += followerIds.length;
    w.lastAt = now;
    if (!high) return;
    w.highWritten += followerIds.length;
    w.firstHighAt ??= now;
    const expected = this.expectedHigh.get(activityId);
    if (w.allHighAt === null && expected !== undefined && w.highWritten >= expected) w.allHighAt = now;
  }
}

/** The p-th percentile (0..100) of `values`, nearest rank; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
