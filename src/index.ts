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
// The client: FeedClient, and the fanout operations it shares with the operator command.
export * from './client';
// The contract apps share with the workers: names, errors, option and progress types.
export * from './contract/errors';
export * from './contract/constants';
export * from './contract/fanout';
export * from './contract/fanout-pass';
export * from './contract/post-batch';
export * from './contract/feeds';
export * from './contract/follow';
export * from './contract/imports';
export * from './contract/shares';
export * from './contract/metrics';
export * from './contract/search-attributes';
export type { ActivityInput, NormalizedActivity } from './contract/validation';
// Storage, for apps that read or write the store directly, and the pluggable follow graph.
export * from './storage/aggregated-feed';
export * from './contract/follower-source';
export * from './storage/mongo-follower-source';
export * from './storage/collections';
export * from './storage/feed-store';
export * from './storage/follow-store';
export * from './storage/durability';
export * from './notify/notifier';
// Third-party networks: imports, shares, shared rate limits, error rules.
export * from './integrations/error-rules';
export * from './integrations/network-client';
export * from './integrations/network-store';
export * from './integrations/network';
export * from './integrations/rate-limiter';
// Schedules declared in code; settings from the environment, as the worker command reads them.
export * from './schedules/schedules';
export * from './config/settings';
export * from './config/connect';
