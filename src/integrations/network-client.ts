/**
 * The app-facing API of third-party networks: connect an account, import its friends and follow
 * the import, share activities out.
 * @module
 */
import type { Client } from '@temporalio/client';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Db } from 'mongodb';
import { ValidationError } from '../contract/errors';
import { TaskQueue } from '../contract/constants';
import {
  IMPORT_WORKFLOW_TYPE,
  type ImportFriendsInput,
  type ImportOptions,
  type ImportProgress,
  importProgressQuery,
  importWorkflowId,
  validateImportInput,
} from '../contract/imports';
import { SHARE_WORKFLOW_TYPE, type ShareInput, type ShareOutcome, shareWorkflowId, validateShareInput } from '../contract/shares';
import { checkId } from '../contract/validation';
import { NetworkStore, type NetworkAccountDoc } from './network-store';

/** Options of {@link NetworkClient}. */
export interface NetworkClientOptions {
  /** A connected Temporal client. */
  client: Client;
  /** The database the workers use. */
  db: Db;
  /** Queue of the import workflows. @default 'fanout' */
  workflowTaskQueue?: string;
  /** Options applied to every import (per-call options win). @default {} */
  defaults?: ImportOptions;
}

/** What {@link NetworkClient.importFriends} started (or found running). */
export interface ImportStarted {
  workflowId: string;
  /** The run's id: the running import's when the call joined one. */
  runId: string;
}

/** Starts and follows imports and shares. */
export class NetworkClient {
  readonly store: NetworkStore;
  private readonly temporal: Client;
  private readonly taskQueue: string;
  private readonly defaults: ImportOptions;

  constructor(options: NetworkClientOptions) {
    this.temporal = options.client;
    this.store = new NetworkStore(options.db);
    this.taskQueue = options.workflowTaskQueue ?? TaskQueue.WORKFLOWS;
    this.defaults = options.defaults ?? {};
  }

  /**
   * Stores an account's token (after the app's OAuth dance) and clears any re-auth mark. The
   * token stays in MongoDB: workflows only ever see the network name and the account id.
   */
  async connectAccount(network: string, accountId: string, token: string): Promise<void> {
    validateImportInput({ network, accountId });
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) throw new ValidationError('token', 'must be a non-empty string of at most 4096 characters');
    await this.store.connect(network, accountId, token);
  }

  /** The account as stored: re-auth mark and reason, network size, last import. Null if never connected. */
  async account(network: string, accountId: string): Promise<NetworkAccountDoc | null> {
    validateImportInput({ network, accountId });
    return this.store.account(network, accountId);
  }

  /**
   * Starts importing an account's friends and returns at once. One import per account runs at a
   * time: a second call while one runs joins it. Input is validated before anything starts.
   */
  async importFriends(network: string, accountId: string, options: ImportOptions = {}): Promise<ImportStarted> {
    const input: ImportFriendsInput = { network, accountId, options: { ...this.defaults, ...options } };
    validateImportInput(input);
    if (!(await this.store.account(network, accountId))) throw new ValidationError('accountId', `"${accountId}" has no connected ${network} account (call connectAccount first)`);
    const handle = await this.temporal.workflow.start(IMPORT_WORKFLOW_TYPE, {
      taskQueue: this.taskQueue,
      workflowId: importWorkflowId(network, accountId),
      args: [input],
      // Joining a running import (not failing, not starting a second) keeps "import now" buttons
      // idempotent; a finished import may be run again later.
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `import ${network} friends of ${accountId}`,
    });
    return { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
  }

  /** The running (or last) import's progress. */
  async getImportProgress(network: string, accountId: string): Promise<ImportProgress> {
    return this.temporal.workflow.getHandle(importWorkflowId(network, accountId)).query(importProgressQuery);
  }

  /** Waits for the current import to end and returns its counts. Throws if it failed or was cancelled. */
  async waitForImport(network: string, accountId: string): Promise<ImportProgress> {
    return this.temporal.workflow.getHandle(importWorkflowId(network, accountId)).result() as Promise<ImportProgress>;
  }

  /** Cancels the running import; its calls in flight are aborted. */
  async cancelImport(network: string, accountId: string): Promise<void> {
    await this.temporal.workflow.getHandle(importWorkflowId(network, accountId)).cancel();
  }

  /**
   * Shares an activity (already stored by the feed client) to an account's network and returns
   * at once; `waitForShare` gives the outcome. Sharing the same activity to the same account again
   * runs once and posts once.
   */
  async shareActivity(network: string, accountId: string, activityId: string): Promise<{ workflowId: string }> {
    const input: ShareInput = { network, accountId, activityId, ...(this.defaults.taskQueue ? { taskQueue: this.defaults.taskQueue } : {}) };
    validateShareInput(input);
    const handle = await this.temporal.workflow.start(SHARE_WORKFLOW_TYPE, {
      taskQueue: this.taskQueue,
      workflowId: shareWorkflowId(network, accountId, activityId),
      args: [input],
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      staticSummary: `share ${activityId} to ${network} as ${accountId}`,
    });
    return { workflowId: handle.workflowId };
  }

  /** Waits for a share and returns how it ended (`shared`, or `needs_reauth`). */
  async waitForShare(network: string, accountId: string, activityId: string): Promise<ShareOutcome> {
    return this.temporal.workflow.getHandle(shareWorkflowId(network, accountId, activityId)).result() as Promise<ShareOutcome>;
  }

  /** Friend ids imported for an account. */
  async friendIds(network: string, accountId: string): Promise<string[]> {
    checkId('accountId', accountId);
    return this.store.friendIds(network, accountId);
  }
}
