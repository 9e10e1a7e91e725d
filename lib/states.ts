/**
 * The state vocabulary. One frozen constant per kind of record; the union types are
 * derived from them and reused by the store, the runner, the CLI, the HTTP API and the
 * dashboard.
 */

/** Every state a task can be in. */
export const TASK_STATES = Object.freeze(['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'] as const);
export type TaskState = (typeof TASK_STATES)[number];

/** States from which a task never moves on its own (only `retry`/`reset` move it back). */
export const FINAL_TASK_STATES: readonly TaskState[] = Object.freeze(['succeeded', 'failed', 'skipped', 'cancelled']);

/** States that satisfy a dependency: a dependent may run once each dependency is in one of these. */
export const SATISFYING_TASK_STATES: readonly TaskState[] = Object.freeze(['succeeded', 'skipped']);

/** Every status a container can have. */
export const CONTAINER_STATUSES = Object.freeze(['pending', 'running', 'succeeded', 'failed', 'cancelled'] as const);
export type ContainerStatus = (typeof CONTAINER_STATUSES)[number];

/** Statuses of a container that has finished (it has `endedAt`). */
export const FINAL_CONTAINER_STATUSES: readonly ContainerStatus[] = Object.freeze(['succeeded', 'failed', 'cancelled']);

/** States that are not final: a task in one of these still has work ahead of it. */
export const UNFINISHED_TASK_STATES: readonly TaskState[] = Object.freeze(['pending', 'running']);

/** The order in which summaries list counts per state: done, under way, waiting, then the rest. */
export const TASK_STATES_BY_PROGRESS: readonly TaskState[] = Object.freeze(['succeeded', 'running', 'pending', 'failed', 'skipped', 'cancelled']);

/** How an attempt ended (the `outcome` of an event's `attempt`, label of `pts_step_duration_seconds`; see lib/events.ts `AttemptTiming`). */
export const ATTEMPT_OUTCOMES = Object.freeze(['succeeded', 'failed', 'timeout', 'stalled', 'interrupted', 'released', 'cancelled', 'reset'] as const);
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** Counts of tasks per state. */
export type StateCounts = Record<TaskState, number>;

/** A zeroed {@link StateCounts}. */
export function emptyCounts(): StateCounts {
  return { pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };
}

export function isTaskState(value: unknown): value is TaskState {
  return typeof value === 'string' && (TASK_STATES as readonly string[]).includes(value);
}

export function isContainerStatus(value: unknown): value is ContainerStatus {
  return typeof value === 'string' && (CONTAINER_STATUSES as readonly string[]).includes(value);
}

/**
 * The container status implied by its task counts.
 *
 * A container with no tasks is `pending` (never "complete"). While any task is running it is
 * `running`. When nothing is pending or running it is `failed` if a task failed, `cancelled` if
 * a task was cancelled, otherwise `succeeded`. While tasks are pending but none is running it
 * keeps `current`, except that a container that has started is `running`: the runner, not the
 * counters, decides that pending tasks are blocked for good (see `finalizeContainer`).
 */
export function deriveContainerStatus(counts: StateCounts, current: ContainerStatus): ContainerStatus {
  const total = TASK_STATES.reduce((n, s) => n + counts[s], 0);
  if (total === 0) return 'pending';
  if (counts.running > 0) return 'running';
  if (counts.pending === 0) {
    if (counts.failed > 0) return 'failed';
    if (counts.cancelled > 0) return 'cancelled';
    return 'succeeded';
  }
  if (current === 'succeeded' || current === 'cancelled') return 'running';
  if (current === 'pending' && total - counts.pending > 0) return 'running';
  return current;
}

/**
 * Every operation that changes a task, as the transition table reads it.
 * - `claim`, `heartbeat`, `succeed`, `fail`, `release`: by the lease holder (fenced by its token);
 * - `expire`: by the recovery sweep, when a lease ran out;
 * - `timeout`: by the recovery sweep (or the runner holding the lease), when an attempt ran past
 *   its deadline (`timeoutMs`/`stallMs`, lib/store/deadlines.ts);
 * - `retry`, `cancel`, `skip`, `reset`, `update`, `complete`, `delete`: by name (admin, or the
 *   original API's `updateTask`/`deleteTask`);
 * - `rerun`: by an admin's re-run from a step, on each task of its plan (`container.rerun`);
 * - `markSucceeded`: by an admin, for a step fixed by hand (`container.markSucceeded`);
 * - `bypass`: by the system (the write that finished a dependency, or the sweep), for a
 *   `runWhen: 'failed'` cleanup step none of whose dependencies failed (lib/run-when.ts).
 */
export const TASK_OPERATIONS = Object.freeze([
  'claim',
  'heartbeat',
  'succeed',
  'fail',
  'release',
  'expire',
  'timeout',
  'retry',
  'cancel',
  'skip',
  'reset',
  'update',
  'complete',
  'delete',
  'rerun',
  'markSucceeded',
  'bypass',
] as const);
export type TaskOperation = (typeof TASK_OPERATIONS)[number];

/** Who performs an operation. */
export type TransitionActor = 'worker' | 'sweep' | 'admin';

/** One row of the transition table. */
export interface TransitionRule {
  /** The states the operation starts from. Anything else is refused with `InvalidTransitionError` (or `LeaseLostError` for a lease holder). */
  readonly from: readonly TaskState[];
  /**
   * The states it may end in: one, two when the outcome depends on the retry budget
   * (`fail`/`expire`: pending to retry, failed when out of retries), `from` itself for writes that
   * do not change the state (`heartbeat`, `update`), and none for `delete` (the task is removed).
   */
  readonly to: readonly TaskState[];
  readonly by: TransitionActor;
}

function rule(by: TransitionActor, from: readonly TaskState[], to: readonly TaskState[]): TransitionRule {
  return Object.freeze({ by, from: Object.freeze([...from]), to: Object.freeze([...to]) });
}

const NOT_RUNNING: readonly TaskState[] = ['pending', 'succeeded', 'failed', 'skipped', 'cancelled'];

/**
 * THE transition table: operation → allowed from-states → to-states. The store's conditional
 * writes put `from` in their filters (single and bulk alike), the HTTP API lists the allowed
 * admin actions of each task from it (`allowedActions`), and the CLI and the dashboard offer
 * only those. `spec/states-table.spec.ts` walks every cell against the store.
 */
export const TRANSITIONS: Readonly<Record<TaskOperation, TransitionRule>> = Object.freeze({
  claim: rule('worker', ['pending'], ['running']),
  heartbeat: rule('worker', ['running'], ['running']),
  succeed: rule('worker', ['running'], ['succeeded']),
  fail: rule('worker', ['running'], ['pending', 'failed']),
  release: rule('worker', ['running'], ['pending']),
  expire: rule('sweep', ['running'], ['pending', 'failed']),
  // An attempt past its deadline (lib/store/deadlines.ts): a failure of kind timeout/stalled,
  // through the retry policy like a handler's; fenced by the token read and the deadline passed.
  timeout: rule('sweep', ['running'], ['pending', 'failed']),
  retry: rule('admin', ['failed', 'cancelled'], ['pending']),
  cancel: rule('admin', ['pending', 'running'], ['cancelled']),
  skip: rule('admin', ['pending', 'failed', 'cancelled'], ['skipped']),
  reset: rule('admin', NOT_RUNNING, ['pending']),
  update: rule('admin', ['pending', 'running'], ['pending', 'running']),
  complete: rule('admin', ['pending', 'running'], ['succeeded']),
  delete: rule('admin', NOT_RUNNING, []),
  // Re-run from a step (lib/store/rerun.ts): every task of the plan, a running one too (its
  // worker loses the lease, as on cancel; Airflow's "clear" does the same), back to pending.
  rerun: rule('admin', TASK_STATES, ['pending']),
  // A step someone fixed by hand: succeeded with the given result; dependents may run.
  markSucceeded: rule('admin', ['pending', 'failed', 'cancelled', 'skipped'], ['succeeded']),
  // A `runWhen: 'failed'` cleanup step whose dependencies all ended without a failure (lib/run-when.ts):
  // skipped by the system; conditional on it still waiting on nothing but its verdict.
  bypass: rule('sweep', ['pending'], ['skipped']),
});

/** The by-name actions an operator can take on one task (HTTP, CLI, dashboard buttons). */
export const TASK_ACTIONS = Object.freeze(['retry', 'cancel', 'skip', 'reset', 'delete', 'markSucceeded'] as const);
export type TaskAction = (typeof TASK_ACTIONS)[number];

/** The actions a whole container offers (applied to every task the table allows). */
export const CONTAINER_ACTIONS = Object.freeze(['retry', 'cancel', 'reset'] as const);
export type ContainerAction = (typeof CONTAINER_ACTIONS)[number];

/** True if the table allows `op` from `state`. */
export function canTransition(op: TaskOperation, state: TaskState): boolean {
  return TRANSITIONS[op].from.includes(state);
}

/** The {@link TASK_ACTIONS} a task in `state` allows, in table order. */
export function allowedActions(state: TaskState): TaskAction[] {
  return TASK_ACTIONS.filter((a) => canTransition(a, state));
}

/** The {@link CONTAINER_ACTIONS} that would change at least one task, given the counts per state. */
export function allowedContainerActions(counts: StateCounts): ContainerAction[] {
  return CONTAINER_ACTIONS.filter((a) => TRANSITIONS[a].from.some((s) => counts[s] > 0));
}
