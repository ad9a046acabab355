/**
 * Feed types, declared in one place: which feeds exist, what kind each is, which ones a fanout
 * writes to, how long each may grow. Adding a feed type is a change to this configuration (the
 * same object given to the workers and to the client), not new workflow code.
 *
 * Pure: no Node built-ins, so workflows may import it.
 * @module
 */
import { ValidationError } from './errors';
import { FeedType } from './constants';
import { checkFeedType, checkInt } from './validation';

/** What a feed holds. */
export const FeedKind = {
  /** One entry per activity, newest first (a user feed, a timeline). */
  FLAT: 'flat',
  /** Activities grouped by a key ("Alice and 3 others posted today"), one entry per group. */
  AGGREGATED: 'aggregated',
  /** Aggregated, plus seen / read state per group and cheap unseen / unread counts. */
  NOTIFICATION: 'notification',
} as const;
export type FeedKind = (typeof FeedKind)[keyof typeof FeedKind];

/** Activity fields an aggregated feed can group by. `day` is the activity's UTC date. */
export type GroupField = 'verb' | 'object' | 'target' | 'actor' | 'day';
const GROUP_FIELDS: readonly GroupField[] = ['verb', 'object', 'target', 'actor', 'day'];

/** Configuration of one feed type. Every field is optional. */
export interface FeedConfig {
  /** What the feed holds. @default 'flat' */
  kind?: FeedKind;
  /** Whether a fanout writes new activities into this feed for every follower. @default false */
  fanout?: boolean;
  /** Entries (groups, for aggregated kinds) kept per feed; older ones are trimmed. @default 1000 */
  maxLength?: number;
  /**
   * Chance (0..1) that a batched write also trims the feeds it wrote to `maxLength`, like Stream
   * Framework's `trim_chance`: trimming on every write would cost a read per write, so a feed may
   * run about `1 / trimChance` entries over `maxLength` between trims. Reads never return more than
   * asked. @default 0.01
   */
  trimChance?: number;
  /** Aggregated kinds: the fields whose values make a group. @default ['verb', 'object'] */
  groupBy?: GroupField[];
  /** Aggregated kinds: actors shown per group, most recent first (1..100). @default 5 */
  maxActors?: number;
}

/** Feed types by name. Names are lower-case letters, digits and `_`; each is a collection `feed_<name>`. */
export type FeedsConfig = Record<string, FeedConfig>;

/** A feed configuration with every default applied. */
export type ResolvedFeedConfig = Required<FeedConfig>;

/**
 * The feeds every installation starts with:
 * - `user`: what a user did (written by the client, not fanned out);
 * - `timeline`: what the people a user follows did (fanned out);
 * - `timeline_aggregated`: the same grouped by verb and day. Not fanned out by default: every
 *   fanned-out feed costs more writes per chunk, and group updates are one write per follower
 *   (about 15 ms each on FerretDB 1.24, see the README). Set `fanout: true` in your configuration
 *   to fill it for every activity, or name it in `feedTypes` per activity;
 * - `notification`: things that happened to a user, grouped by verb and object, with seen / read
 *   state (written by notifications such as "new follower", not fanned out).
 */
export const DEFAULT_FEEDS: FeedsConfig = {
  [FeedType.USER]: { kind: FeedKind.FLAT },
  [FeedType.TIMELINE]: { kind: FeedKind.FLAT, fanout: true },
  [FeedType.TIMELINE_AGGREGATED]: { kind: FeedKind.AGGREGATED, groupBy: ['verb', 'day'], maxLength: 300 },
  [FeedType.NOTIFICATION]: { kind: FeedKind.NOTIFICATION, groupBy: ['verb', 'object'], maxLength: 200 },
};

/**
 * Activities remembered per group, newest last. A group's `activityIds` is also what makes adding
 * an activity to it idempotent: a retry finds the id there and changes nothing. Stream Framework
 * keeps the same bound (`max_aggregated_activities_length` = 99); an activity retried after 99
 * newer ones joined the same group of the same feed would count twice.
 */
export const MAX_GROUP_ACTIVITIES = 99;

/** Distinct actors remembered per group for counting; `maxActors` of them are shown. */
export const MAX_GROUP_ACTORS = 100;

/** Validates a feeds configuration and applies defaults. @throws ValidationError naming the field. */
export function resolveFeeds(feeds: FeedsConfig, prefix = 'feeds'): Map<string, ResolvedFeedConfig> {
  if (typeof feeds !== 'object' || feeds === null || Array.isArray(feeds)) {
    throw new ValidationError(prefix, 'must be an object of feed type name to configuration');
  }
  const map = new Map<string, ResolvedFeedConfig>();
  for (const [name, cfg] of Object.entries(feeds)) {
    const field = `${prefix}.${name}`;
    checkFeedType(field, name);
    if (typeof cfg !== 'object' || cfg === null) throw new ValidationError(field, 'must be an object');
    const kind = cfg.kind ?? FeedKind.FLAT;
    if (!Object.values(FeedKind).includes(kind)) {
      throw new ValidationError(`${field}.kind`, `must be one of ${Object.values(FeedKind).join(', ')}, got ${JSON.stringify(kind)}`);
    }
    const trimChance = cfg.trimChance ?? 0.01;
    if (typeof trimChance !== 'number' || !(trimChance >= 0 && trimChance <= 1)) {
      throw new ValidationError(`${field}.trimChance`, `must be a number between 0 and 1, got ${String(trimChance)}`);
    }
    if (cfg.fanout !== undefined && typeof cfg.fanout !== 'boolean') throw new ValidationError(`${field}.fanout`, 'must be true or false');
    const groupBy = cfg.groupBy ?? ['verb', 'object'];
    if (!Array.isArray(groupBy) || groupBy.length === 0 || groupBy.some((g) => !GROUP_FIELDS.includes(g))) {
      throw new ValidationError(`${field}.groupBy`, `must be a non-empty list of ${GROUP_FIELDS.join(', ')}`);
    }
    map.set(name, {
      kind,
      fanout: cfg.fanout ?? false,
      maxLength: checkInt(`${field}.maxLength`, cfg.maxLength, 1, 1_000_000, 1000),
      trimChance,
      groupBy: [...new Set(groupBy)],
      maxActors: checkInt(`${field}.maxActors`, cfg.maxActors, 1, MAX_GROUP_ACTORS, 5),
    });
  }
  if (map.size === 0) throw new ValidationError(prefix, 'must declare at least one feed type');
  return map;
}

/** True for the kinds whose entries are groups. */
export function isAggregated(kind: FeedKind): boolean {
  return kind === FeedKind.AGGREGATED || kind === FeedKind.NOTIFICATION;
}

/** The fields grouping looks at. */
export interface Groupable {
  actor: string;
  verb: string;
  object: string;
  target?: string;
  time: Date;
}

/**
 * The group key of an activity: the values of the `groupBy` fields joined by `|` (ids and verbs
 * cannot contain `|`), e.g. `like|photo-9` or `post|2026-11-23`.
 */
export function groupKey(activity: Groupable, groupBy: readonly GroupField[]): string {
  return groupBy
    .map((f) => {
      switch (f) {
        case 'day':
          return activity.time.toISOString().slice(0, 10);
        case 'target':
          return activity.target ?? '-';
        default:
          return activity[f];
      }
    })
    .join('|');
}
