/**
 * A claimed task, held under a lease. Every write carries the lease's fencing token: once the
 * lease is lost (expired and recovered, taken over, cancelled) every call rejects with
 * {@link LeaseLostError} and changes nothing.
 */
import type { Core } from './core';
import type { CounterCarry, CounterResult, FailureInput, HeldTask, ProgressPatch, TaskDoc, TransitionResult } from './store';
import { toTaskRecord } from './store/documents';
import { readTaskInputs, type TaskInputs } from './inputs';
import { spawnChildren } from './spawn';
import { LogBuffer, toLogLine, type LogLevel } from './logs';
import type { SpawnResult, TaskRecord, TaskSpec } from './types';
import { isTransient, ValidationError } from './errors';
import { MAX_LEASE_MS, MONGODB_RULES, type DataRules, validateData, validatePercentage, validatePositiveNumber, validateStatusText } from './validation';

/** What a worker may report about a task it holds. */
export interface ProgressInput {
  /** 0–100. */
  percentageComplete?: number;
  statusText?: string | null;
  /** Checkpoint to resume from after a crash. */
  processingData?: unknown;
}

/** @internal */
export function validateProgress(p: ProgressInput | undefined, rules: DataRules = MONGODB_RULES): ProgressPatch {
  const out: ProgressPatch = {};
  if (p === undefined || p === null) return out;
  if (typeof p !== 'object' || Array.isArray(p)) return validateProgress({ percentageComplete: p as unknown as number }, rules);
  if (p.percentageComplete !== undefined) out.percentageComplete = validatePercentage(p.percentageComplete);
  if (p.statusText !== undefined) out.statusText = validateStatusText(p.statusText);
  if (p.processingData !== undefined) out.processingData = validateData(p.processingData, 'processingData', rules);
  return out;
}

const MAX_MESSAGE = 10_000;
const MAX_STACK = 100_000;

/** Text from a thrown error, made storable: NUL and lone surrogates replaced, length capped. */
function clean(text: string, max: number): string {
  const t = text.replaceAll('\u0000', '\ufffd').toWellFormed();
  return t.length > max ? `${t.slice(0, max)}… (${t.length - max} more characters)` : t;
}

/**
 * A failure to record. A thrown `Error` (from a handler) is recorded as faithfully as can be
 * stored; a plain `{ message, stack?, code? }` reported by a worker is input and is validated.
 * @internal
 */
export function toFailure(error: unknown, retryable?: boolean): FailureInput {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      message: clean(error.message || error.name, MAX_MESSAGE),
      stack: error.stack ? clean(error.stack, MAX_STACK) : null,
      code: typeof code === 'string' || typeof code === 'number' ? clean(String(code), 200) : error.name,
      retryable,
    };
  }
  if (error && typeof error === 'object' && !Array.isArray(error)) {
    const e = error as { message?: unknown; stack?: unknown; code?: unknown };
    const text = (v: unknown, path: string, max: number, required: boolean): string | null => {
      if (v === undefined || v === null) {
        if (required) throw new ValidationError(`${path} is required`, { path });
        return null;
      }
      if (typeof v !== 'string' || v.length > max || v.includes('\u0000') || !v.isWellFormed()) {
        throw new ValidationError(`${path} must be a string of at most ${max} characters without NUL or lone surrogates`, { path });
      }
      return v;
    };
    return {
      message: text(e.message, 'error.message', MAX_MESSAGE, true)!,
      stack: text(e.stack, 'error.stack', MAX_STACK, false),
      code: text(e.code, 'error.code', 200, false),
      retryable,
    };
  }
  return { message: clean(String(error), MAX_MESSAGE), stack: null, code: null, retryable };
}

/**
 * The blocked-for-good check after a task ended (store `finalizeIfBlocked`): the events of the
 * cleanup steps it skipped (`bypass`, run-when.ts) and of the container's final status.
 * @internal
 */
async function finalizeIfBlocked(core: Core, container: string, containerId: TaskDoc['containerId']): Promise<void> {
  const out = { unblocked: 0, decided: [] as TransitionResult[] };
  const f = await core.store.finalizeIfBlocked(containerId, out);
  for (const d of out.decided) core.notify.transition(d);
  core.notify.containerChange(container, f);
}

/**
 * After the counter write of a success (a lease's own, or a runner's write of held-back ones):
 * the last running task of a container whose other pending tasks are blocked by a failure gets
 * the same check as after a permanent failure (it releases the cleanup steps behind them,
 * run-when.ts, or gives the container its final status). Decided from the counter write's
 * result: no extra command otherwise.
 * @internal
 */
export async function afterSuccessCounters(core: Core, container: string, r: CounterResult, containerId: TaskDoc['containerId']): Promise<void> {
  const c = r.container;
  if (c && c.counts.running === 0 && c.counts.pending > 0 && c.counts.failed + c.counts.cancelled > 0) {
    await finalizeIfBlocked(core, container, containerId);
  }
}

export class TaskLease {
  private current: TaskRecord;
  private loadedInputs: TaskInputs | null = null;
  private logBuffer: LogBuffer | null = null;
  /** Lease duration this task was claimed with; heartbeats renew it by as much. */
  readonly leaseMs: number;

  /** @internal */
  constructor(
    private readonly core: Core,
    /** @internal */ readonly held: HeldTask,
    doc: TaskDoc,
    leaseMs?: number,
  ) {
    this.current = toTaskRecord(doc);
    this.leaseMs = leaseMs ?? core.opts.leaseMs;
  }

  /** The task as of the last write made through this lease. */
  get task(): TaskRecord {
    return this.current;
  }
  /** The fencing token of this lease. */
  get token(): number {
    return this.held.fence;
  }
  get owner(): string {
    return this.held.lease?.owner ?? '';
  }

  /**
   * The task's inputs: each dependency's `result` by dependency name (null for one that stored
   * none, e.g. skipped); `{}` for a task without dependencies. Null until loaded: claim with
   * `claimNext(filter, { includeInputs: true })` or call {@link loadInputs}.
   */
  get inputs(): TaskInputs | null {
    return this.loadedInputs;
  }

  /**
   * Reads the task's inputs (no command without dependencies, else one query projecting only
   * the results) and keeps them as {@link inputs}. Larger than the client's `maxInputsBytes`:
   * the task is failed for good (failure code `PTS_INPUTS_TOO_LARGE`, not retried) and this
   * rejects with `InputsTooLargeError`.
   */
  async loadInputs(): Promise<TaskInputs> {
    this.loadedInputs = await readTaskInputs(this.core, this.held, this.current, (f) => this.failValidated(f, {}));
    return this.loadedInputs;
  }
  /**
   * When this attempt ends whatever its heartbeats say (`timeoutMs`/`stallMs`; progress moves the
   * stall part), or null without limits. Past it, writes reject with `TaskTimeoutError`/`TaskStalledError`.
   */
  get deadline(): Date | null {
    return this.held.lease?.deadline ?? null;
  }

  /**
   * Logs a line of this attempt (step logs): never waits, written in batches every `logFlushMs`
   * (client option) or `logMaxLines` lines, and before this lease records an outcome. Tagged with
   * this attempt (the task's `invokeCount` when claimed). Not fenced: a stale holder's late lines
   * are kept under its own attempt. A bad level or fields throws ValidationError, nothing kept.
   */
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    const line = toLogLine(level, message, fields, this.core.ctx.clock.now());
    if (!this.logBuffer) {
      const target = { taskId: this.held._id, containerId: this.held.containerId };
      const attempt = this.held.invokeCount;
      const max = this.core.opts.logMaxLines;
      this.logBuffer = new LogBuffer((lines, dropped) => this.core.store.appendLogs(target, attempt, lines, dropped, max), this.core.opts, (err) => {
        if (isTransient(err)) this.core.notify.dbUnavailable('log', err as Error);
      });
    }
    this.logBuffer.add(line);
  }

  /** Writes the lines logged so far (see {@link log}). */
  async flushLogs(): Promise<void> {
    await this.logBuffer?.flush();
  }

  /** @internal The log buffer (null before the first line). */
  get logs(): LogBuffer | null {
    return this.logBuffer;
  }

  /** Before an outcome: the last lines are written first (a failure to write them does not stop it). */
  private async closeLogs(): Promise<void> {
    await this.logBuffer?.close();
  }

  /** Renews the lease and stores progress/status/checkpoint, in one command. Returns the new expiry. */
  async heartbeat(progress?: ProgressInput, leaseMs: number = this.leaseMs): Promise<Date> {
    const patch = validateProgress(progress, await this.core.dataRules());
    return this.heartbeatValidated(patch, validatePositiveNumber(leaseMs, 'leaseMs', MAX_LEASE_MS));
  }

  /** @internal */
  async heartbeatValidated(patch: ProgressPatch, leaseMs = this.leaseMs): Promise<Date> {
    const expiresAt = await this.core.store.heartbeat(this.held, patch, leaseMs);
    this.current = {
      ...this.current,
      ...patch,
      lease: this.current.lease ? { ...this.current.lease, expiresAt, deadline: this.deadline, stallAt: this.held.lease?.stallAt ?? null } : null,
    } as TaskRecord;
    this.core.notify.progress(this.held.container, this.held.name, patch);
    return expiresAt;
  }

  private finalizeIfBlocked(containerId: TaskDoc['containerId']): Promise<void> {
    return finalizeIfBlocked(this.core, this.held.container, containerId);
  }

  /** Marks the task succeeded with `result` (and any last progress). */
  async succeed(result?: unknown, progress?: ProgressInput): Promise<TaskRecord> {
    const rules = await this.core.dataRules();
    const value = validateData(result, 'result', rules);
    return this.succeedValidated(value, validateProgress(progress, rules));
  }

  /**
   * @internal `carry`: a runner's held-back counter deltas (store/counters.ts `CounterCarry`): the
   * success's counter delta goes there, and the runner writes it and makes the check below.
   */
  async succeedValidated(result: unknown, patch: ProgressPatch, carry?: CounterCarry): Promise<TaskRecord> {
    await this.closeLogs();
    const r = await this.core.store.succeedTask(this.held, result, patch, carry);
    this.core.notify.transition(r);
    this.current = toTaskRecord(r.task);
    await afterSuccessCounters(this.core, this.held.container, r.container, r.task.containerId);
    return this.current;
  }

  /**
   * Records a failed attempt: the task goes back to pending after its backoff delay, or to
   * failed when out of retries (or `retryable: false`).
   */
  async fail(error: unknown, opts: { retryable?: boolean; progress?: ProgressInput } = {}): Promise<TaskRecord> {
    if (opts === null || typeof opts !== 'object') throw new ValidationError('options must be an object', { path: 'options' });
    if (opts.retryable !== undefined && typeof opts.retryable !== 'boolean') {
      throw new ValidationError('retryable must be a boolean', { path: 'retryable' });
    }
    return this.failValidated(toFailure(error, opts.retryable), validateProgress(opts.progress, await this.core.dataRules()));
  }

  /** @internal */
  async failValidated(failure: FailureInput, patch: ProgressPatch): Promise<TaskRecord> {
    await this.closeLogs();
    const r = await this.core.store.failTask(this.held, failure, patch);
    this.core.notify.transition(r);
    this.current = toTaskRecord(r.task);
    if (r.task.state === 'failed') {
      // A permanent failure may leave the rest of the container blocked for good.
      await this.finalizeIfBlocked(r.task.containerId);
    }
    return this.current;
  }

  /**
   * Adds child tasks under this lease (dynamic fan-out): ordinary tasks of the container with
   * `parent` set to this task, counted in its counters and percentage at once. Idempotent by
   * name (a retried parent spawning the same names creates nothing new); fenced (rejects with
   * LeaseLostError, nothing written, once the lease is lost). Children may depend on each other;
   * this task's dependents wait until it and every child succeeded or were skipped. At most
   * 100000 per call, written in batches of 1000 (each fenced).
   */
  async spawn(specs: TaskSpec[]): Promise<SpawnResult> {
    return spawnChildren(this.core, this.held, this.current, specs);
  }

  /**
   * Ends this attempt because its deadline passed (`timeoutMs`/`stallMs`): a failure of kind
   * `timeout`/`stalled`, through the retry policy. Null when nothing was written: the deadline
   * moved (a progress heartbeat landed first) or the lease is gone (the sweep ended it already).
   * @internal
   */
  async timeoutValidated(): Promise<TaskRecord | null> {
    await this.closeLogs();
    const r = await this.core.store.timeoutTask(this.held);
    if (!r) return null;
    this.core.notify.transition(r);
    this.current = toTaskRecord(r.task);
    if (r.task.state === 'failed') await this.finalizeIfBlocked(r.task.containerId);
    return this.current;
  }

  /**
   * Hands the task back without counting a failure (for a worker that is shutting down): it
   * goes to pending with its checkpoint, and the attempt is not charged to its retries.
   */
  async release(progress?: ProgressInput): Promise<TaskRecord> {
    return this.releaseValidated(validateProgress(progress, await this.core.dataRules()));
  }

  /** @internal */
  async releaseValidated(patch: ProgressPatch): Promise<TaskRecord> {
    await this.closeLogs();
    const r = await this.core.store.releaseTask(this.held, patch);
    this.core.notify.transition(r);
    this.current = toTaskRecord(r.task);
    return this.current;
  }
}
