/**
 * Public record and option types. Records are plain objects: nothing the store returns is a
 * Mongoose document or a driver type.
 */
import type { RunWhen } from './run-when';
import type { ContainerEta } from './eta';
import type { ContainerAction, ContainerStatus, StateCounts, TaskAction, TaskState } from './states';

/** How to pick the time between attempts. */
export type BackoffKind = 'fixed' | 'exponential';

/** What happens to the rest of a container when one task fails for good. */
export type FailurePolicy = 'continue' | 'fail-fast';

/** One failed attempt of a task. */
export interface FailureRecord {
  /** 1-based attempt number (the task's `invokeCount` when it failed). */
  attempt: number;
  at: Date;
  message: string;
  stack: string | null;
  /**
   * The error's `code` if it had one, `LEASE_EXPIRED` for an interrupted attempt, `TASK_TIMEOUT`
   * / `TASK_STALLED` for an attempt ended by its deadline.
   */
  code: string | null;
  /** The worker (lease owner) that ran the attempt. */
  workerId: string | null;
  /**
   * `error` for a thrown/reported error, `interrupted` for a lease that expired, `timeout` for an
   * attempt that ran past `timeoutMs`, `stalled` for one that reported nothing for `stallMs`.
   */
  kind: 'error' | 'interrupted' | 'timeout' | 'stalled';
}

/** Who holds a running task. */
export interface LeaseInfo {
  owner: string;
  /** Fencing token: grows with every claim of the task; writes carrying an older one are rejected. */
  token: number;
  expiresAt: Date;
  /**
   * When the attempt ends whatever its heartbeats say: the sooner of {@link timeoutAt} and
   * {@link stallAt}; null when the task has neither `timeoutMs` nor `stallMs`.
   */
  deadline: Date | null;
  /** Claim time + `timeoutMs` (null: no timeout). */
  timeoutAt: Date | null;
  /** Last progress (or the claim) + `stallMs` (null: no stall limit). */
  stallAt: Date | null;
}

/** A task as stored, as a plain object. */
export interface TaskRecord {
  id: string;
  containerId: string;
  container: string;
  name: string;
  state: TaskState;
  dependsOn: string[];
  /**
   * Dependencies that still hold the task back: not yet succeeded or skipped (for a cleanup step:
   * not yet final). The task is ready when this is empty (a `'failed'` step also waits for its
   * verdict: see {@link TaskSpec.runWhen}).
   */
  waitingOn: string[];
  /** When the task runs, given how its dependencies ended ({@link TaskSpec.runWhen}). */
  runWhen: RunWhen;
  /** The task that spawned this one with `ctx.spawn`/`lease.spawn` (null for tasks added with `addTasks`). */
  parent: string | null;
  /**
   * True once the task spawned children: its dependents then wait until it and every child
   * succeeded or were skipped. Their counts: `container.children(name)`.
   */
  spawned: boolean;
  /** Claim priority: among ready tasks, higher first (see {@link TaskSpec.priority}). */
  priority: number;
  weight: number;
  percentageComplete: number;
  statusText: string | null;
  taskData: unknown;
  processingData: unknown;
  result: unknown;
  /** Times the task has been started, over its whole life. */
  invokeCount: number;
  /** Attempts in the current retry cycle (reset by `retry`/`reset`). */
  attempts: number;
  maxRetries: number;
  retryDelayMs: number;
  backoff: BackoffKind;
  maxRetryDelayMs: number;
  /** Longest one attempt may run (null: no limit). */
  timeoutMs: number | null;
  /** Longest an attempt may go without progress, status or checkpoint (null: no limit). */
  stallMs: number | null;
  /** Failed attempts, oldest first (the newest `failureHistoryLimit` are kept). */
  failures: FailureRecord[];
  /** Failed attempts over the task's whole life (may exceed `failures.length`). */
  failureCount: number;
  lease: LeaseInfo | null;
  key: string | null;
  /** Not claimable before this time (retry backoff). */
  runAfter: Date;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  lastInvokedAt: Date | null;
  endedAt: Date | null;
  durationMs: number | null;
  /** Grows with every write to the task. */
  rev: number;
  /** The by-name actions the transition table allows from the task's state (`TRANSITIONS` in states.ts). */
  allowedActions: TaskAction[];
}

/** A container as stored, with its counters. */
export interface ContainerRecord {
  id: string;
  name: string;
  status: ContainerStatus;
  failurePolicy: FailurePolicy;
  metadata: Record<string, unknown>;
  counts: StateCounts;
  total: number;
  weightTotal: number;
  createdAt: Date;
  updatedAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  rev: number;
  /** True while the container is paused: no new claims, running tasks finish (`container.pause()`). */
  paused: boolean;
  /** When the current pause began (null when not paused). */
  pausedAt: Date | null;
  /** Who paused it, as the pauser said (`pause({ by })`; the HTTP service: the token id), or null. */
  pausedBy: string | null;
  /** `timeoutMs` its tasks get when their spec sets none (null: the adding client's default). */
  taskTimeoutMs: number | null;
  /** `stallMs` its tasks get when their spec sets none (null: the adding client's default). */
  taskStallMs: number | null;
}

/** A container with its live weighted percentage complete. */
export interface ContainerSummary extends ContainerRecord {
  /** Weighted mean of the tasks' `percentageComplete` (0 for an empty container). */
  percentageComplete: number;
  isComplete: boolean;
  /** The container-wide actions that would change at least one task (from the transition table and the counts). */
  allowedActions: ContainerAction[];
  /**
   * A running pipeline run's estimated finish, from the pipeline's earlier runs' step durations and
   * the run's progress (docs/schedules.md#eta); null for other containers, or without history.
   */
  eta: ContainerEta | null;
}

/** Definition of a task to add. */
export interface TaskSpec {
  name: string;
  /** Input data; immutable once added. */
  data?: unknown;
  dependsOn?: string[];
  /** @defaultValue 1 */
  weight?: number;
  /**
   * Claim priority, an integer from -1000 to 1000: among ready tasks, a higher priority is
   * claimed first, then the task added first (by the database's creation sequence).
   * @defaultValue 0
   */
  priority?: number;
  /** @defaultValue 3 */
  maxRetries?: number;
  /** Base delay between attempts. @defaultValue 30_000 */
  retryDelayMs?: number;
  /** @defaultValue 'exponential' */
  backoff?: BackoffKind;
  /** @defaultValue 3_600_000 */
  maxRetryDelayMs?: number;
  /** Concurrency key: at most the key's limit of tasks with this key run at once, across all processes. */
  key?: string | null;
  /**
   * When the task runs, given how its dependencies ended — cleanup steps (release locks, send the
   * failure report, delete temp files):
   * - `'succeeded'`: once every dependency succeeded or was skipped (a failed or cancelled one
   *   blocks it for good);
   * - `'always'`: once every dependency is final, whatever it ended as;
   * - `'failed'`: once every dependency is final, if at least one failed; otherwise it is skipped.
   *   A cancelled dependency does not count as failed.
   *
   * A dependency that can never run because something upstream of it failed counts as failed.
   * The container's final status still reports the real failure. `container.run()` runs cleanup
   * steps under `failurePolicy: 'fail-fast'` too. `'always'` and `'failed'` need `dependsOn`.
   * @defaultValue 'succeeded'
   */
  runWhen?: RunWhen;
  /**
   * Longest one attempt may run, in ms: then `ctx.signal` aborts with a `TaskTimeoutError`, the
   * attempt is recorded as a failure of kind `timeout` and the retry policy applies. `null`: no
   * limit even if a default is set.
   * @defaultValue the container's `taskTimeoutMs`, else the client's, else none
   */
  timeoutMs?: number | null;
  /**
   * Longest an attempt may go without reporting progress, status or a checkpoint, in ms (a bare
   * heartbeat does not count): then it ends like a timeout, with kind `stalled`.
   * @defaultValue the container's `taskStallMs`, else the client's, else none
   */
  stallMs?: number | null;
}

/** What a spawn did (`ctx.spawn`, `lease.spawn`): the children of the batch, new or existing. */
export interface SpawnResult {
  /** Every child of the batch, in the order given (existing ones as they are). */
  tasks: TaskRecord[];
  /** How many of them this call created (0 when a retried parent spawns the same names again). */
  created: number;
}

/** The children a task spawned, counted per state (`container.children(name)`, from the `parent` index). */
export interface ChildrenSummary {
  parent: string;
  counts: StateCounts;
  total: number;
  /** Children that succeeded or were skipped ("N of M done"). */
  done: number;
}

/** Options of a container, set when it is created. */
export interface ContainerOptions {
  /** @defaultValue 'continue' */
  failurePolicy?: FailurePolicy;
  /**
   * `timeoutMs` of the tasks added to this container that do not set their own (stored with the
   * container when it is created; ignored for an existing one).
   * @defaultValue the client's `taskTimeoutMs`
   */
  taskTimeoutMs?: number;
  /** `stallMs` of the tasks added to this container that do not set their own (like `taskTimeoutMs`). @defaultValue the client's `taskStallMs` */
  taskStallMs?: number;
  metadata?: Record<string, unknown>;
}

/** A page of results with an opaque cursor for the next page (`null` at the end). */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Filter of {@link ContainerRecord} listings. */
export interface ListContainersQuery {
  status?: ContainerStatus | ContainerStatus[];
  namePrefix?: string;
  /** @defaultValue 50 (at most 1000) */
  limit?: number;
  cursor?: string | null;
}

/** Filter of task listings within a container. */
export interface ListTasksQuery {
  state?: TaskState | TaskState[];
  /**
   * Only the children spawned by this task; `null`: only tasks nobody spawned (the top level).
   * @defaultValue undefined (every task)
   */
  parent?: string | null;
  /** @defaultValue 100 (at most 1000) */
  limit?: number;
  cursor?: string | null;
}

/** Values accepted by the seed API's `container.updateTask(name, values)`. */
export interface TaskUpdate {
  percentageComplete?: number;
  statusText?: string | null;
  processingData?: unknown;
  /** `true` marks the task succeeded. */
  isComplete?: boolean;
  result?: unknown;
}

/** Which task `claimNext` may hand out. */
export interface ClaimFilter {
  /** Container name. */
  container?: string;
  /** Only tasks with one of these names. */
  names?: string[];
  /** Only tasks with this concurrency key. */
  key?: string;
}

/** Who claims and for how long. */
export interface ClaimOptions {
  /** Worker id recorded in the lease and in failure records. */
  owner: string;
  /** @defaultValue the client's `leaseMs` */
  leaseMs?: number;
  /**
   * Also read the task's inputs (its dependencies' results) into `lease.inputs`: one more query
   * when the task has dependencies, none when it has not. Larger than the client's
   * `maxInputsBytes`: the task is failed for good and the claim rejects with `InputsTooLargeError`.
   * @defaultValue false (`lease.inputs` is null until `lease.loadInputs()`)
   */
  includeInputs?: boolean;
}

/** Result of {@link Client.recoverStale}. */
export interface RecoveryReport {
  /** Tasks whose lease had expired and were moved back to pending (or failed, out of retries). */
  recovered: Array<{ container: string; task: string; owner: string; state: TaskState }>;
  /** Containers whose counters were repaired. */
  reconciled: string[];
  /** Tasks whose stale `waitingOn` entries were cleared. */
  unblocked: number;
  /** Containers the retention policies deleted in this sweep (at most `retentionLimit`; none with `container`). */
  pruned?: string[];
}

/** Options of `TaskContainer.rerun`. */
export interface RerunOptions {
  /** Also reset every task that depends on the step, transitively. @defaultValue true */
  downstream?: boolean;
  /** Only compute the plan; write nothing. @defaultValue false */
  dryRun?: boolean;
}

/** What a re-run from a step resets and keeps (`TaskContainer.rerun`; applied unless `dryRun`). */
export interface RerunPlan {
  /** The step the re-run starts from. */
  step: string;
  /** Whether the step's dependents were planned too. */
  downstream: boolean;
  /** True: nothing was written. */
  dryRun: boolean;
  /** The tasks reset to pending, whatever their state: the step first, each after the planned tasks it depends on. */
  reset: string[];
  /** The planned tasks that were running when the plan was read (a subset of `reset`): their workers lose their leases. */
  interrupted: string[];
  /** Every other task of the container, in insertion order: untouched. */
  kept: string[];
}
