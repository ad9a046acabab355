/**
 * Telling a user something happened to them ("Susan followed you"), without the request that
 * caused it waiting. Pluggable: the follow workflow calls a {@link Notifier} from an activity, so
 * an app can send an email or a push instead of (or besides) the built-in notification feed.
 * @module
 */
import { deriveActivityId } from '../client/activity-id';
import { FeedType } from '../contract/constants';
import type { FeedStore } from '../storage/feed-store';

/** Something to tell a user. */
export interface NotificationEvent {
  /** Who is told. */
  recipient: string;
  /** Who did it. */
  actor: string;
  /** What they did, e.g. `follow`. */
  verb: string;
  /** What they did it to. */
  object: string;
  /** When. The same event must carry the same time on a retry (it is part of its id). */
  time: Date;
}

/**
 * Delivers notifications. Called from a Temporal activity, so it is retried on failure: it must be
 * idempotent (deliver the same event once however often it is called) or tolerate repeats.
 */
export interface Notifier {
  notify(event: NotificationEvent): Promise<void>;
}

/** Options of {@link FeedNotifier}. */
export interface FeedNotifierOptions {
  /** Feed type to write to (a notification feed). @default 'notification' */
  feedType?: string;
}

/**
 * The built-in notifier: stores the event as an activity (its id derived from its fields, so a
 * retry stores nothing new) and adds it to the recipient's notification feed, where it is grouped
 * ("Susan and 3 others followed you") and counted as unseen / unread.
 */
export class FeedNotifier implements Notifier {
  private readonly feedType: string;

  constructor(
    private readonly store: FeedStore,
    options: FeedNotifierOptions = {},
  ) {
    this.feedType = options.feedType ?? FeedType.NOTIFICATION;
    store.aggregated(this.feedType, 'options.feedType'); // fail at start-up, not at the first follow
  }

  async notify(event: NotificationEvent): Promise<void> {
    const id = deriveActivityId(event);
    await this.store.storeActivity({ _id: id, actor: event.actor, verb: event.verb, object: event.object, time: event.time });
    await this.store.addToFeeds(this.feedType, [event.recipient], { id, actor: event.actor, time: event.time });
  }
}
