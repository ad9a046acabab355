/**
 * The demo `temporal-dev.sh` runs: generates a follow graph, records an activity, watches its
 * fanout, and reads the result back from MongoDB.
 *
 * Usage: `node --import tsx dev/demo.ts [followers]` (env: TEMPORAL_ADDRESS, MONGODB_URI, FANOUT_DB)
 */
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { FeedClient } from '../src/client/feed-client';
import { NetworkClient } from '../src/integrations/network-client';
import { DEFAULT_SCHEDULE_PREFIX } from '../src/schedules/schedules';
import { settingsFromEnv } from '../src/config/settings';
import { connectClient } from '../src/config/connect';
import { FeedType } from '../src/contract/constants';
import { fanoutPassWorkflowId } from '../src/contract/fanout-pass';
import { FeedStore } from '../src/storage/feed-store';
import { FollowStore } from '../src/storage/follow-store';

const DAY = 86_400_000;
/**
 * Followers read per page in the demo's post: less than its 2,000 followers, so the fanout runs a
 * HIGH pass then a LOW pass (child workflows `fanoutPassWorkflow`, shown in the Web UI). At the
 * default page size (5,000) they would fit one page, which the fanout writes itself: no passes.
 */
const DEMO_PAGE_SIZE = 500;

async function main(): Promise<void> {
  const followers = Number(process.argv[2] ?? 2000);
  if (!Number.isInteger(followers) || followers < 1 || followers > 1_000_000) {
    throw new Error(`followers must be an integer 1..1000000, got "${process.argv[2]}"`);
  }
  const settings = settingsFromEnv();
  const mongo = await MongoClient.connect(settings.mongodbUri);
  const connection = await connectClient(settings);
  try {
    const db = mongo.db(settings.database);
    await new FeedStore(db, { feeds: settings.feeds }).ensureIndexes();

    // A follow graph: `alice` has N followers, every 4th of them active this week (HIGH).
    const graph = new FollowStore(db);
    const ids = Array.from({ length: followers }, (_, i) => `demo-user-${String(i + 1).padStart(6, '0')}`);
    const added = await graph.followMany(ids.map((follower) => ({ follower, followee: 'alice' })));
    // A rerun finds the graph in place (the data directory persists): keep its users as they are.
    if (added > 0) {
      await graph.setLastActive(ids.map((userId, i) => ({ userId, lastActiveAt: new Date(Date.now() - (i % 4 === 0 ? 1 : 60) * DAY) })));
    }
    console.log(`demo: alice has ${await graph.countFollowers('alice')} followers (${added} new edges), 1 in 4 active this week`);

    const temporal = new Client({ connection, namespace: settings.namespace });
    const feeds = new FeedClient({ temporal, db, feeds: settings.feeds });
    const started = Date.now();
    const { activityId, workflowId } = await feeds.addActivity(
      {
        actor: 'alice',
        verb: 'pin',
        object: `photo-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 14)}`,
        target: 'board-travel',
        extra: { caption: 'Sunset over the harbour' },
      },
      { pageSize: DEMO_PAGE_SIZE },
    );
    console.log(`demo: alice pinned a photo: activity ${activityId}, fanout workflow ${workflowId} (pages of ${DEMO_PAGE_SIZE} followers)`);
    // One progress query at a time, awaited before the connection closes.
    let polling: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      polling = polling.then(() => feeds
        .getProgress(activityId)
        .then((p) => console.log(`demo: progress: ${p.followersSeen} followers seen, HIGH ${p.high.chunksDone} chunks done / ${p.high.chunksInFlight} in flight, LOW ${p.low.chunksDone} done / ${p.low.chunksInFlight} in flight`))
        .catch(() => undefined));
    }, 1000);
    const summary = await feeds.waitForFanout(activityId).finally(() => clearInterval(timer));
    await polling;
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `demo: fanout done in ${seconds.toFixed(1)} s: ${summary.followersSeen} followers, ` +
        `${summary.high.entriesChanged} HIGH + ${summary.low.entriesChanged} LOW entries written, ` +
        `${summary.high.chunksFailed + summary.low.chunksFailed} chunks failed, ${summary.continuedAsNew} continue-as-new`,
    );
    // The passes: child workflows of the run, HIGH (active followers) first, then LOW.
    const passes: string[] = [];
    for (const priority of ['high', 'low'] as const) {
      const passId = fanoutPassWorkflowId(workflowId, priority);
      try {
        const d = await temporal.workflow.getHandle(passId).describe();
        passes.push(`${priority.toUpperCase()} pass ${passId} (${d.type}, task queue ${d.taskQueue}): ${d.status.name}`);
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    }
    if (passes.length) {
      const which = passes.length === 2 ? 'a HIGH and a LOW pass' : 'one pass';
      console.log(`demo: the run has ${which} (${DEMO_PAGE_SIZE} followers a page), child workflows of the fanout: in the Web UI, the run's Relationships tab and its child workflow events`);
      for (const line of passes) console.log(`demo:   ${line}`);
    } else {
      console.log(`demo: the run has no passes: its ${summary.followersSeen} followers fit one page of ${DEMO_PAGE_SIZE}, which the fanout writes itself (more than ${DEMO_PAGE_SIZE} followers: a HIGH and a LOW pass)`);
    }
    const reader = ids[0];
    const page = await feeds.readFeed(FeedType.TIMELINE, reader, { limit: 3 });
    console.log(`demo: ${reader}'s timeline, newest first (read straight from MongoDB):`);
    for (const item of page.items) {
      const a = item.activity!;
      console.log(`  ${a.time.toISOString()}  ${a.actor} ${a.verb} ${a.object}${a.target ? ` on ${a.target}` : ''}  (${item.activityId})`);
    }
    // temporal-dev.sh says where the Web UI is (TEMPORAL_UI_PORT may move it).
    const ui = (process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233').replace(/\/+$/, '');
    console.log(`demo: see the run at ${ui}/namespaces/${settings.namespace}/workflows/${workflowId}`);
    console.log(`demo:   or: ./temporal-dev.sh temporal workflow describe -w ${workflowId}   (./temporal-dev.sh cli progress ${activityId})`);
    await followDemo(feeds);
    if (Object.keys(settings.networks).length) await importDemo(new NetworkClient({ client: new Client({ connection, namespace: settings.namespace }), db }), settings.temporalAddress, activityId);
    else console.log('\ndemo: no third-party networks configured (FANOUT_NETWORKS_FILE): skipping the import demo');
  } finally {
    await connection.close();
    await mongo.close();
  }
}

/**
 * Follow with backfill, an aggregated feed and a notification feed: erin posts three times, susan
 * follows her (backfilling her timeline and her aggregated timeline), three more people follow
 * erin, and erin reads her notifications. Safe to rerun: repeats change nothing.
 */
async function followDemo(feeds: FeedClient): Promise<void> {
  const aggregated = [FeedType.TIMELINE, FeedType.TIMELINE_AGGREGATED];
  for (const [n, object] of ['photo-lake', 'photo-bridge', 'photo-market'].entries()) {
    await feeds.addActivity({ id: `erin-demo-post-${n + 1}`, actor: 'erin', verb: 'post', object }, { feedTypes: aggregated });
  }
  await feeds.follow('susan', 'erin', { backfillLimit: 10, feedTypes: aggregated });
  const state = await feeds.waitForFollow('susan', 'erin');
  console.log(`\ndemo: susan follows erin: ${state.followed ? `${state.backfilled} of erin's activities backfilled` : 'already following'}; erin has ${(await feeds.getCounts('erin')).followers} followers`);
  const timeline = await feeds.readFeed(FeedType.TIMELINE, 'susan', { limit: 5 });
  console.log(`demo: susan's timeline: ${timeline.items.map((i) => `${i.activity!.actor} ${i.activity!.verb} ${i.activity!.object}`).join('; ')}`);
  const grouped = await feeds.readAggregatedFeed(FeedType.TIMELINE_AGGREGATED, 'susan', { limit: 3 });
  for (const g of grouped.groups) {
    console.log(`demo: susan's aggregated timeline: ${g.actors.join(', ')} ${g.verb}ed ${g.activityCount} things on ${g.group.split('|')[1]} (${g.activities.map((a) => a.object).join(', ')})`);
  }
  await Promise.all(['bob', 'carol', 'dave'].map((u) => feeds.follow(u, 'erin', { backfillLimit: 0 })));
  await Promise.all(['bob', 'carol', 'dave'].map((u) => feeds.waitForFollow(u, 'erin')));
  const notes = await feeds.readNotifications('erin', { limit: 3 });
  for (const g of notes.groups) {
    const others = g.actorCount - Math.min(2, g.actors.length);
    console.log(`demo: erin's notifications: ${g.actors.slice(0, 2).join(', ')}${others > 0 ? ` and ${others} other${others > 1 ? 's' : ''}` : ''} ${g.verb}ed you (${g.seen ? 'seen' : 'new'})`);
  }
  console.log(`demo: erin has ${notes.counts.unseen} unseen, ${notes.counts.unread} unread; marking all seen -> ${JSON.stringify(await (async () => (await feeds.markSeen('erin'), feeds.notificationCounts('erin')))())}`);
}

/**
 * Friend imports from the fake social network of `temporal-dev.sh` (see `config/dev-networks.json`):
 * a small account, a whale (its own queue), an expired token, and LinkedIn-style endless pages;
 * then a share of alice's pin out to the network.
 */
async function importDemo(imports: NetworkClient, address: string, pinId: string): Promise<void> {
  const runs = [
    { network: 'fakebook', accountId: 'alice', token: 'demo-alice' },
    { network: 'fakebook', accountId: 'oprah', token: 'demo-oprah' },
    { network: 'fakebook', accountId: 'mallory', token: 'demo-expired' },
    { network: 'linkedish', accountId: 'alice', token: 'demo-alice' },
  ];
  console.log(`\ndemo: importing friends: ${runs.map((r) => `${r.network}/${r.accountId}`).join(', ')}`);
  // A rerun on the same data skips imports that already ended (the whale's takes a minute or two
  // under the fake network's rate limits); FANOUT_DEMO_REIMPORT=1 imports them again.
  const todo: typeof runs = [];
  for (const r of runs) {
    const last = (await imports.account(r.network, r.accountId))?.lastImport;
    if (last && !process.env.FANOUT_DEMO_REIMPORT) {
      console.log(`demo:   ${r.network}/${r.accountId}: imported before (${last.status}, ${last.at.toISOString()}): skipped; FANOUT_DEMO_REIMPORT=1 imports again`);
      continue;
    }
    await imports.connectAccount(r.network, r.accountId, r.token);
    await imports.importFriends(r.network, r.accountId, { whaleThreshold: 10_000 });
    todo.push(r);
  }
  // A line every 5 s while imports run, so a slow one (rate limits) does not look stuck.
  const ticker = setInterval(() => {
    void Promise.all(todo.map((r) => imports.getImportProgress(r.network, r.accountId).then((p) => `${r.network}/${r.accountId} ${p.status} ${p.pagesFetched} pages, ${p.items.imported} friends`, () => `${r.network}/${r.accountId} done`)))
      .then((lines) => console.log(`demo:   importing: ${lines.join('; ')}`));
  }, 5000);
  await Promise.all(
    todo.map(async (r) => {
      const p = await imports.waitForImport(r.network, r.accountId).catch((err: Error) => ({ status: 'failed', message: err.message }) as const);
      const counts = 'items' in p ? ` [imported ${p.items.imported}, skipped ${p.items.skipped}, failed ${p.items.failed}; ${p.pagesFetched} pages, ${p.rateLimitWaits} rate-limit waits${p.whale ? ', whale queue' : ''}]` : '';
      console.log(`demo:   ${r.network}/${r.accountId}: ${p.status}: ${p.message}${counts}`);
    }),
  ).finally(() => clearInterval(ticker));
  // Share alice's pin to fakebook: posted once, whatever the network's 3% of failures do.
  await imports.shareActivity('fakebook', 'alice', pinId);
  const share = await imports.waitForShare('fakebook', 'alice', pinId);
  console.log(`demo: alice shares her pin to fakebook: ${share.status}: ${share.message}`);
  const mallory = await imports.account('fakebook', 'mallory');
  console.log(`demo: mallory's account needs re-authorisation: ${mallory?.needsReauth} (${mallory?.reauthReason})`);
  console.log(`demo: schedules declared in code: ./temporal-dev.sh temporal schedule list (ids start with ${DEFAULT_SCHEDULE_PREFIX}; frontend ${address})`);
}

main().catch((err) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
