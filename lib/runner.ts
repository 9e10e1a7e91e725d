/**
 * The DAG runner behind `container.run(handlers)`: claims ready tasks of one container up to
 * `concurrency`, runs their handlers with a context for progress/checkpoints, renews leases,
 * records outcomes, retries with backoff, and resumes whatever a crashed run left.
 */
import type { ObjectId } from 'mongodb';
import { claimNext } from './claim';
import type { Core } from './core';
import { LeaseLostError, NotFoundError, PtsError, ValidationError } from './errors';
import { TaskLease, toFailure, validateProgress } from './lease';
import { sweep } from './recovery';
import type { ContainerStatus } from './states';
import { findContainerById, summarize } from './store/queries';
import { finalizeContainer } from './store/containers';
import type { ProgressPatch } from './store/transitions';
import type { ContainerSummary, FailurePolicy, TaskRecord } from './types';
import { validateData, validateNonNegativeInt, validatePositiveNumber } from './validation';

/** What a handler gets. */
export interface TaskContext {
  /** The task as claimed. */
  readonly task: TaskRecord;
  readonly name: string;
  /** The task's input (`taskData`). */
  readonly data: unknown;
  /** The checkpoint saved by an earlier, interrupted attempt (null on a fresh start). */
  readonly checkpoint: unknown;
  /** 1-based attempt in the current retry cycle. */
  readonly attempt: number;
  /** Fires when the lease is lost (taken over, cancelled) or the run is stopped: stop work. */
  readonly signal: AbortSignal;
  /** Reports progress (0–100) and optional status text. Throttled; the last value is always written. */
  progress(percentageComplete: number, statusText?: string): void;
  /** Reports status text. Throttled like progress. */
  status(statusText: string): void;
  /** Saves a checkpoint and waits until it is stored. */
  saveCheckpoint(data: unknown): Promise<void>;
  /** Waits until every reported value is stored. */
  flush(): Promise<void>;
}

export type TaskHandler = (ctx: TaskContext) => unknown;
/** One handler per task name, or one for all. */
export type Handlers = Record<string, TaskHandler> | TaskHandler;

/** Options of `container.run()`. */
export interface RunOptions {
  /** Tasks run at once by this runner. @defaultValue 4 */
  concurrency?: number;
  /** Lease owner / worker id. @defaultValue the client's workerId */
  owner?: string;
  /** @defaultValue the client's leaseMs */
  leaseMs?: number;
  /** @defaultValue the client's heartbeatMs */
  heartbeatMs?: number;
  /** @defaultValue the client's progressIntervalMs */
  progressIntervalMs?: number;
  /** Longest wait between checks while waiting on other workers' leases or retry delays. @defaultValue 1_000 */
  pollIntervalMs?: number;
  /** @defaultValue the container's failurePolicy */
  failurePolicy?: FailurePolicy;
  /**
   * Stops the run: no new claims, running handlers' signals abort. A handler that then throws
   * hands its task back (pending, checkpoint kept, no retry charged); one that returns succeeds.
   */
  signal?: AbortSignal;
}

/** What `run()` resolves to. */
export interface RunResult {
  status: ContainerStatus;
  summary: ContainerSummary;
  /** Attempts this run started, by task name. */
  attempts: Record<string, number>;
  succeeded: string[];
  failed: string[];
  /** True if `signal` stopped the run before the container finished. */
  stopped: boolean;
}

interface ResolvedRun {
  concurrency: number;
  owner: string;
  leaseMs: number;
  heartbeatMs: number;
  progressIntervalMs: number;
  pollIntervalMs: number;
  failurePolicy: FailurePolicy | null;
  signal: AbortSignal | null;
}

function resolveRun(core: Core, o: RunOptions): ResolvedRun {
  const leaseMs = o.leaseMs === undefined ? core.opts.leaseMs : validatePositiveNumber(o.leaseMs, 'leaseMs');
  return {
    concurrency: o.concurrency === undefined ? 4 : Math.max(1, validateNonNegativeInt(o.concurrency, 'concurrency', 10_000)),
    owner: o.owner ?? core.opts.workerId,
    leaseMs,
    heartbeatMs:
      o.heartbeatMs === undefined ? Math.min(core.opts.heartbeatMs, Math.max(1, Math.floor(leaseMs / 3))) : validatePositiveNumber(o.heartbeatMs, 'heartbeatMs'),
    progressIntervalMs: o.progressIntervalMs === undefined ? core.opts.progressIntervalMs : validateNonNegativeInt(o.progressIntervalMs, 'progressIntervalMs'),
    pollIntervalMs: o.pollIntervalMs === undefined ? 1_000 : validatePositiveNumber(o.pollIntervalMs, 'pollIntervalMs'),
    failurePolicy: o.failurePolicy ?? null,
    signal: o.signal ?? null,
  };
}

const sleep = (ms: number, signal?: AbortSignal | null): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, Math.max(0, ms));
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** True for errors that say the database is unreachable rather than that we did something wrong. */
export function isTransientDbError(err: unknown): boolean {
  if (err instanceof PtsError) return false;
  const name = (err as { name?: string })?.name ?? '';
  const labels = (err as { errorLabelSet?: Set<string> })?.errorLabelSet;
  return (
    /MongoNetwork|MongoServerSelection|MongoPoolCleared|MongoNotConnected|MongoTopologyClosed|PoolClosed/i.test(name) ||
    (labels instanceof Set && (labels.has('RetryableWriteError') || labels.has('ResetPool')))
  );
}

/**
 * Throttled writer of one running task's progress, plus its heartbeat. Writes go out at most
 * every `progressIntervalMs`; the heartbeat renews the lease every `heartbeatMs` (carrying any
 * unwritten progress). A lost lease aborts the handler.
 */
class Reporter {
  private pending: ProgressPatch = {};
  private dirty = false;
  private lastWrite = 0;
  private inflight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private beat: NodeJS.Timeout | null = null;
  private expiresAt: number;
  writes = 0;

  constructor(
    private readonly lease: TaskLease,
    private readonly run: ResolvedRun,
    private readonly abort: (reason: Error) => void,
    private readonly core: Core,
  ) {
    this.expiresAt = lease.task.lease?.expiresAt.getTime() ?? Date.now() + run.leaseMs;
    this.beat = setInterval(() => this.write(true), run.heartbeatMs);
    this.beat.unref?.();
  }

  report(patch: ProgressPatch): void {
    Object.assign(this.pending, patch);
    this.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.inflight || this.timer || !this.beat) return;
    const wait = this.lastWrite + this.run.progressIntervalMs - Date.now();
    if (wait <= 0) this.write(false);
    else {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.write(false);
      }, wait);
      this.timer.unref?.();
    }
  }

  private write(isBeat: boolean): Promise<void> {
    if (this.inflight) return this.inflight;
    if (!isBeat && !this.dirty) return Promise.resolve();
    const patch = this.pending;
    this.pending = {};
    this.dirty = false;
    this.writes++;
    this.inflight = this.lease
      .heartbeatValidated(patch, this.run.leaseMs)
      .then((exp) => {
        this.expiresAt = exp.getTime();
        this.lastWrite = Date.now();
        this.core.dbAvailable('heartbeat');
      })
      .catch((err) => {
        // Put unwritten values back unless something newer replaced them.
        this.pending = { ...patch, ...this.pending };
        this.dirty = true;
        if (err instanceof LeaseLostError) this.abort(err);
        else if (isTransientDbError(err)) {
          this.core.dbUnavailable('heartbeat', err as Error);
          if (Date.now() >= this.expiresAt) {
            this.abort(new LeaseLostError(`lease on ${this.lease.task.name} ran out while the database was unreachable`, { task: this.lease.task.name }));
          }
        } else this.abort(err as Error);
      })
      .finally(() => {
        this.inflight = null;
        if (this.dirty && this.beat) this.schedule();
      });
    return this.inflight;
  }

  async flush(): Promise<void> {
    if (this.inflight) await this.inflight;
    if (this.dirty) await this.write(false);
  }

  /** Stops timers and returns what was not written yet (folded into the final write). */
  async stop(): Promise<ProgressPatch> {
    if (this.beat) clearInterval(this.beat);
    this.beat = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inflight) await this.inflight;
    const p = this.pending;
    this.pending = {};
    return p;
  }
}

/**
 * Retries `fn` while the database is unreachable, until it succeeds or fails for another reason.
 * No deadline: a completed step's result is kept until it can be written (a lost lease still
 * rejects it with LeaseLostError once the database is back).
 */
async function persist<T>(core: Core, op: string, poll: number, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      const v = await fn();
      core.dbAvailable(op);
      return v;
    } catch (err) {
      if (!isTransientDbError(err)) throw err;
      core.dbUnavailable(op, err as Error);
      await sleep(poll);
    }
  }
}

export class Runner {
  private readonly run: ResolvedRun;
  private readonly active = new Map<string, Promise<void>>();
  private wake: (() => void) | null = null;
  private failFastTripped = false;
  private claimErrorAt: Date | null = null;
  private readonly result: RunResult;

  constructor(
    private readonly core: Core,
    private readonly containerId: ObjectId,
    private readonly containerName: string,
    private readonly handlers: Handlers,
    options: RunOptions,
  ) {
    this.run = resolveRun(core, options);
    if (typeof handlers !== 'function' && (handlers === null || typeof handlers !== 'object')) {
      throw new ValidationError('handlers must be a function or an object of functions by task name', { path: 'handlers' });
    }
    if (typeof handlers === 'object') {
      for (const [k, v] of Object.entries(handlers)) {
        if (typeof v !== 'function') throw new ValidationError(`handler for ${JSON.stringify(k)} is not a function`, { path: `handlers.${k}` });
      }
    }
    this.result = { status: 'pending', summary: null as unknown as ContainerSummary, attempts: {}, succeeded: [], failed: [], stopped: false };
  }

  private handlerFor(name: string): TaskHandler | undefined {
    return typeof this.handlers === 'function' ? this.handlers : Object.prototype.hasOwnProperty.call(this.handlers, name) ? this.handlers[name] : undefined;
  }

  private async checkHandlers(): Promise<void> {
    if (typeof this.handlers === 'function') return;
    const names: string[] = await this.core.ctx.cols.tasks.distinct('name', { containerId: this.containerId, state: { $in: ['pending', 'running'] } });
    const missing = names.filter((n) => !this.handlerFor(n));
    if (missing.length) {
      throw new ValidationError(`no handler for task(s) ${missing.slice(0, 10).map((n) => JSON.stringify(n)).join(', ')}`, { path: 'handlers', missing });
    }
  }

  async execute(): Promise<RunResult> {
    const poll = this.run.pollIntervalMs;
    await persist(this.core, 'read', poll, () => this.checkHandlers());
    await persist(this.core, 'sweep', poll, () => sweep(this.core.ctx, [this.containerId])).then((s) => s.expired.forEach((r) => this.core.emit('expired', r)));
    for (;;) {
      if (this.run.signal?.aborted) {
        this.result.stopped = true;
        break;
      }
      if (!this.failFastTripped) {
        while (this.active.size < this.run.concurrency && !this.run.signal?.aborted) {
          const lease = await persist(this.core, 'claim', poll, () =>
            claimNext(this.core, {
              containerId: this.containerId,
              names: typeof this.handlers === 'function' ? undefined : Object.keys(this.handlers),
              owner: this.run.owner,
              leaseMs: this.run.leaseMs,
            }).catch((err) => {
              // The claim may have been applied with its reply lost: remember when, to adopt it.
              if (isTransientDbError(err)) this.claimErrorAt ??= this.core.ctx.clock.now();
              throw err;
            }),
          );
          if (!lease) break;
          this.start(lease);
        }
      }
      if (this.active.size > 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, poll).unref?.();
        });
        this.wake = null;
        continue;
      }
      const doc = await persist(this.core, 'read', poll, () => findContainerById(this.core.ctx, this.containerId));
      if (!doc) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} was deleted during the run`, { container: this.containerName });
      const c = doc.counts;
      if (this.failFastTripped) {
        await finalizeContainer(this.core.ctx, doc, 'failed').then((r) => this.emitStatus(r));
        break;
      }
      if (c.pending === 0 && c.running === 0) break;
      const now = this.core.ctx.clock.now().getTime();
      if (c.running > 0) {
        if (this.claimErrorAt && (await persist(this.core, 'read', poll, () => this.adoptOrphans()))) continue;
        // Other workers hold leases: wait for them to finish or expire, then sweep.
        const next = await persist(this.core, 'read', poll, () =>
          this.core.ctx.cols.tasks
            .find({ containerId: this.containerId, state: 'running' }, { projection: { lease: 1 } })
            .sort({ 'lease.expiresAt': 1 })
            .limit(1)
            .toArray(),
        );
        const exp = next[0]?.lease?.expiresAt.getTime() ?? now;
        await sleep(Math.min(poll, Math.max(10, exp - now + 5)), this.run.signal);
        await persist(this.core, 'sweep', poll, () => sweep(this.core.ctx, [this.containerId])).then((s) => s.expired.forEach((r) => this.core.emit('expired', r)));
        continue;
      }
      const waiting = await persist(this.core, 'read', poll, () =>
        this.core.ctx.cols.tasks
          .find({ containerId: this.containerId, state: 'pending', 'waitingOn.0': { $exists: false } }, { projection: { runAfter: 1 } })
          .sort({ runAfter: 1 })
          .limit(1)
          .toArray(),
      );
      if (waiting.length > 0) {
        await sleep(Math.min(poll, Math.max(5, waiting[0].runAfter.getTime() - now)), this.run.signal);
        continue;
      }
      const s = await persist(this.core, 'sweep', poll, () => sweep(this.core.ctx, [this.containerId]));
      s.expired.forEach((r) => this.core.emit('expired', r));
      for (const f of s.finalized) this.emitStatus(f.result);
      if (s.finalized.length > 0) break;
      if (s.unblocked > 0 || s.reconciled.length > 0 || s.expired.length > 0) continue;
      // Nothing ready, nothing running, nothing blocked for good: only a status to settle.
      break;
    }
    await Promise.all(this.active.values());
    const doc = await persist(this.core, 'read', poll, () => findContainerById(this.core.ctx, this.containerId));
    if (!doc) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} was deleted during the run`, { container: this.containerName });
    this.result.summary = await persist(this.core, 'read', poll, () => summarize(this.core.ctx, doc));
    this.result.status = doc.status;
    return this.result;
  }

  private emitStatus(r: Awaited<ReturnType<typeof finalizeContainer>>): void {
    if (!r.statusChange) return;
    const { from, to } = r.statusChange;
    this.core.events.emit('container:status', { container: this.containerName, from, to });
    if (to === 'failed') this.core.events.emit('container:failed', { container: this.containerName });
    if (to === 'cancelled') this.core.events.emit('container:cancelled', { container: this.containerName });
  }

  private start(lease: TaskLease): void {
    const name = lease.task.name;
    this.result.attempts[name] = (this.result.attempts[name] ?? 0) + 1;
    const p = this.execTask(lease).finally(() => {
      this.active.delete(lease.task.id);
      this.wake?.();
    });
    this.active.set(lease.task.id, p);
  }

  private async execTask(lease: TaskLease): Promise<void> {
    const ac = new AbortController();
    let lost: Error | null = null;
    const onStop = (): void => ac.abort(new Error('run stopped'));
    this.run.signal?.addEventListener('abort', onStop, { once: true });
    const reporter = new Reporter(
      lease,
      this.run,
      (err) => {
        if (lost) return;
        lost = err;
        this.core.events.emit('lease:lost', { container: this.containerName, task: lease.task.name, owner: lease.owner, reason: err.message });
        ac.abort(err);
      },
      this.core,
    );
    const task = lease.task;
    const ctx: TaskContext = {
      task,
      name: task.name,
      data: task.taskData,
      checkpoint: task.processingData,
      attempt: task.attempts,
      signal: ac.signal,
      progress: (pct, statusText) => reporter.report(validateProgress(statusText === undefined ? { percentageComplete: pct } : { percentageComplete: pct, statusText })),
      status: (statusText) => reporter.report(validateProgress({ statusText })),
      saveCheckpoint: async (data) => {
        reporter.report({ processingData: validateData(data, 'processingData') });
        await reporter.flush();
        if (lost) throw lost;
      },
      flush: async () => {
        await reporter.flush();
        if (lost) throw lost;
      },
    };
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      const handler = this.handlerFor(task.name)!;
      outcome = { ok: true, value: await handler(ctx) };
    } catch (error) {
      outcome = { ok: false, error };
    }
    this.run.signal?.removeEventListener('abort', onStop);
    const patch = await reporter.stop();
    if (lost) return; // someone else owns the task now: write nothing
    try {
      if (outcome.ok) {
        let value: unknown;
        try {
          value = validateData(outcome.value, 'result');
        } catch (err) {
          await persist(this.core, 'fail', this.run.pollIntervalMs, () => lease.failValidated(toFailure(err, false), patch));
          this.result.failed.push(task.name);
          return;
        }
        await persist(this.core, 'succeed', this.run.pollIntervalMs, () => lease.succeedValidated(value, patch));
        this.result.succeeded.push(task.name);
      } else if (this.run.signal?.aborted) {
        // Stopped on purpose and the handler bailed out: hand the task back, no failure charged.
        await persist(this.core, 'release', this.run.pollIntervalMs, () => lease.releaseValidated(patch));
      } else {
        const retryable = (outcome.error as { retryable?: unknown } | null)?.retryable === false ? false : undefined;
        const after = await persist(this.core, 'fail', this.run.pollIntervalMs, () => lease.failValidated(toFailure(outcome.error, retryable), patch));
        if (after.state === 'failed') {
          this.result.failed.push(task.name);
          const policy = this.run.failurePolicy ?? (await persist(this.core, 'read', this.run.pollIntervalMs, () => this.policy()));
          if (policy === 'fail-fast') this.failFastTripped = true;
        }
      }
    } catch (err) {
      if (err instanceof LeaseLostError) {
        this.core.events.emit('lease:lost', { container: this.containerName, task: task.name, owner: lease.owner, reason: err.message });
        return;
      }
      throw err;
    }
  }

  /**
   * After a claim failed on a transient error, the server may have applied it and lost the
   * reply: such a task runs under this runner's own lease with nobody working on it. Start it
   * (only tasks this owner claimed since the error). Returns true if it adopted any.
   */
  private async adoptOrphans(): Promise<boolean> {
    const since = new Date(this.claimErrorAt!.getTime() - 1000);
    const orphans = await this.core.ctx.cols.tasks
      .find({ containerId: this.containerId, state: 'running', 'lease.owner': this.run.owner, lastInvokedAt: { $gte: since } })
      .toArray();
    let adopted = 0;
    for (const t of orphans) {
      if (this.active.has(t._id.toHexString())) continue;
      this.start(new TaskLease(this.core, t, t, this.run.leaseMs));
      adopted++;
    }
    if (adopted === 0) this.claimErrorAt = null;
    return adopted > 0;
  }

  private async policy(): Promise<FailurePolicy> {
    const doc = await findContainerById(this.core.ctx, this.containerId);
    return doc?.failurePolicy ?? 'continue';
  }
}
