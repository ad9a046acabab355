/**
 * All activities, each group built by a factory that receives its dependencies.
 * @module
 */
export * from './fanout';
export * from './post-batch';
export * from './follow';
export * from './networks';
