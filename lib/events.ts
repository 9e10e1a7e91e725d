/**
 * Typed events. Names are namespaced (`task:*`, `lease:*`, `container:*`, `db:*`). They are
 * emitted by the process that performed the transition — all of them from one place, notify.ts;
 * other processes follow changes through the store (listings, summaries) or the changes feed.
 */
import { EventEmitter } from 'node:events';
import type { AttemptOutcome, ContainerStatus } from './states';
import type { FailureRecord, TaskRecord } from './types';

/**
 * The attempt a transition ended, from the task as written: claimed at `claimedAt` (the task's
 * `lastInvokedAt`), ended at `endedAt` (the transition's time). `outcome`: `succeeded` (succeed,
 * or complete/markSucceeded of a running task), `failed` (the worker reported an error),
 * `timeout`/`stalled` (ended by its deadline), `interrupted` (its lease expired), `released`
 * (handed back), `cancelled`, `reset` (reset or re-run while running).
 */
export interface AttemptTiming {
  claimedAt: Date;
  endedAt: Date;
  outcome: AttemptOutcome;
}

export interface PtsEventMap {
  'task:added': { container: string; task: TaskRecord };
  /**
   * The task was claimed (its `lastInvokedAt` is the claim time). `readyAt`: when it became
   * claimable — the later of its `runAfter` and the last write that removed something from its
   * `waitingOn` (docs/schema.md `unblockedAt`); the claim minus this is its queue wait.
   */
  'task:started': { container: string; task: TaskRecord; readyAt: Date };
  'task:progress': { container: string; task: string; percentageComplete: number | null; statusText: string | null };
  /** `attempt`: set when the task was running (the attempt this ended). */
  'task:succeeded': { container: string; task: TaskRecord; attempt?: AttemptTiming };
  /** `attempt`: the attempt that failed (absent only for a failure recorded without one). */
  'task:retrying': { container: string; task: TaskRecord; failure: FailureRecord; runAfter: Date; attempt?: AttemptTiming };
  'task:failed': { container: string; task: TaskRecord; failure: FailureRecord; attempt?: AttemptTiming };
  /** `attempt`: set when the task was running. */
  'task:cancelled': { container: string; task: TaskRecord; attempt?: AttemptTiming };
  'task:skipped': { container: string; task: TaskRecord };
  /** `attempt`: set when the task was running. */
  'task:reset': { container: string; task: TaskRecord; attempt?: AttemptTiming };
  /** `retry(name)` (or the bulk `retry()`) sent a failed or cancelled task back to pending with a fresh retry budget. */
  'task:retried': { container: string; task: TaskRecord };
  /** `updateTask(name, values)` without `isComplete` wrote progress, status text, checkpoint or result. */
  'task:updated': { container: string; task: TaskRecord };
  /** `deleteTask(name)` removed the task. */
  'task:deleted': { container: string; task: string };
  /** A worker handed a running task back without a failure (graceful shutdown). */
  'task:released': { container: string; task: TaskRecord; attempt?: AttemptTiming };
  /**
   * An attempt ran past its `timeoutMs` and was ended (by the runner holding it, or by the sweep);
   * `task:retrying` or `task:failed` follows. `failure.kind` is `timeout`.
   */
  'task:timeout': { container: string; task: TaskRecord; failure: FailureRecord };
  /** An attempt reported no progress for `stallMs` and was ended; like `task:timeout` (`failure.kind` is `stalled`). */
  'task:stalled': { container: string; task: TaskRecord; failure: FailureRecord };
  /** A task's lease expired and the sweep took it back (its worker is presumed dead). */
  'lease:expired': { container: string; task: TaskRecord; owner: string };
  /** This process lost a lease it held (expired and taken over, or cancelled): its handler is aborted. */
  'lease:lost': { container: string; task: string; owner: string; reason: string };
  'container:created': { container: string };
  /** `deleteTaskContainer(name)` removed the container and its `tasks` tasks. */
  'container:deleted': { container: string; tasks: number };
  'container:started': { container: string };
  'container:completed': { container: string };
  'container:failed': { container: string };
  'container:cancelled': { container: string };
  'container:status': { container: string; from: ContainerStatus; to: ContainerStatus };
  /** The container was paused: no new claims until it is resumed (running tasks finish). `by`: who, if the pauser said. */
  'container:paused': { container: string; by: string | null };
  /** The container was resumed after a pause: its tasks may be claimed again. */
  'container:resumed': { container: string };
  /** A database call failed for a reason that looks transient (network, server down). */
  'db:unavailable': { error: Error; op: string };
  /** A database call succeeded after `db:unavailable`. */
  'db:available': { op: string };
  /** A schedule's slot (or a trigger or backfill slot) started a run: its container `container` was created. */
  'schedule:fired': { schedule: string | null; pipeline: string; slot: Date; container: string; kind: 'scheduled' | 'trigger' | 'backfill' };
  /** Slots that were due while every scheduler was down, older than `catchupWindowMs`: recorded as skipped, not run. */
  'schedule:missed': { schedule: string | null; pipeline: string; slot: Date; lastSlot: Date; count: number };
  /** A slot was not run: `reason` is `overlap` (an earlier run is unfinished) or `paused`. */
  'schedule:skipped': { schedule: string | null; pipeline: string; slot: Date; lastSlot: Date; count: number; reason: string };
  /** A slot waits for the unfinished run to end (`overlap: 'bufferOne'`). */
  'schedule:buffered': { schedule: string | null; pipeline: string; slot: Date };
  /** A run of a pipeline reached a final status. */
  'run:finished': { pipeline: string; slot: Date; container: string; outcome: ContainerStatus };
  /** A schedule was paused (`reason`: `run failed: <container>` for `pauseOnFailure`, or the caller's note). */
  'schedule:paused': { schedule: string; reason: string | null };
}

export type PtsEventName = keyof PtsEventMap;
export type PtsListener<E extends PtsEventName> = (payload: PtsEventMap[E]) => void;

/** An EventEmitter whose event names and payloads are typed by {@link PtsEventMap}. */
export class TypedEmitter {
  private readonly ee = new EventEmitter();

  constructor() {
    this.ee.setMaxListeners(100);
  }

  on<E extends PtsEventName>(event: E, listener: PtsListener<E>): this {
    this.ee.on(event, listener);
    return this;
  }

  once<E extends PtsEventName>(event: E, listener: PtsListener<E>): this {
    this.ee.once(event, listener);
    return this;
  }

  off<E extends PtsEventName>(event: E, listener: PtsListener<E>): this {
    this.ee.off(event, listener);
    return this;
  }

  /** @internal A throwing listener never breaks the transition that emitted the event. */
  emit<E extends PtsEventName>(event: E, payload: PtsEventMap[E]): void {
    for (const l of this.ee.listeners(event)) {
      try {
        (l as PtsListener<E>)(payload);
      } catch (err) {
        process.emitWarning(`persistent-task-status: listener of ${event} threw: ${(err as Error)?.message}`);
      }
    }
  }

  listenerCount(event: PtsEventName): number {
    return this.ee.listenerCount(event);
  }
}
