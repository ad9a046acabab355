/**
 * Aggregated and notification feeds: one document per (owner, group), updated in place.
 *
 * Why updates are idempotent without transactions: adding activity A to a group is one atomic
 * update per document, guarded by "A is not in `activityIds` yet"; counting its actor is a second
 * update guarded by "the actor is not in `actors` yet". A retry that finds the first update done
 * skips it and still runs the second, which is a no-op if it ran too. So a retried write never
 * counts an activity or an actor twice. Both updates are one `updateMany` per chunk, because the
 * group key is the same for every follower of one activity.
 * @module
 */
import type { Collection, Filter } from 'mongodb';
import { FeedKind, MAX_GROUP_ACTIVITIES, MAX_GROUP_ACTORS, type ResolvedFeedConfig, groupKey, type Groupable } from '../contract/feeds';
import { type GroupDoc, groupDocId } from './collections';
import { insertManyIgnoringDuplicates } from './insert';

/** Result of writing one activity into many feeds. */
export interface FeedWriteResult {
  /** Entries inserted or groups updated (add), entries deleted or groups updated (remove) by this call. */
  changed: number;
  /** Entries that were already there (add) or already gone (remove): work done by an earlier try. */
  unchanged: number;
  /** Feeds trimmed by this call. */
  trimmed: number;
}

/** An activity as grouping needs it. */
export interface GroupableActivity extends Groupable {
  id: string;
}

/** Counts of a notification feed. */
export interface NotificationCounts {
  /** Groups with something the owner has not seen. */
  unseen: number;
  /** Groups with something the owner has not read. */
  unread: number;
}

/**
 * Runs one write of an aggregated feed: directly where the store updates a document atomically
 * (MongoDB), under a {@link StoreLock} of the feed type where it does not (FerretDB).
 */
export type GroupWriteGuard = <T>(write: () => Promise<T>) => Promise<T>;

/** One aggregated feed type (its collection and configuration). */
export class AggregatedFeed {
  constructor(
    readonly collection: Collection<GroupDoc>,
    readonly config: ResolvedFeedConfig,
    /** Serializes the writes where needed. @default none (MongoDB) */
    private readonly guard: GroupWriteGuard = (write) => write(),
  ) {}

  private get notification(): boolean {
    return this.config.kind === FeedKind.NOTIFICATION;
  }

  /** Adds an activity to its group in the feeds of `owners`. Idempotent; see the module comment. */
  async add(owners: readonly string[], activity: GroupableActivity): Promise<Omit<FeedWriteResult, 'trimmed'>> {
    if (owners.length === 0) return { changed: 0, unchanged: 0 };
    return this.guard(() => this.addUnguarded(owners, activity));
  }

  private async addUnguarded(owners: readonly string[], activity: GroupableActivity): Promise<Omit<FeedWriteResult, 'trimmed'>> {
    const group = groupKey(activity, this.config.groupBy);
    const ids = owners.map((owner) => groupDocId(owner, group));
    // 1. Make sure each group exists. An empty group (activityCount 0) is invisible to readers and
    //    counts, so a crash right after this step shows nothing. (Not upserts: FerretDB 1.24 runs
    //    an upsert as a scan per document.)
    await insertManyIgnoringDuplicates(
      this.collection,
      owners.map((owner, i) => ({
        _id: ids[i],
        owner,
        group,
        verb: activity.verb,
        time: activity.time,
        activityIds: [],
        activityCount: 0,
        actors: [],
        actorCount: 0,
        seen: true,
        read: true,
      })),
    );
    // 2. The activity joins each group where it is not yet.
    const joined = await this.collection.updateMany(
      { _id: { $in: ids }, activityIds: { $ne: activity.id } },
      {
        $push: { activityIds: { $each: [activity.id], $slice: -MAX_GROUP_ACTIVITIES } },
        $inc: { activityCount: 1 },
        $max: { time: activity.time },
        // Something new in a notification group: it is unseen and unread again.
        ...(this.notification ? { $set: { seen: false, read: false } } : {}),
      },
    );
    // 3. Its actor is counted where the activity is in the group and the actor is not yet.
    await this.collection.updateMany(
      { _id: { $in: ids }, activityIds: activity.id, actors: { $ne: activity.actor } },
      { $push: { actors: { $each: [activity.actor], $slice: -MAX_GROUP_ACTORS } }, $inc: { actorCount: 1 } },
    );
    return { changed: joined.modifiedCount, unchanged: owners.length - joined.modifiedCount };
  }

  /**
   * Removes an activity from the groups of `owners` that hold it. The
   * actor is uncounted where none of the group's remaining activities is theirs (`actorsOf` tells
   * the actors of activity ids). Idempotent.
   */
  async remove(
    owners: readonly string[],
    activityId: string,
    actor: string,
    actorsOf: (activityIds: string[]) => Promise<Map<string, string>>,
  ): Promise<Omit<FeedWriteResult, 'trimmed'>> {
    if (owners.length === 0) return { changed: 0, unchanged: 0 };
    return this.guard(async () => {
      const filter: Filter<GroupDoc> = { owner: { $in: [...owners] }, activityIds: activityId };
      const affected = await this.collection.find(filter, { projection: { _id: 1 } }).toArray();
      if (affected.length === 0) return { changed: 0, unchanged: owners.length };
      const res = await this.removeFromGroupsUnguarded(affected.map((g) => g._id), activityId, actor, actorsOf);
      return { changed: res.changed, unchanged: owners.length - res.changed };
    });
  }

  /**
   * Removes an activity from the groups `ids` (those that hold it) and uncounts its actor where
   * none of a group's remaining activities is theirs. Idempotent.
   */
  async removeFromGroups(
    ids: string[],
    activityId: string,
    actor: string,
    actorsOf: (activityIds: string[]) => Promise<Map<string, string>>,
  ): Promise<{ changed: number }> {
    return this.guard(() => this.removeFromGroupsUnguarded(ids, activityId, actor, actorsOf));
  }

  private async removeFromGroupsUnguarded(
    ids: string[],
    activityId: string,
    actor: string,
    actorsOf: (activityIds: string[]) => Promise<Map<string, string>>,
  ): Promise<{ changed: number }> {
    const res = await this.collection.updateMany(
      { _id: { $in: ids }, activityIds: activityId },
      { $pull: { activityIds: activityId }, $inc: { activityCount: -1 } },
    );
    // Groups left empty stay (readers and counts skip them; trimming removes them): deleting them
    // here could delete a group that a concurrent add has just created and is about to fill.
    await this.uncountActor(ids, actor, actorsOf);
    return { changed: res.modifiedCount };
  }

  /** Uncounts `actor` in the groups `ids` where none of the remaining activities is theirs. */
  private async uncountActor(ids: string[], actor: string, actorsOf: (activityIds: string[]) => Promise<Map<string, string>>) {
    const groups = await this.collection.find({ _id: { $in: ids }, actors: actor }, { projection: { activityIds: 1 } }).toArray();
    if (groups.length === 0) return;
    const actors = await actorsOf([...new Set(groups.flatMap((g) => g.activityIds))]);
    const gone = groups.filter((g) => !g.activityIds.some((a) => actors.get(a) === actor)).map((g) => g._id);
    if (gone.length === 0) return;
    await this.collection.updateMany({ _id: { $in: gone }, actors: actor }, { $pull: { actors: actor }, $inc: { actorCount: -1 } });
  }

  /** The groups of `owner`'s feed that hold an activity of `actor` (for unfollow). */
  async groupsWithActor(owner: string, actor: string): Promise<GroupDoc[]> {
    return this.collection.find({ owner, actors: actor }).toArray();
  }

  /** Unseen and unread counts of `owner`'s feed: two counts on the (owner, seen|read) indexes. */
  async counts(owner: string): Promise<NotificationCounts> {
    const [unseen, unread] = await Promise.all([
      this.collection.countDocuments({ owner, seen: false, activityCount: { $gt: 0 } }),
      this.collection.countDocuments({ owner, read: false, activityCount: { $gt: 0 } }),
    ]);
    return { unseen, unread };
  }

  /**
   * Marks groups of `owner`'s feed seen (or read, which implies seen): all of them, or the given
   * group keys. Returns how many changed. Idempotent.
   */
  async mark(owner: string, what: 'seen' | 'read', groups?: readonly string[]): Promise<number> {
    const filter: Filter<GroupDoc> = { owner, [what]: false };
    if (groups) filter._id = { $in: groups.map((g) => groupDocId(owner, g)) };
    const set = what === 'read' ? { seen: true, read: true } : { seen: true };
    return this.guard(async () => (await this.collection.updateMany(filter, { $set: set })).modifiedCount);
  }
}
