/**
 * An offset-paged friend list (`offset`: the first page announces the total, then every other
 * page is fetched at once, `maxPagesInFlight` at a time) or one of unknown size (pages until the
 * first empty one). Items past the announced total (LinkedIn's off-by-one ghosts) are skipped.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import type { Ending, ImportWalk } from './walk';

/** Fetch, then import, one page of an offset list. */
async function offsetPage(walk: ImportWalk, pageNo: number): Promise<void> {
  const { p, carry } = walk;
  const offset = pageNo * p.pageSize!;
  const page = await walk.fetchPage(pageNo, { offset });
  p.pagesFetched++;
  if (page.total !== undefined && carry.total === undefined) carry.total = page.total;
  if (page.count === 0) {
    // Only a list of unknown size ends at its first empty page; with a known total, an empty
    // page (friends removed meanwhile) is just empty.
    if (p.strategy === 'unknown-size') carry.endedAt = Math.min(carry.endedAt ?? pageNo, pageNo);
    return;
  }
  // Items past the total the network announced are the off-by-one bug's ghosts: skip them.
  await walk.importPage(pageNo, walk.pastTotal(offset, page.count) ? 'beyond announced total' : undefined);
}

/** Walks the list from the carried page on; see the module comment. */
export async function walkOffsetList(walk: ImportWalk): Promise<Ending> {
  const { p, carry, options } = walk;
  if (p.strategy === 'offset' && carry.total === undefined) {
    // The first page announces the total; without one the list is walked as unknown-size.
    await offsetPage(walk, carry.nextPage++);
    walk.pagesThisRun++;
    if (carry.total === undefined) p.strategy = 'unknown-size';
  }
  const knownPages = p.strategy === 'offset' ? Math.ceil((carry.total ?? 0) / p.pageSize!) : Infinity;
  const ended = (): boolean => carry.nextPage >= knownPages || carry.endedAt !== undefined;
  for (;;) {
    walk.checkStop();
    if (ended()) break;
    if (walk.tiny()) {
      await walk.drain();
      return walk.tinyEnding();
    }
    if (carry.nextPage >= options.maxPages || walk.timeToContinue()) {
      await walk.drain();
      // The pages in flight may have found the end meanwhile: a list that ended is complete.
      if (ended()) break;
      if (walk.tiny()) return walk.tinyEnding();
      return carry.nextPage >= options.maxPages ? walk.maxPagesEnding() : 'continue';
    }
    if (walk.inFlight >= options.maxPagesInFlight) {
      await walk.waitForSlot();
      continue; // a page that just finished may have ended the list: check again before launching
    }
    const pageNo = carry.nextPage++;
    walk.pagesThisRun++;
    walk.launch(() => offsetPage(walk, pageNo));
  }
  await walk.drain();
  return walk.tiny() ? walk.tinyEnding() : walk.completed();
}
