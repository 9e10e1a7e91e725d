/**
 * The stored document shapes (the schema contract documented in docs/schema.md) and their
 * conversion to the public plain records.
 * @internal
 */
import type { ObjectId, Timestamp } from 'mongodb';
import { allowedActions, type ContainerStatus, type StateCounts, type TaskState } from '../states';
import type { BackoffKind, ContainerRecord, FailurePolicy, FailureRecord, TaskRecord } from '../types';

export interface ContainerDoc {
  _id: ObjectId;
  name: string;
  status: ContainerStatus;
  failurePolicy: FailurePolicy;
  metadata: Record<string, unknown>;
  counts: StateCounts;
  /** Sum of task weights per state. */
  weights: StateCounts;
  total: number;
  weightTotal: number;
  /** Sum of weight × percentageComplete over the tasks that are not running. */
  progressSum: number;
  createdAt: Date;
  updatedAt: Date;
  startedAt?: Date | null;
  endedAt?: Date | null;
  rev: number;
  changedAt: Timestamp;
}

export type FailureDoc = FailureRecord;

export interface LeaseDoc {
  owner: string;
  expiresAt: Date;
  /**
   * The lease's length in ms, stored when it is granted and on every renewal (absent on leases
   * granted before 2.0.0-alpha.1: read as `expiresAt - updatedAt`).
   */
  ms?: number;
  /** Key slot held by the task (keyed tasks only). */
  slot?: string | null;
  /** Claim id under which the slot is held. */
  claim?: ObjectId | null;
}

export interface TaskDoc {
  _id: ObjectId;
  containerId: ObjectId;
  container: string;
  name: string;
  state: TaskState;
  dependsOn: string[];
  waitingOn: string[];
  /** False when no task depends on this one (so finishing it needs no unblock write); absent = unknown. */
  hasDependents?: boolean;
  weight: number;
  percentageComplete: number;
  statusText: string | null;
  taskData: unknown;
  processingData: unknown;
  result: unknown;
  invokeCount: number;
  attempts: number;
  maxRetries: number;
  retryDelayMs: number;
  backoff: BackoffKind;
  maxRetryDelayMs: number;
  /** Ring buffer: slot `failureCount % limit` holds the newest failure. */
  failures: Array<FailureDoc | null> | Record<string, FailureDoc>;
  failureCount: number;
  lease: LeaseDoc | null;
  /** Fencing token: incremented by every claim; a worker's writes carry the value it claimed with. */
  fence: number;
  key: string | null;
  runAfter: Date;
  createdAt: Date;
  updatedAt: Date;
  startedAt?: Date | null;
  lastInvokedAt: Date | null;
  endedAt: Date | null;
  durationMs: number | null;
  rev: number;
  changedAt: Timestamp;
}

export function toTaskRecord(d: TaskDoc): TaskRecord {
  // A ring buffer written with `$set: { 'failures.N': … }`: an array, or (where the server
  // dropped the empty array on insert, as FerretDB does) an object keyed by slot number.
  const slots: Array<FailureDoc | null> = Array.isArray(d.failures) ? d.failures : Object.values(d.failures ?? {});
  const failures = slots.filter((f): f is FailureDoc => f !== null && f !== undefined);
  failures.sort((a, b) => a.attempt - b.attempt || a.at.getTime() - b.at.getTime());
  return {
    id: d._id.toHexString(),
    containerId: d.containerId.toHexString(),
    container: d.container,
    name: d.name,
    state: d.state,
    dependsOn: d.dependsOn ?? [],
    waitingOn: d.waitingOn ?? [],
    weight: d.weight,
    percentageComplete: d.percentageComplete,
    statusText: d.statusText ?? null,
    taskData: d.taskData ?? null,
    processingData: d.processingData ?? null,
    result: d.result ?? null,
    invokeCount: d.invokeCount,
    attempts: d.attempts,
    maxRetries: d.maxRetries,
    retryDelayMs: d.retryDelayMs,
    backoff: d.backoff,
    maxRetryDelayMs: d.maxRetryDelayMs,
    failures: failures.map((f) => ({ ...f })),
    failureCount: d.failureCount,
    lease: d.lease ? { owner: d.lease.owner, token: d.fence, expiresAt: d.lease.expiresAt } : null,
    key: d.key ?? null,
    runAfter: d.runAfter,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    startedAt: d.startedAt ?? null,
    lastInvokedAt: d.lastInvokedAt ?? null,
    endedAt: d.endedAt ?? null,
    durationMs: d.durationMs ?? null,
    rev: d.rev,
    allowedActions: allowedActions(d.state),
  };
}

export function toContainerRecord(d: ContainerDoc): ContainerRecord {
  return {
    id: d._id.toHexString(),
    name: d.name,
    status: d.status,
    failurePolicy: d.failurePolicy,
    metadata: d.metadata ?? {},
    counts: { ...d.counts },
    total: d.total,
    weightTotal: d.weightTotal,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    startedAt: d.startedAt ?? null,
    endedAt: d.endedAt ?? null,
    rev: d.rev,
  };
}
