/**
 * Every workflow of the project; the worker's `workflowsPath` points here.
 * @module
 */
export { fanoutWorkflow } from './fanout';
export { fanoutPassWorkflow } from './fanout/pass';
export { postBatchWorkflow } from './post-batch';
export { followWorkflow } from './follow';
export { importFriendsWorkflow } from './imports';
export { trickleSyncWorkflow } from './trickle-sync';
export { shareActivityWorkflow } from './share-activity';
