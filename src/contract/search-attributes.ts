/**
 * The typed keys of the project's search attributes (see `SearchAttribute` for what each means),
 * defined once for the client, the workflows and the operator command. Pure.
 * @module
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { SearchAttribute } from './constants';

/** Keyword: the actor whose followers receive the activity. */
export const actorKey = defineSearchAttributeKey(SearchAttribute.ACTOR, SearchAttributeType.KEYWORD);
/** Keyword: `add` or `remove`. */
export const operationKey = defineSearchAttributeKey(SearchAttribute.OPERATION, SearchAttributeType.KEYWORD);
/** Bool: true while the fanout is stalled. */
export const stalledKey = defineSearchAttributeKey(SearchAttribute.STALLED, SearchAttributeType.BOOL);
