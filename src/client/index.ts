/**
 * The client side: `FeedClient` for app code, and the fanout operations it shares with the
 * operator command (status, list, retry, backlog). One implementation of each.
 * @module
 */
export * from './feed-client';
export * from './fanout-runs';
export * from './fanout-status';
export { BatchedPostWaiter, batchedPostProgress, batchedPostStatus } from './batched-posts';
export * from './backlog';
export { deriveActivityId } from './activity-id';
export * from './operator';
