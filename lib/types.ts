/**
 * Public record and option types. Records are plain objects: nothing the store returns is a
 * Mongoose document or a driver type.
 */
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
  /** The error's `code` if it had one, or `LEASE_EXPIRED` for an interrupted attempt. */
  code: string | null;
  /** The worker (lease owner) that ran the attempt. */
  workerId: string | null;
  /** `error` for a thrown/reported error, `interrupted` for a lease that expired. */
  kind: 'error' | 'interrupted';
}

/** Who holds a running task. */
export interface LeaseInfo {
  owner: string;
  /** Fencing token: grows with every claim of the task; writes carrying an older one are rejected. */
  token: number;
  expiresAt: Date;
}

/** A task as stored, as a plain object. */
export interface TaskRecord {
  id: string;
  containerId: string;
  container: string;
  name: string;
  state: TaskState;
  dependsOn: string[];
  /** Dependencies not yet satisfied (succeeded or skipped). The task is ready when this is empty. */
  waitingOn: string[];
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
}

/** A container with its live weighted percentage complete. */
export interface ContainerSummary extends ContainerRecord {
  /** Weighted mean of the tasks' `percentageComplete` (0 for an empty container). */
  percentageComplete: number;
  isComplete: boolean;
  /** The container-wide actions that would change at least one task (from the transition table and the counts). */
  allowedActions: ContainerAction[];
}

/** Definition of a task to add. */
export interface TaskSpec {
  name: string;
  /** Input data; immutable once added. */
  data?: unknown;
  dependsOn?: string[];
  /** @defaultValue 1 */
  weight?: number;
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
}

/** Options of a container, set when it is created. */
export interface ContainerOptions {
  /** @defaultValue 'continue' */
  failurePolicy?: FailurePolicy;
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
}

/** Result of {@link Client.recoverStale}. */
export interface RecoveryReport {
  /** Tasks whose lease had expired and were moved back to pending (or failed, out of retries). */
  recovered: Array<{ container: string; task: string; owner: string; state: TaskState }>;
  /** Containers whose counters were repaired. */
  reconciled: string[];
  /** Tasks whose stale `waitingOn` entries were cleared. */
  unblocked: number;
}
