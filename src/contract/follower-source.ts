/**
 * Where a fanout gets its followers from, grouped by priority page by page. Pluggable: an app
 * whose follow graph lives elsewhere (its SQL database, a graph service) implements
 * {@link FollowerSource} and passes it to the activity factory.
 * @module
 */

/** Request for one page of a user's followers. */
export interface FollowerPageRequest {
  /** The user whose followers are wanted. */
  userId: string;
  /** `nextCursor` of the previous page; `null` for the first page. */
  cursor: string | null;
  /** Maximum number of followers in the page (both priorities together). */
  limit: number;
  /**
   * The walk covers follower ids from this one on (inclusive), when `cursor` is `null`: the first
   * page of a partition. A source that ignores it walks from the first follower (duplicate
   * writes across partitions, nobody lost).
   */
  from?: string | undefined;
  /**
   * The walk stops before this follower id (exclusive): the end of a partition. The page's
   * `nextCursor` is `null` once the range is done. A source must honour it (or not offer
   * {@link FollowerSource.splitFollowers}, so that fanouts are never partitioned).
   */
  until?: string | undefined;
  /**
   * Identifies one walk through the followers (the fanout's workflow id, the same across
   * continue-as-new). A source may use it to cache what it read for the walk's next pages.
   */
  walkId?: string | undefined;
  /**
   * Epoch ms. When set, a follower counts as HIGH only if the activity that makes them active
   * happened at or before this time: activity after it never moves a follower from LOW to HIGH.
   *
   * Why: a fanout writes its HIGH followers in one pass and its LOW followers in a second pass
   * that reads the same pages again, later. A follower who was LOW when the HIGH pass read their
   * page and became active before the LOW pass read it would be skipped by both. The LOW pass sets
   * this to a moment before its fanout began, so every follower it classifies HIGH was already
   * HIGH when the HIGH pass read them. A custom source must honour it the same way (or classify
   * everyone LOW when it is set, which costs duplicate writes but loses nobody).
   *
   * A source should also list, in {@link FollowerPage.recent}, the LOW followers of the page who
   * are active only after this time: the HIGH pass may have written them already, and the LOW
   * pass skips those whose entry is in place instead of writing them twice.
   */
  activeUntil?: number | undefined;
}

/**
 * One page of followers, split by priority as Stream Framework's `get_user_follower_ids` does.
 * Paging must be stable: every follower appears in exactly one page of a walk.
 */
export interface FollowerPage {
  /** Active followers: written on the `high-fanout` queue. */
  high: string[];
  /** Inactive followers: written on the `low-fanout` queue. */
  low: string[];
  /**
   * Only with `activeUntil`: the followers of `low` who are active, but only since `activeUntil`
   * (the HIGH pass of the same fanout may have written them). Optional: a source that leaves it
   * out costs the LOW pass duplicate writes (counted as unchanged), never a missed follower.
   */
  recent?: string[];
  /** Cursor of the next page, or `null` if this was the last page. */
  nextCursor: string | null;
}

/** How a user's followers split into ranges of about equal size. */
export interface FollowerSplit {
  /** How many followers the user has. */
  followers: number;
  /** Ascending follower ids, each the first of a range after the first range: `parts - 1` of them, or fewer (none: one range). */
  bounds: string[];
}

/** A source of followers grouped by priority. */
export interface FollowerSource {
  getFollowerPage(request: FollowerPageRequest): Promise<FollowerPage>;
  /**
   * Optional: how many followers `userId` has and, when `parts` > 1, where to split them into
   * `parts` ranges of follower ids of about equal size, for a partitioned fanout (each range a pass
   * of its own). A source without it (or one that returns no bounds) is never partitioned.
   */
  splitFollowers?(userId: string, parts: (followers: number) => number): Promise<FollowerSplit>;
}
