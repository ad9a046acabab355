/**
 * Screenshots of what an operator sees in the Temporal Web UI, taken in a real headless Chromium
 * against the running dev stack (`./temporal-dev.sh up` first): a fanout's page (its HIGH and LOW
 * passes, live current details), its HIGH pass's page (chunk summaries), a stalled one (misspelled
 * chunk queue) and a failed one (a chunk that failed for good), plus the list filtered to stalled
 * fanouts; and Prometheus's graph of entries written per second when `./temporal-dev.sh prometheus`
 * runs it.
 *
 * Usage: node --import tsx scripts/screenshots.ts [outDir]   (default docs/screenshots)
 * Needs Debian's chromium (apt-get install chromium) at /usr/bin/chromium, or CHROMIUM_PATH.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { chromium, type Page } from 'playwright-core';
import { FeedClient } from '../src/client/feed-client';
import { settingsFromEnv } from '../src/config/settings';
import { connectClient } from '../src/config/connect';
import { FANOUT_WORKFLOW_TYPE } from '../src/contract/constants';
import { FollowStore } from '../src/storage/follow-store';

const UI = process.env.TEMPORAL_UI_URL ?? 'http://localhost:8233';
const PROMETHEUS = process.env.PROMETHEUS_URL ?? 'http://localhost:9090';
const out = path.resolve(process.argv[2] ?? 'docs/screenshots');

/** Opens `url`, waits for `waitFor` on the page, opens `tab` if given, and saves a screenshot. */
async function shoot(page: Page, url: string, file: string, waitFor: string, tab?: string): Promise<void> {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.getByText(waitFor, { exact: false }).first().waitFor({ timeout: 20_000 });
  if (tab) await page.getByText(tab, { exact: true }).first().click();
  // The summary and current details render as Markdown in frames of their own, after a query.
  await page.waitForTimeout(4000);
  await page.screenshot({ path: path.join(out, file), fullPage: false });
  console.log(`screenshots: ${file} (${url})`);
}

async function main(): Promise<void> {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: apt-get install chromium, or set CHROMIUM_PATH`);
  mkdirSync(out, { recursive: true });
  const settings = settingsFromEnv();
  const connection = await connectClient(settings);
  const mongo = await MongoClient.connect(settings.mongodbUri);
  const temporal = new Client({ connection, namespace: settings.namespace });
  const db = mongo.db(settings.database);
  const feeds = new FeedClient({ temporal, db, feeds: settings.feeds });
  const stamp = Date.now().toString(36);
  try {
    // 1. A fanout in progress: 20,000 followers in pages of 2,000 (so by passes), chunks of 10, one
    //    at a time (about half a minute), so the page shows it live.
    const graph = new FollowStore(db);
    const fans = Array.from({ length: 20_000 }, (_, i) => `fan-${String(i).padStart(5, '0')}`);
    await graph.followMany(fans.map((follower) => ({ follower, followee: 'nina' })));
    await graph.setLastActive(fans.filter((_, i) => i % 4 === 0).map((userId) => ({ userId, lastActiveAt: new Date() })));
    const live = await feeds.addActivity({ id: `shot-live-${stamp}`, actor: 'nina', verb: 'pin', object: 'photo-live' }, { chunkSize: 10, maxInFlight: 1, pageSize: 2000 });
    // 2. Stalled: its HIGH pass waits on a queue no worker serves (pages of 500: alice's 2,000
    //    followers would otherwise fit one page, written inline on no chunk queue).
    const stalled = await feeds.addActivity({ id: `shot-stalled-${stamp}`, actor: 'alice', verb: 'pin', object: 'photo-typo' }, { highTaskQueue: 'hgh-fanout', stalledAfterMs: 2000, pageSize: 500 });
    // 3. Failed: bad data in the graph (a follower id that can never own a feed) fails its chunk.
    await graph.followMany([{ follower: 'zoe', followee: 'mallory' }, { follower: 'yann', followee: 'mallory' }]);
    await db.collection('follows').updateOne({ _id: 'mallory/zoe' as never }, { $set: { follower: 'zoe/broken' } });
    const failed = await feeds.addActivity({ id: `shot-failed-${stamp}`, actor: 'mallory', verb: 'post', object: 'note-1' });
    await feeds.waitForFanout(failed.activityId).catch(() => undefined);

    const browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
      const wf = (id: string) => `${UI}/namespaces/${settings.namespace}/workflows/${encodeURIComponent(id)}`;
      await shoot(page, wf(live.workflowId), 'fanout-running-details.png', 'fanoutPassWorkflow', 'User Metadata');
      await shoot(page, wf(live.workflowId), 'fanout-running.png', 'fanoutPassWorkflow');
      await shoot(page, wf(`${live.workflowId}/high`), 'fanout-pass-high.png', 'writeFeedChunk');
      await feeds.waitForFanout(live.activityId);
      await new Promise((r) => setTimeout(r, 4000)); // past stalledAfterMs and a watchdog tick
      await shoot(page, wf(stalled.workflowId), 'fanout-stalled.png', 'fanoutPassWorkflow', 'User Metadata');
      const query = encodeURIComponent(`WorkflowType="${FANOUT_WORKFLOW_TYPE}" AND FanoutStalled=true`);
      await shoot(page, `${UI}/namespaces/${settings.namespace}/workflows?query=${query}`, 'list-stalled.png', stalled.workflowId);
      await shoot(page, wf(failed.workflowId), 'fanout-failed.png', 'Failed');
      // Prometheus, when `./temporal-dev.sh prometheus` runs it: entries/s by queue over the fanouts above.
      if (await fetch(`${PROMETHEUS}/-/ready`).then((r) => r.ok, () => false)) {
        await feeds.waitForFanout(live.activityId);
        for (let i = 0; i < 5; i++) await feeds.waitForFanout((await feeds.addActivity({ id: `shot-load-${stamp}-${i}`, actor: 'nina', verb: 'pin', object: `p${i}` })).activityId);
        await new Promise((r) => setTimeout(r, 12_000)); // two scrapes after the last one
        const expr = encodeURIComponent('sum by (taskQueue) (rate(feed_fanout_entries_written[1m]))');
        await page.goto(`${PROMETHEUS}/graph?g0.expr=${expr}&g0.tab=0&g0.range_input=10m`, { waitUntil: 'networkidle' });
        await page.waitForTimeout(3000);
        await page.screenshot({ path: path.join(out, 'prometheus-entries-per-second.png') });
        console.log('screenshots: prometheus-entries-per-second.png');
      } else console.log(`screenshots: no Prometheus at ${PROMETHEUS} (./temporal-dev.sh prometheus starts one): its graph skipped`);
    } finally {
      await browser.close();
    }
    await temporal.workflow.getHandle(stalled.workflowId).terminate('screenshots taken');
  } finally {
    await connection.close();
    await mongo.close();
  }
}

main().catch((err) => {
  console.error(`screenshots failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
