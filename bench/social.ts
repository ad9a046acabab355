/**
 * `npm run bench -- --workload social [--users U] [--accounts A] [--rate R] [--seconds S] [--concurrency C] [--chunk-execution local|activity]`
 *
 * What an app runs: many small fanouts and a few huge ones. A generated graph of A accounts
 * (default 120,000; 1 in 4 active) of which U (default 20,000) post, with a power-law follower
 * count: the poster of rank r has max(10 + r mod 40, 120,000 / r^1.1) followers (scaled to A),
 * so most have tens, the top few 10,000 to 120,000 (about 1.3 million edges by default). Posters
 * are drawn uniformly (a seeded generator), so a post reaches about 65 followers on average.
 *
 * Two phases, each measured on its own: posts at a fixed rate (R per second for S seconds,
 * default 20 for 30), then as fast as possible (C fanouts in flight, default 100, for S seconds).
 * For each: posts per second completed, entries per second, CPU per 1,000 entries (all-in and
 * per process), the time from `addActivity` returning until the first and until every active
 * follower has the post (p50 / p95 / max, from the acknowledged writes), history events and
 * Temporal Cloud actions per post (from the histories of a sample of 50, passes included, and
 * from the server's `action` counter over the phase). `--chunk-execution activity` runs every
 * fanout with `chunkExecution: 'activity'` (one activity task per chunk), to compare.
 * @module
 */
import { FeedClient } from '../src/client/feed-client';
import { type ChunkExecution, checkChunkExecution, type FanoutProgress } from '../src/contract/fanout';
import { POST_BATCH_WORKFLOW_TYPE } from '../src/contract/post-batch';
import { FollowStore } from '../src/storage/follow-store';
import { FeedStore } from '../src/storage/feed-store';
import { createWorkers } from '../src/worker/workers';
import { type ActionCount, actionsBetween, actionsFromHistories, settledServerActions } from './actions';
import { measure, type Measured, perThousandAll, printTable } from './cpu';
import { arg, type BenchStack, fanoutHistory, textArg } from './stack';
import { percentile, WriteTracker } from './tracker';

/** A seeded generator (mulberry32): the same posts every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const accountId = (n: number) => `a${String(n).padStart(6, '0')}`;
const isActive = (n: number) => n % 4 === 0;

/** One post: when `addActivity` returned, and the fanout's result. */
interface Post {
  id: string;
  workflowId: string;
  poster: number;
  addedAt: number;
  done: Promise<FanoutProgress>;
}

/** A measured phase of posts. */
interface PostPhase extends Measured {
  posts: Post[];
  /** Entries per post, and seconds from `addActivity` to the first / every active follower. */
  firstHigh: number[];
  allHigh: number[];
  /** The dev server's `action` counter over the phase (undefined on a server the bench did not start). */
  serverActions: ActionCount | undefined;
}

/** Runs the social workload and prints the figures; see the module comment. */
export async function socialBench(stack: BenchStack): Promise<void> {
  const { db, pids, temporal, nativeConnection } = stack;
  const accounts = arg('accounts', 120_000);
  const users = Math.min(arg('users', 20_000), accounts);
  const rate = arg('rate', 20);
  const seconds = arg('seconds', 30);
  const concurrency = arg('concurrency', 100);
  // `--only batched` (or `--only a`): one mode only.
  const only = textArg('only');
  const feeds = { timeline: { trimChance: 0, fanout: true }, user: { trimChance: 0 } };
  await new FeedStore(db, { feeds }).ensureIndexes();

  // The graph: poster of rank r (account r - 1) is followed by a window of accounts.
  const scale = accounts / 120_000;
  const followerCount = (r: number) => Math.min(accounts - 1, Math.max(10 + (r % 40), Math.floor((120_000 * scale) / r ** 1.1)));
  const window = (r: number) => {
    const start = (r * 7919) % accounts;
    const ids: number[] = [];
    for (let k = 0; ids.length < followerCount(r); k++) {
      const n = (start + k) % accounts;
      if (n !== r - 1) ids.push(n);
    }
    return ids;
  };
  const activeFollowers: number[] = [0];
  console.log(`social: seeding ${accounts} accounts, ${users} posters ...`);
  const seedStart = Date.now();
  const graph = new FollowStore(db);
  await graph.setLastActive(Array.from({ length: accounts }, (_, n) => ({ userId: accountId(n), lastActiveAt: new Date(Date.now() - (isActive(n) ? 3_600_000 : 90 * 86_400_000)) })));
  let edges = 0;
  let batch: Array<{ follower: string; followee: string }> = [];
  const inserting = new Set<Promise<unknown>>();
  const flush = async () => {
    const p = graph.followMany(batch, 5_000);
    batch = [];
    inserting.add(p);
    void p.finally(() => inserting.delete(p));
    if (inserting.size >= 4) await Promise.race(inserting);
  };
  for (let r = 1; r <= users; r++) {
    const ids = window(r);
    activeFollowers[r] = ids.filter(isActive).length;
    edges += ids.length;
    for (const n of ids) batch.push({ follower: accountId(n), followee: accountId(r - 1) });
    if (batch.length >= 20_000) await flush();
  }
  await flush();
  await Promise.all(inserting);
  const counts = Array.from({ length: users }, (_, i) => followerCount(i + 1)).sort((a, b) => a - b);
  console.log(`social: ${edges} follow edges in ${((Date.now() - seedStart) / 1000).toFixed(0)} s; followers per poster: median ${percentile(counts, 50)}, p99 ${percentile(counts, 99)}, max ${counts[counts.length - 1]}`);

  const tracker = new WriteTracker((id) => isActive(Number(id.slice(1))));
  // Every timeline write, chunk or batched post, as it is acknowledged.
  const unwatch = tracker.watchStore('timeline');
  const workers = await createWorkers({ connection: nativeConnection, db, feedStore: { feeds } });
  const running = Promise.all(workers.map((w) => w.run()));
  const chunkExecution: ChunkExecution = checkChunkExecution('--chunk-execution', textArg('chunk-execution'), false);
  // Today's path (a workflow per post), then the same posts batched per shard (`batchSmallPosts`).
  const modes = [
    { name: 'a workflow per post', client: new FeedClient({ temporal, db, feeds, fanout: { chunkExecution } }) },
    { name: 'batched', client: new FeedClient({ temporal, db, feeds, fanout: { chunkExecution }, batchSmallPosts: true }) },
  ].filter((m) => !only || m.name.startsWith(only));
  let seq = 0;
  try {
    const phases: Array<[string, PostPhase]> = [];
    const historyPerPost: string[] = [];
    const actionsPerPost: string[] = [];
    for (const mode of modes) {
      const client = mode.client;
      // The same posters in the same order for every mode.
      const pick = random(42);
      const post = async (phase: string): Promise<Post> => {
        const poster = 1 + Math.floor(pick() * users);
        const id = `${phase}-${seq++}`;
        tracker.expect(id, activeFollowers[poster]);
        const added = await client.addActivity({ id, actor: accountId(poster - 1), verb: 'post', object: id });
        return { id, workflowId: added.workflowId, poster, addedAt: Date.now(), done: client.waitForFanout(added.activityId) };
      };
      const finish = async (posts: Post[]): Promise<number> => (await Promise.all(posts.map((p) => p.done))).reduce((n, s) => n + s.high.entriesChanged + s.low.entriesChanged, 0);
      const phase = async (run: (posts: Post[]) => Promise<void>): Promise<PostPhase> => {
        const posts: Post[] = [];
        const actionsAt = () => (stack.temporalMetrics ? settledServerActions(stack.temporalMetrics) : Promise.resolve(undefined));
        const actionsBefore = await actionsAt();
        const m = await measure(pids, async () => {
          await run(posts);
          return finish(posts);
        });
        const actionsAfter = await actionsAt();
        const since = (p: Post, t: number | null | undefined) => (t == null ? Number.NaN : (t - p.addedAt) / 1000);
        return {
          ...m,
          posts,
          firstHigh: posts.map((p) => since(p, tracker.get(p.id)?.firstHighAt)).filter((x) => !Number.isNaN(x)),
          allHigh: posts.map((p) => since(p, tracker.get(p.id)?.allHighAt)).filter((x) => !Number.isNaN(x)),
          serverActions: actionsBefore && actionsAfter ? actionsBetween(actionsBefore, actionsAfter) : undefined,
        };
      };
      console.log(`social: ${mode.name}: warm-up (50 posts, not measured) ...`);
      await finish(await Promise.all(Array.from({ length: 50 }, () => post('warm'))));

      console.log(`social: ${mode.name}: ${rate} posts/s for ${seconds} s ...`);
      const fixed = await phase(async (posts) => {
        const start = Date.now();
        for (let i = 0; i < rate * seconds; i++) {
          await new Promise((r) => setTimeout(r, Math.max(0, start + (i * 1000) / rate - Date.now())));
          posts.push(await post('fixed'));
        }
      });
      console.log(`social: ${mode.name}: as fast as possible, ${concurrency} posts in flight, for ${seconds} s ...`);
      const fast = await phase(async (posts) => {
        const end = Date.now() + seconds * 1000;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (Date.now() < end) {
              const p = await post('fast');
              posts.push(p);
              await p.done;
            }
          }),
        );
      });
      const mine: Array<[string, PostPhase]> = [[`${mode.name}: ${rate} posts/s offered`, fixed], [`${mode.name}: as fast as possible, ${concurrency} in flight`, fast]];
      phases.push(...mine);
      if (mode.client === modes.find((m) => m.name === 'batched')?.client) {
        // Batched posts share their shards' histories: events per post over every shard run so far
        // (warm-up and both phases); actions only from the server's counter.
        let events = 0;
        for await (const run of temporal.workflow.list({ query: `WorkflowType = '${POST_BATCH_WORKFLOW_TYPE}'` })) {
          // Visibility has the length of closed runs only; a running one is asked.
          events += run.status.name === 'RUNNING' ? (await temporal.workflow.getHandle(run.workflowId, run.runId).describe()).historyLength : run.historyLength;
        }
        const sent = 50 + fixed.posts.length + fast.posts.length;
        for (let i = 0; i < 2; i++) {
          historyPerPost.push(`${(events / sent).toFixed(2)} (all shard runs / posts)`);
          actionsPerPost.push('-');
        }
        continue;
      }
      for (const [, ph] of mine) {
        const sample = ph.posts.filter((_, i) => i % Math.max(1, Math.floor(ph.posts.length / 50)) === 0).slice(0, 50);
        const hs = await Promise.all(sample.map((p) => fanoutHistory(temporal, p.workflowId)));
        const as = await Promise.all(sample.map((p) => actionsFromHistories(temporal, p.workflowId)));
        const followersInSample = sample.reduce((n, p) => n + followerCount(p.poster), 0);
        historyPerPost.push(`${(hs.reduce((n, h) => n + h.events, 0) / sample.length).toFixed(1)} (${followersInSample / sample.length} followers on average)`);
        actionsPerPost.push((as.reduce((n, a) => n + a.total, 0) / sample.length).toFixed(2));
      }
    }

    const ms = (x: number) => (Number.isNaN(x) ? '-' : (x * 1000).toFixed(0));
    const row = (metric: string, cell: (p: PostPhase) => string) => [metric, ...phases.map(([, p]) => cell(p))];
    const cpuPerPost = (p: PostPhase) => (1000 * Object.values(p.cpu).filter((v) => !Number.isNaN(v)).reduce((a, b) => a + b, 0)) / p.posts.length;
    console.log(`\nsocial: ${accounts} accounts, ${users} posters, ${edges} edges, store ${stack.storeName}, chunks '${chunkExecution}'`);
    printTable(['metric', ...phases.map(([name]) => name)], [
      row('**CPU ms per post, all-in**', (p) => `**${cpuPerPost(p).toFixed(1)}**`),
      ...Object.keys(phases[0][1].cpu).map((name) => row(`CPU ms per post: ${name}`, (p) => ((1000 * (p.cpu[name] ?? 0)) / p.posts.length).toFixed(1))),
      row('CPU ms / 1,000 entries, all-in', (p) => perThousandAll(p.cpu, p.written)),
      row('posts', (p) => String(p.posts.length)),
      row('**posts / s completed** (posts / wall time to the last done)', (p) => `**${(p.posts.length / p.seconds).toFixed(1)}**`),
      row('entries / s', (p) => p.rate.toFixed(0)),
      row('entries', (p) => String(p.written)),
      row('addActivity -> first active follower, p50 / p95 (ms)', (p) => `${ms(percentile(p.firstHigh, 50))} / ${ms(percentile(p.firstHigh, 95))}`),
      row('**addActivity -> every active follower, p50 / p95** / max (ms)', (p) => `**${ms(percentile(p.allHigh, 50))} / ${ms(percentile(p.allHigh, 95))}** / ${ms(Math.max(...p.allHigh))}`),
      row('RSS of this process at start / peak (MB)', (p) => `${p.startRssMb.toFixed(0)} / ${p.peakRssMb.toFixed(0)}`),
      ['history events per post', ...historyPerPost],
      ['Temporal Cloud actions per post (histories, sample of 50)', ...actionsPerPost],
      row('**actions per post** (server `action` counter, whole phase)', (p) => (p.serverActions ? `**${(p.serverActions.total / p.posts.length).toFixed(2)}**` : '-')),
    ]);
  } finally {
    workers.forEach((w) => w.shutdown());
    await running;
    unwatch();
  }
}
