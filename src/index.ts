/**
 * Feed fanout on Temporal with MongoDB feeds: the app-facing API (`import { FeedClient } from
 * 'feed-fanout'`). Running workers is `feed-fanout/worker` (or the `feed-fanout worker` command);
 * the workflows module for `bundleWorkflowCode` is `feed-fanout/workflows`.
 *
 * - {@link FeedClient}: app-facing API (add/remove activities, read feeds, follow fanouts).
 * - {@link FollowerSource}: plug in your own follow graph.
 * - {@link NetworkClient}: third-party imports (friends of a connected account), with shared rate
 *   limits, per-network error rules and schedules declared in code.
 *
 * @example
 * const feeds = new FeedClient({ temporal, db });
 * await feeds.addActivity({ actor: 'alice', verb: 'pin', object: 'photo-1' });
 * @module
 */
export * from './client';
export * from './config';
export * from './connect';
export * from './errors';
export * from './model/constants';
export * from './model/fanout';
export * from './model/feeds';
export * from './model/follow';
export * from './notify/notifier';
export * from './storage/aggregated-feed';
export * from './model/validation';
export * from './followers/follower-source';
export * from './followers/mongo-follower-source';
export * from './storage/collections';
export * from './storage/feed-store';
export * from './storage/follow-store';
export * from './storage/durability';
export * from './integrations/error-rules';
export * from './integrations/network-client';
export * from './integrations/network-store';
export * from './integrations/network';
export * from './integrations/rate-limiter';
export * from './model/imports';
export * from './model/shares';
export * from './schedules/schedules';
