/**
 * The follow workflow's contract: its input, the follow / unfollow request signal, its state query.
 * Pure: shared by the workflow, the activities and the client.
 *
 * One workflow per (follower, followee) pair, id `follow/<follower>/<followee>`: requests for one
 * pair are applied one at a time, in the order they arrived, so a follow immediately followed by
 * an unfollow always ends unfollowed. The client sends each request with signal-with-start.
 * @module
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import { ValidationError } from './errors';
import { checkCount, checkEpochMs, checkFeedTypes, checkId, checkInt, checkKeys } from './validation';

/** Defaults of {@link FollowOptions}. */
export const FOLLOW_DEFAULTS = {
  backfillLimit: 100,
  backfillBatchSize: 100,
  notify: true,
  // A follow applies a handful of activities per request; a run past 500 events is a pair whose
  // requests never stop coming (a bot toggling), which would otherwise grow toward the 51,200 limit.
  maxHistoryEvents: 500,
} as const;

/** Upper bound of `backfillLimit`. */
export const MAX_BACKFILL = 1000;

/** Tuning of a follow. Every field is optional. */
export interface FollowOptions {
  /** The followee's most recent activities copied into the follower's feeds (0..1000). @default 100 */
  backfillLimit?: number;
  /** Activities copied per backfill activity (1..500). @default 100 */
  backfillBatchSize?: number;
  /** Feed types backfilled (and cleaned on unfollow). @default the worker's feed types with `fanout: true` */
  feedTypes?: string[];
  /** Tell the followee through the notifier. @default true */
  notify?: boolean;
  /** Continue as new once the pair's run has more history events than this (100..40,000). @default 500 */
  maxHistoryEvents?: number;
}

/** Every option of {@link FollowOptions}. */
const FOLLOW_OPTION_KEYS = ['backfillLimit', 'backfillBatchSize', 'feedTypes', 'notify', 'maxHistoryEvents'] as const satisfies ReadonlyArray<keyof FollowOptions>;

/**
 * Options of `FeedClient.unfollow`. They apply when the unfollow starts the pair's follow run (no
 * run of the pair is open); a run already open keeps its own.
 */
export type UnfollowOptions = Pick<FollowOptions, 'feedTypes' | 'maxHistoryEvents'>;

/** Every option of {@link UnfollowOptions}: the backfill and notify options mean nothing to an unfollow. */
const UNFOLLOW_OPTION_KEYS = ['feedTypes', 'maxHistoryEvents'] as const satisfies ReadonlyArray<keyof UnfollowOptions>;

/** Input of `followWorkflow`: the pair and the tuning. Requests arrive as signals. */
export interface FollowWorkflowInput extends FollowOptions {
  follower: string;
  followee: string;
  /** Set by the workflow itself when it continues as new: the requests not applied yet, and the state. */
  carry?: FollowCarry;
}

/** What a follow run hands to the next when it continues as new. */
export interface FollowCarry {
  pending: FollowRequest[];
  state: FollowState;
}

/** One follow or unfollow request. */
export interface FollowRequest {
  /** True to follow, false to unfollow. */
  follow: boolean;
  /** Unique per request (the client makes one); lets a caller see when theirs was applied. */
  requestId: string;
  /** When the request was made, epoch ms (the follow's time, and the notification's). */
  at: number;
}

/** What the `state` query answers, and what the workflow returns when it has nothing left to do. */
export interface FollowState {
  follower: string;
  followee: string;
  /** The state after the last applied request; `null` before the first. */
  following: boolean | null;
  /** Requests received by this run. */
  requestsReceived: number;
  /** Requests applied by this run (superseded ones count as applied: the newest wins). */
  requestsApplied: number;
  /** Id of the last applied request. */
  lastRequestId: string | null;
  /** Follow transitions that created the edge, and unfollows that removed it (this run). */
  followed: number;
  unfollowed: number;
  /** Activities copied by backfills (this run). */
  backfilled: number;
  /** Feed entries / group memberships removed by unfollows (this run). */
  removedEntries: number;
}

/** Signal: a follow or unfollow request for the workflow's pair. */
export const followRequestSignal = defineSignal<[FollowRequest]>('followRequest');

/** Query: the pair's current state. */
export const followStateQuery = defineQuery<FollowState>('state');

/** Workflow type name of the follow workflow. */
export const FOLLOW_WORKFLOW_TYPE = 'followWorkflow';

/** Workflow id of a pair's follow workflow. Ids cannot contain `/`, so the id is unambiguous. */
export function followWorkflowId(follower: string, followee: string): string {
  return `follow/${follower}/${followee}`;
}

/** Validates follow options, applying defaults except `feedTypes`. */
export function resolveFollowOptions(opts: FollowOptions, prefix = ''): Required<Omit<FollowOptions, 'feedTypes'>> & Pick<FollowOptions, 'feedTypes'> {
  checkKeys(prefix ? prefix.slice(0, -1) : 'options', opts, FOLLOW_OPTION_KEYS);
  if (opts.notify !== undefined && typeof opts.notify !== 'boolean') throw new ValidationError(`${prefix}notify`, 'must be true or false');
  return {
    backfillLimit: checkInt(`${prefix}backfillLimit`, opts.backfillLimit, 0, MAX_BACKFILL, FOLLOW_DEFAULTS.backfillLimit),
    backfillBatchSize: checkInt(`${prefix}backfillBatchSize`, opts.backfillBatchSize, 1, 500, FOLLOW_DEFAULTS.backfillBatchSize),
    notify: opts.notify ?? FOLLOW_DEFAULTS.notify,
    maxHistoryEvents: checkInt(`${prefix}maxHistoryEvents`, opts.maxHistoryEvents, 100, 40_000, FOLLOW_DEFAULTS.maxHistoryEvents),
    ...(opts.feedTypes === undefined ? {} : { feedTypes: checkFeedTypes(`${prefix}feedTypes`, opts.feedTypes) }),
  };
}

/**
 * Checks that `opts` holds only {@link UnfollowOptions} (their values are checked with the follow
 * options, by {@link resolveFollowOptions}). @throws ValidationError naming the field.
 */
export function checkUnfollowOptions(opts: UnfollowOptions): UnfollowOptions {
  return checkKeys('options', opts, UNFOLLOW_OPTION_KEYS);
}

/** Validates the workflow input. @throws ValidationError naming the field. */
export function validateFollowInput(raw: unknown): Required<Omit<FollowWorkflowInput, 'feedTypes' | 'carry'>> & Pick<FollowWorkflowInput, 'feedTypes' | 'carry'> {
  const input = checkKeys('input', raw, [...FOLLOW_OPTION_KEYS, 'follower', 'followee', 'carry']) as Partial<FollowWorkflowInput>;
  const follower = checkId('input.follower', input.follower);
  const followee = checkId('input.followee', input.followee);
  if (follower === followee) throw new ValidationError('input.followee', `must differ from the follower (a user cannot follow themselves: "${follower}")`);
  const { follower: _a, followee: _b, carry, ...options } = input;
  return {
    follower,
    followee,
    ...resolveFollowOptions(options, 'input.'),
    ...(carry === undefined ? {} : { carry: validateFollowCarry('input.carry', carry, follower, followee) }),
  };
}

/** Checks the state a follow run carries over continue-as-new (it is input all the same). */
function validateFollowCarry(field: string, raw: unknown, follower: string, followee: string): FollowCarry {
  const c = checkKeys(field, raw, ['pending', 'state']);
  if (!Array.isArray(c.pending) || c.pending.length > 1000) throw new ValidationError(`${field}.pending`, 'must be a list of at most 1000 requests');
  const pending = c.pending.map((r: unknown, i) => {
    try {
      return validateFollowRequest(r);
    } catch (err) {
      if (err instanceof ValidationError) throw new ValidationError(`${field}.pending[${i}].${err.field.replace(/^request\.?/, '')}`.replace(/\.$/, ''), err.message.slice(err.field.length + 1));
      throw err;
    }
  });
  const f = `${field}.state`;
  const st = checkKeys(f, c.state, ['follower', 'followee', 'following', 'requestsReceived', 'requestsApplied', 'lastRequestId', 'followed', 'unfollowed', 'backfilled', 'removedEntries']);
  if (st.follower !== follower || st.followee !== followee) throw new ValidationError(`${f}.follower`, 'must be the input\'s pair');
  if (st.following !== null && typeof st.following !== 'boolean') throw new ValidationError(`${f}.following`, 'must be true, false or null');
  return {
    pending,
    state: {
      follower,
      followee,
      following: st.following,
      requestsReceived: checkCount(`${f}.requestsReceived`, st.requestsReceived),
      requestsApplied: checkCount(`${f}.requestsApplied`, st.requestsApplied),
      lastRequestId: st.lastRequestId === null ? null : checkId(`${f}.lastRequestId`, st.lastRequestId),
      followed: checkCount(`${f}.followed`, st.followed),
      unfollowed: checkCount(`${f}.unfollowed`, st.unfollowed),
      backfilled: checkCount(`${f}.backfilled`, st.backfilled),
      removedEntries: checkCount(`${f}.removedEntries`, st.removedEntries),
    },
  };
}

/** Validates one request signal. @throws ValidationError naming the field. */
export function validateFollowRequest(raw: unknown): FollowRequest {
  const req = checkKeys('request', raw, ['follow', 'requestId', 'at']) as Partial<FollowRequest>;
  if (typeof req.follow !== 'boolean') throw new ValidationError('request.follow', 'must be true (follow) or false (unfollow)');
  const requestId = checkId('request.requestId', req.requestId);
  return { follow: req.follow, requestId, at: checkEpochMs('request.at', req.at) };
}
