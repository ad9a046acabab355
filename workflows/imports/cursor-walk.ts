/**
 * A cursor-paged friend list: each page is fetched as soon as the previous one named its cursor,
 * while earlier pages are still being imported. Ends at the last page, at `maxPages`, at a cursor
 * seen before (a looping pagination), or at a run of short pages past the announced total.
 * Workflow code (deterministic: Temporal APIs only).
 * @module
 */
import { RECENT_CURSORS } from '../../src/contract/imports';
import type { Ending, ImportWalk } from './walk';

/** Walks the list from the carried cursor on; see the module comment. */
export async function walkCursorList(walk: ImportWalk): Promise<Ending> {
  const { p, carry, options } = walk;
  for (;;) {
    walk.checkStop();
    if (carry.cursor === null) break;
    if (carry.nextPage >= options.maxPages || walk.timeToContinue()) {
      await walk.drain();
      return carry.nextPage >= options.maxPages ? walk.maxPagesEnding() : 'continue';
    }
    const pageNo = carry.nextPage++;
    walk.pagesThisRun++;
    const page = await walk.fetchPage(pageNo, carry.cursor === undefined ? {} : { cursor: carry.cursor });
    p.pagesFetched++;
    if (page.total !== undefined && carry.total === undefined) carry.total = page.total;
    // Position by items fetched (not imported: imports finish in the background).
    const skip = walk.pastTotal(carry.itemsSeen ?? 0, page.count);
    carry.itemsSeen = (carry.itemsSeen ?? 0) + page.count;
    if (page.count > 0) {
      await walk.waitForSlot();
      walk.launch(() => walk.importPage(pageNo, skip ? 'beyond announced total' : undefined));
    }
    if (walk.tiny()) {
      await walk.drain();
      return walk.tinyEnding();
    }
    const next = page.nextCursor ?? null;
    if (next !== null && (next === carry.cursor || carry.recentCursors.includes(next))) {
      await walk.drain();
      return {
        status: 'stopped_repeated_cursor',
        message: `stopped after ${p.pagesFetched} pages: the network returned cursor "${next.slice(0, 80)}" a second time (its pagination loops); items up to there are imported`,
      };
    }
    if (carry.cursor !== undefined && carry.cursor !== null) carry.recentCursors = [...carry.recentCursors, carry.cursor].slice(-RECENT_CURSORS);
    carry.cursor = next;
  }
  await walk.drain();
  return walk.completed();
}
