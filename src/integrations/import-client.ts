/**
 * The app-facing API of third-party imports: connect an account, import its friends, follow the
 * import, read the result.
 * @module
 */
import type { Client } from '@temporalio/client';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Db } from 'mongodb';
import { ValidationError } from '../errors';
import { TaskQueue } from '../model/constants';
import {
  IMPORT_WORKFLOW_TYPE,
  type ImportFriendsInput,
  type ImportOptions,
  type ImportProgress,
  importProgressQuery,
  importWorkflowId,
  validateImportInput,
} from '../model/imports';
import { checkId } from '../model/validation';
import { ImportStore, type NetworkAccountDoc } from './import-store';

/** Options of {@link ImportClient}. */
export interface ImportClientOptions {
  /** A connected Temporal client. */
  client: Client;
  /** The database the workers use. */
  db: Db;
  /** Queue of the import workflows. @default 'fanout' */
  workflowTaskQueue?: string;
  /** Options applied to every import (per-call options win). @default {} */
  defaults?: ImportOptions;
}

/** What {@link ImportClient.importFriends} started (or found running). */
export interface ImportStarted {
  workflowId: string;
  /** The run's id: the running import's when the call joined one. */
  runId: string;
}

/** Starts and follows imports. */
export class ImportClient {
  readonly store: ImportStore;
  private readonly temporal: Client;
  private readonly taskQueue: string;
  private readonly defaults: ImportOptions;

  constructor(options: ImportClientOptions) {
    this.temporal = options.client;
    this.store = new ImportStore(options.db);
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
    return this.temporal.workflow.getHandle(importWorkflowId(network, accountId)).result();
  }

  /** Cancels the running import; its calls in flight are aborted. */
  async cancelImport(network: string, accountId: string): Promise<void> {
    await this.temporal.workflow.getHandle(importWorkflowId(network, accountId)).cancel();
  }

  /** Friend ids imported for an account. */
  async friendIds(network: string, accountId: string): Promise<string[]> {
    checkId('accountId', accountId);
    return this.store.friendIds(network, accountId);
  }
}
