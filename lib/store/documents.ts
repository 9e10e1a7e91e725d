/**
 * The stored document shapes (the schema contract documented in docs/schema.md) and their
 * conversion to the public plain records.
 * @internal
 */
import type { ObjectId, Timestamp } from 'mongodb';
import { visibleWaitingOn, type RunWhen } from '../run-when';
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
  /** Default `timeoutMs` of tasks added to it (deadlines.ts); absent = the adding client's default. */
  taskTimeoutMs?: number;
  /** Default `stallMs` of tasks added to it; absent = the adding client's default. */
  taskStallMs?: number;
  /** True while the container is paused (pause.ts); absent on containers never paused (= false). */
  paused?: boolean;
  /** When the current pause began; null/absent when not paused. */
  pausedAt?: Date | null;
  /** Who paused it (the caller's `by`, e.g. an HTTP token id); null/absent when not paused or not said. */
  pausedBy?: string | null;
  /** Incremented by every pause and resume; its tasks' `pause` holds the value of the pause that holds them. Absent = 0. */
  pauseSeq?: number;
  /** Set by a pause's or resume's container write, cleared once its task write is done (holds.ts): absent = the holds agree. */
  pauseUnsynced?: ObjectId;
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
  /** Claim time + the task's `timeoutMs` (deadlines.ts); absent: no timeout. */
  timeoutAt?: Date;
  /** Last progress/status/checkpoint (or the claim) + the task's `stallMs`; absent: no stall limit. */
  stallAt?: Date;
  /** The sooner of `timeoutAt` and `stallAt`: past it, heartbeats are refused and the sweep ends the attempt. Absent: none. */
  deadline?: Date;
  /** The task's `stallMs` as claimed (a progress heartbeat moves `stallAt` to now + this). */
  stallMs?: number;
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
  /** When the task runs (lib/run-when.ts); absent = `'succeeded'` (stored only for cleanup steps). */
  runWhen?: RunWhen;
  /**
   * True when a cleanup step (`runWhen` `'always'`/`'failed'`) depends on this task, so that
   * failing, cancelling or retrying it updates their `waitingOn` (run-when.ts); absent = none.
   * Set like `hasDependents`, never reset.
   */
  hasCleanupDependents?: boolean;
  /** Name of the task that spawned this one (`ctx.spawn`); absent on tasks added by `addTasks`. */
  parent?: string;
  /** True once the task spawned children (set by the fenced write that starts a spawn); absent = none. */
  spawned?: boolean;
  /** Claim order: higher first (sequence.ts). Absent on tasks stored before 2.0.0-alpha.2 (= 0, backfilled once). */
  priority?: number;
  /** Creation number from the database's sequence (sequence.ts): claims of equal priority go lowest first. Absent on tasks stored before 2.0.0-alpha.2 (sort first). */
  seq?: number;
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
  /** Longest one attempt may run, ms; absent = no limit. */
  timeoutMs?: number;
  /** Longest an attempt may go without progress, ms; absent = no limit. */
  stallMs?: number;
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
  /**
   * When a write last removed a dependency (or a cleanup step's verdict marker) from `waitingOn`;
   * absent until one does. The task became claimable at the later of this and `runAfter`
   * (`readyAt`, the start of the queue wait the metrics observe).
   */
  unblockedAt?: Date;
  endedAt: Date | null;
  durationMs: number | null;
  rev: number;
  changedAt: Timestamp;
  /** The `pauseSeq` of the container pause that holds this task (not claimable); absent when not held (pause.ts). */
  pause?: number;
}

/**
 * The task fields that are not stored while they hold their default (docs/schema.md, "Absent
 * fields"): inserts leave them out, and every reader takes an absent one as this value. The
 * library's queries on them are written so that absent and default match alike (`key: null`,
 * `lease: null`, `'waitingOn.0': { $exists: false }`, `$push`/`$pull`/`$inc` on a missing field).
 */
const TASK_DEFAULTS = {
  dependsOn: (): string[] => [],
  waitingOn: (): string[] => [],
  statusText: () => null,
  taskData: () => null,
  processingData: () => null,
  result: () => null,
  failures: (): FailureDoc[] => [],
  lease: () => null,
  key: () => null,
  lastInvokedAt: () => null,
  endedAt: () => null,
  durationMs: () => null,
} as const;

type Defaulted = keyof typeof TASK_DEFAULTS;

/** A task document as stored: the defaulted fields may be absent. */
export type StoredTaskDoc = Omit<TaskDoc, Defaulted> & Partial<Pick<TaskDoc, Defaulted>>;

/** True for a value a lean document leaves out: null, undefined or an empty array. */
function isDefault(v: unknown): boolean {
  return v === null || v === undefined || (Array.isArray(v) && v.length === 0);
}

/** The document to insert: `d` without the fields that hold their default (a shallow copy). */
export function leanTaskDoc<T extends Partial<TaskDoc>>(d: T): T {
  const out = { ...d };
  for (const k of Object.keys(TASK_DEFAULTS) as Defaulted[]) if (k in out && isDefault(out[k])) delete out[k];
  return out;
}

/** The read side of {@link leanTaskDoc}: every absent defaulted field filled in (a shallow copy). */
export function withTaskDefaults(d: StoredTaskDoc): TaskDoc {
  const out = { ...d } as Record<string, unknown>;
  for (const [k, dflt] of Object.entries(TASK_DEFAULTS)) if (out[k] === undefined) out[k] = dflt();
  return out as unknown as TaskDoc;
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
    waitingOn: visibleWaitingOn(d.waitingOn),
    runWhen: d.runWhen ?? 'succeeded',
    parent: d.parent ?? null,
    spawned: d.spawned === true,
    priority: d.priority ?? 0,
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
    timeoutMs: d.timeoutMs ?? null,
    stallMs: d.stallMs ?? null,
    failures: failures.map((f) => ({ ...f })),
    failureCount: d.failureCount,
    lease: d.lease
      ? {
          owner: d.lease.owner,
          token: d.fence,
          expiresAt: d.lease.expiresAt,
          deadline: d.lease.deadline ?? null,
          timeoutAt: d.lease.timeoutAt ?? null,
          stallAt: d.lease.stallAt ?? null,
        }
      : null,
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
    paused: d.paused === true,
    pausedAt: d.paused === true ? (d.pausedAt ?? null) : null,
    pausedBy: d.paused === true ? (d.pausedBy ?? null) : null,
    taskTimeoutMs: d.taskTimeoutMs ?? null,
    taskStallMs: d.taskStallMs ?? null,
  };
}
