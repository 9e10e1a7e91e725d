/**
 * A snapshot of one task with the original module's accessors. A snapshot never changes;
 * `refresh()` reads the current state.
 */
import type { TaskState } from './states';
import type { FailureRecord, LeaseInfo, TaskRecord } from './types';
import type { LogPage, LogsQuery } from './logs';

export class Task {
  /** @internal */
  constructor(
    private readonly record: TaskRecord,
    private readonly reload: () => Promise<TaskRecord | null>,
    private readonly readLogs: (q?: LogsQuery) => Promise<LogPage> = async () => {
      throw new Error('logs are not available on this task handle');
    },
  ) {}

  /** The plain record. */
  toJSON(): TaskRecord {
    return this.record;
  }
  get id(): string {
    return this.record.id;
  }
  name(): string {
    return this.record.name;
  }
  state(): TaskState {
    return this.record.state;
  }
  /** True once the task succeeded (or was skipped). */
  isComplete(): boolean {
    return this.record.state === 'succeeded' || this.record.state === 'skipped';
  }
  /** True if the task failed for good (no retries left). */
  hasFailed(): boolean {
    return this.record.state === 'failed';
  }
  percentageComplete(): number {
    return this.record.percentageComplete;
  }
  statusText(): string | null {
    return this.record.statusText;
  }
  taskData(): unknown {
    return this.record.taskData;
  }
  /** The checkpoint the task last saved. */
  processingData(): unknown {
    return this.record.processingData;
  }
  result(): unknown {
    return this.record.result;
  }
  invokeCount(): number {
    return this.record.invokeCount;
  }
  lastInvokedAt(): Date | null {
    return this.record.lastInvokedAt;
  }
  taskEndedAt(): Date | null {
    return this.record.endedAt;
  }
  taskDurationInMilliseconds(): number | null {
    return this.record.durationMs;
  }
  /** When the current lease ends (null when not running). */
  leasedTill(): Date | null {
    return this.record.lease?.expiresAt ?? null;
  }
  lease(): LeaseInfo | null {
    return this.record.lease;
  }
  maxRetries(): number {
    return this.record.maxRetries;
  }
  delayBetweenRetriesInSeconds(): number {
    return this.record.retryDelayMs / 1000;
  }
  failures(): FailureRecord[] {
    return this.record.failures;
  }
  dependsOn(): string[] {
    return this.record.dependsOn;
  }
  /**
   * A page of the task's step logs (`ctx.log()` / `lease.log()` lines), oldest first: of one
   * attempt (an `invokeCount`) or all, after `cursor` (a page's `nextCursor`). Two reads.
   */
  logs(query?: LogsQuery): Promise<LogPage> {
    return this.readLogs(query);
  }
  /** A new snapshot read from the database (null if the task was deleted). */
  async refresh(): Promise<Task | null> {
    const r = await this.reload();
    return r ? new Task(r, this.reload, this.readLogs) : null;
  }
}
