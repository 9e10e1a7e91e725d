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
