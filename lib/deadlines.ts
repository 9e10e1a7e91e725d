/**
 * The runner's side of a task's deadlines (`timeoutMs`, `stallMs`): a watch on the lease's
 * deadline, on the client's clock (`ctx.clock`, the one the store computed the deadline on), that
 * trips at the deadline so the runner aborts the handler and records the failure at once, without
 * waiting for a handler that ignores its signal. The database enforces the same deadline on its
 * own (lib/store/deadlines.ts): this watch only makes the end prompt.
 * @internal
 */
import type { Clock } from './clock';
import { LeaseLostError, TaskStalledError, TaskTimeoutError } from './errors';
import type { TaskLease } from './lease';
import { deadlineError, overdueKind } from './store/deadlines';

/** True for the errors that say a deadline ended the attempt. */
export function isDeadlineError(err: unknown): err is TaskTimeoutError | TaskStalledError {
  return err instanceof TaskTimeoutError || err instanceof TaskStalledError;
}

/**
 * Trips when the lease's deadline passes (re-read after every heartbeat: progress moves the stall
 * deadline) or when {@link trip} is called (a write refused by the database for its deadline).
 * Checks at most every `checkMs`, so an injected clock that is moved by hand is noticed too.
 */
export class DeadlineWatch {
  /** Resolves with the abort reason once the deadline passed (never rejects). */
  readonly tripped: Promise<LeaseLostError>;
  private resolve!: (reason: LeaseLostError) => void;
  private timer: NodeJS.Timeout | null = null;
  private done = false;

  constructor(
    private readonly lease: TaskLease,
    private readonly clock: Clock,
    private readonly checkMs: number,
    /** Resolves when no heartbeat is in flight (one may be moving the stall deadline). */
    private readonly idle: () => Promise<void>,
  ) {
    this.tripped = new Promise((resolve) => (this.resolve = resolve));
    this.schedule();
  }

  /** Trips now with `reason` (first call wins). */
  trip(reason: LeaseLostError): void {
    if (this.done) return;
    this.stop();
    this.resolve(reason);
  }

  stop(): void {
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.done) return;
    const deadline = this.lease.deadline;
    if (!deadline) return;
    const left = deadline.getTime() - this.clock.now().getTime();
    if (left <= 0) {
      void this.check();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = null;
      this.schedule();
    }, Math.max(1, Math.min(left, this.checkMs)));
  }

  private async check(): Promise<void> {
    await this.idle();
    if (this.done) return;
    const now = this.clock.now();
    const lease = this.lease.held.lease;
    const kind = overdueKind(lease, now);
    if (!kind) return this.schedule();
    const at = (kind === 'timeout' ? lease?.timeoutAt : lease?.stallAt) ?? lease?.deadline;
    const t = this.lease.task;
    const what = kind === 'timeout' ? `ran past its timeout of ${t.timeoutMs} ms` : `reported no progress for ${t.stallMs} ms`;
    this.trip(
      deadlineError(kind, `task ${JSON.stringify(t.name)} ${what} (deadline ${at?.toISOString() ?? '?'})`, {
        task: t.name,
        container: t.container,
        token: this.lease.token,
        kind,
        deadline: at ?? null,
      }),
    );
  }
}
