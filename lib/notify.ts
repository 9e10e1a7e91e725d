/**
 * The one place events are emitted. Store operations return results; the notifier turns each
 * result — single or bulk — into the typed events of {@link OPERATION_EVENTS}, plus the
 * container status events of its counter write. Nothing else in the library calls `emit`.
 * @internal
 */
import type { AttemptTiming, TypedEmitter, PtsEventName } from './events';
import type { AttemptOutcome } from './states';
import type { TaskOperation } from './states';
import type { BulkResult, CounterResult, PauseResult, TaskDoc, TransitionResult } from './store';
import { toTaskRecord } from './store/documents';
import type { ProgressPatch } from './store/transitions';
import type { RunDoc } from './store/schedule-docs';

/**
 * The task events each operation of the transition table emits (docs/api.md states the same
 * table; spec/events.spec.ts checks the two agree and that every operation emits them). The
 * container status events of the counter write (`container:status`, `container:started`, …)
 * come on top, whenever the operation changed the container's status.
 * - `fail`/`expire` emit `task:retrying` when the task goes back to pending, `task:failed` when
 *   it failed for good; `expire` emits `lease:expired` first, `timeout` emits `task:timeout` or
 *   `task:stalled` (by the failure's kind) first.
 * - `heartbeat`, `update` and `complete` emit `task:progress` only when they set progress or status text.
 * - `bypass` (a `runWhen: 'failed'` step none of whose dependencies failed) comes as the `also`
 *   of the transition that decided it, and its events after that transition's.
 */
export const OPERATION_EVENTS: Readonly<Record<TaskOperation, readonly PtsEventName[]>> = Object.freeze({
  claim: ['task:started'],
  heartbeat: ['task:progress'],
  succeed: ['task:succeeded'],
  fail: ['task:retrying', 'task:failed'],
  release: ['task:released'],
  expire: ['lease:expired', 'task:retrying', 'task:failed'],
  timeout: ['task:timeout', 'task:stalled', 'task:retrying', 'task:failed'],
  retry: ['task:retried'],
  cancel: ['task:cancelled'],
  skip: ['task:skipped'],
  reset: ['task:reset'],
  update: ['task:updated', 'task:progress'],
  complete: ['task:succeeded', 'task:progress'],
  delete: ['task:deleted'],
  rerun: ['task:reset'],
  markSucceeded: ['task:succeeded'],
  bypass: ['task:skipped'],
});

/** The outcome of the attempt a transition from `running` ended (null: the operation ends none). */
function attemptOutcome(r: TransitionResult, failure: { kind: string } | undefined): AttemptOutcome | null {
  if (r.from !== 'running') return null;
  switch (r.op) {
    case 'succeed':
    case 'complete':
    case 'markSucceeded':
      return 'succeeded';
    case 'fail':
      return 'failed';
    case 'timeout':
      return failure?.kind === 'stalled' ? 'stalled' : 'timeout';
    case 'expire':
      return 'interrupted';
    case 'release':
      return 'released';
    case 'cancel':
      return 'cancelled';
    case 'reset':
    case 'rerun':
      return 'reset';
    default:
      return null;
  }
}

/** `{ attempt }` for the payload of a transition that ended an attempt (claim time: `lastInvokedAt`; end: the write's `updatedAt`). */
function attemptOf(r: TransitionResult, failure: { kind: string } | undefined): { attempt?: AttemptTiming } {
  const outcome = attemptOutcome(r, failure);
  const claimedAt = r.task.lastInvokedAt;
  return outcome && claimedAt ? { attempt: { claimedAt, endedAt: r.task.updatedAt, outcome } } : {};
}

/** When a claimed task became claimable: the later of its `runAfter` and its last unblock. */
function readyAt(t: TaskDoc): Date {
  return t.unblockedAt && t.unblockedAt > t.runAfter ? t.unblockedAt : t.runAfter;
}

export class Notifier {
  /** Whether the last database call reported through {@link dbUnavailable} failed. */
  private dbDown = false;

  constructor(private readonly ev: TypedEmitter) {}

  /** The events of one transition (see {@link OPERATION_EVENTS}). `patch`: what a heartbeat/update wrote. */
  transition(r: TransitionResult, patch?: ProgressPatch): void {
    this.task(r, patch);
    this.containerChange(r.task.container, r.container);
    for (const a of r.also ?? []) this.transition(a);
  }

  /** Every task event of a bulk action (or a re-run), then the status change of its one counter write. */
  bulk(container: string, b: Pick<BulkResult, 'results' | 'container'>): void {
    for (const r of b.results) this.task(r);
    this.containerChange(container, b.container);
    for (const r of b.results) for (const a of r.also ?? []) this.transition(a);
  }

  /** `task:progress` of a heartbeat (a heartbeat is not a state change: it has no TransitionResult). */
  progress(container: string, task: string, patch: ProgressPatch): void {
    if (patch.percentageComplete === undefined && patch.statusText === undefined) return;
    this.ev.emit('task:progress', { container, task, percentageComplete: patch.percentageComplete ?? null, statusText: patch.statusText ?? null });
  }

  added(container: string, tasks: TaskDoc[], created: boolean[], c: CounterResult, also: TransitionResult[] = []): void {
    tasks.forEach((t, i) => {
      if (created[i]) this.ev.emit('task:added', { container, task: toTaskRecord(t) });
    });
    this.containerChange(container, c);
    for (const a of also) this.transition(a);
  }

  containerCreated(container: string): void {
    this.ev.emit('container:created', { container });
  }

  containerDeleted(container: string, tasks: number): void {
    this.ev.emit('container:deleted', { container, tasks });
  }

  /** The status events of a counter write (or a finalization) that changed the container's status. */
  containerChange(container: string, c: CounterResult | null | undefined): void {
    if (!c?.statusChange) return;
    const { from, to } = c.statusChange;
    this.ev.emit('container:status', { container, from, to });
    if (to === 'running' && from === 'pending') this.ev.emit('container:started', { container });
    if (to === 'succeeded') this.ev.emit('container:completed', { container });
    if (to === 'failed') this.ev.emit('container:failed', { container });
    if (to === 'cancelled') this.ev.emit('container:cancelled', { container });
  }

  /** `container:paused` / `container:resumed` of a pause or resume that changed the container (an idempotent repeat emits nothing). */
  pauseChange(container: string, r: PauseResult): void {
    if (!r.changed || !r.container) return;
    if (r.container.paused) this.ev.emit('container:paused', { container, by: r.container.pausedBy ?? null });
    else this.ev.emit('container:resumed', { container });
    this.containerChange(container, r.status);
  }

  /**
   * The event of a slot this process decided (its run record insert won, or it promoted a
   * buffered run): `schedule:fired`, `schedule:missed`, `schedule:skipped` or `schedule:buffered`.
   */
  runDecided(r: RunDoc): void {
    const base = { schedule: r.schedule, pipeline: r.pipeline, slot: r.slot };
    if (r.status === 'started' || r.status === 'starting') this.ev.emit('schedule:fired', { ...base, container: r.container, kind: r.kind });
    else if (r.status === 'buffered') this.ev.emit('schedule:buffered', base);
    else if (r.status === 'skipped' && r.reason === 'missed') this.ev.emit('schedule:missed', { ...base, lastSlot: r.lastSlot, count: r.count });
    else if (r.status === 'skipped') this.ev.emit('schedule:skipped', { ...base, lastSlot: r.lastSlot, count: r.count, reason: r.reason ?? 'skipped' });
  }

  /** A run this process saw finish (its `started` → `finished` write won). */
  runFinished(r: RunDoc): void {
    if (r.outcome) this.ev.emit('run:finished', { pipeline: r.pipeline, slot: r.slot, container: r.container, outcome: r.outcome });
  }

  schedulePaused(schedule: string, reason: string | null): void {
    this.ev.emit('schedule:paused', { schedule, reason });
  }

  /** This process lost a lease it held: its handler is aborted. */
  leaseLost(container: string, task: string, owner: string, reason: string): void {
    this.ev.emit('lease:lost', { container, task, owner, reason });
  }

  /**
   * Reports a transient database failure: `db:unavailable` once per outage (not on every retry);
   * the next call of this client's runners or sweeper that succeeds reports `db:available`.
   */
  dbUnavailable(op: string, error: Error): void {
    if (this.dbDown) return;
    this.dbDown = true;
    this.ev.emit('db:unavailable', { error, op });
  }

  /** Reports a database call that succeeded; emits `db:available` once after an outage. */
  dbAvailable(op: string): void {
    if (!this.dbDown) return;
    this.dbDown = false;
    this.ev.emit('db:available', { op });
  }

  private task(r: TransitionResult, patch?: ProgressPatch): void {
    const task = toTaskRecord(r.task);
    const container = task.container;
    const lastFailure = task.failures[task.failures.length - 1];
    const attempt = attemptOf(r, lastFailure);
    switch (r.op) {
      case 'claim':
        this.ev.emit('task:started', { container, task, readyAt: readyAt(r.task) });
        break;
      case 'heartbeat':
        if (patch) this.progress(container, task.name, patch);
        break;
      case 'succeed':
        this.ev.emit('task:succeeded', { container, task, ...attempt });
        break;
      case 'markSucceeded':
        this.ev.emit('task:succeeded', { container, task, ...attempt });
        break;
      case 'complete':
        this.ev.emit('task:succeeded', { container, task, ...attempt });
        if (patch) this.progress(container, task.name, patch);
        break;
      case 'expire':
      case 'timeout':
      case 'fail':
        // an expiry is also a failed attempt
        if (r.op === 'expire') this.ev.emit('lease:expired', { container, task, owner: lastFailure?.workerId ?? 'unknown' });
        if (r.op === 'timeout') this.ev.emit(lastFailure?.kind === 'stalled' ? 'task:stalled' : 'task:timeout', { container, task, failure: lastFailure });
        if (task.state === 'pending') this.ev.emit('task:retrying', { container, task, failure: lastFailure, runAfter: task.runAfter, ...attempt });
        else this.ev.emit('task:failed', { container, task, failure: lastFailure, ...attempt });
        break;
      case 'release':
        this.ev.emit('task:released', { container, task, ...attempt });
        break;
      case 'retry':
        this.ev.emit('task:retried', { container, task });
        break;
      case 'cancel':
        this.ev.emit('task:cancelled', { container, task, ...attempt });
        break;
      case 'skip':
      case 'bypass':
        this.ev.emit('task:skipped', { container, task });
        break;
      case 'reset':
      case 'rerun':
        this.ev.emit('task:reset', { container, task, ...attempt });
        break;
      case 'update':
        this.ev.emit('task:updated', { container, task });
        if (patch) this.progress(container, task.name, patch);
        break;
      case 'delete':
        this.ev.emit('task:deleted', { container, task: task.name });
        break;
    }
  }
}
