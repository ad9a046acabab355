/**
 * Every workflow of the project; the worker's `workflowsPath` points here.
 * @module
 */
export { fanoutWorkflow } from './fanout';
export { followWorkflow } from './follow';
