/**
 * The DAG runner behind `container.run(handlers)`: claims ready tasks of one container up to
 * `concurrency`, runs their handlers with a context for progress/checkpoints, renews leases,
 * records outcomes, retries with backoff, and resumes whatever a crashed run left. The loop holds
 * no query: `decide()` (decide.ts) picks the next step from a snapshot, the store acts.
 */
import type { ObjectId } from 'mongodb';
import type { Core } from './core';
import { decide, type RunnerSnapshot } from './decide';
import { InputsTooLargeError, isTransient, LeaseLostError, NotFoundError, ValidationError } from './errors';
import { afterSuccessCounters, TaskLease, toFailure, validateProgress } from './lease';
import { notifySweep } from './recovery';
import { DeadlineWatch, isDeadlineError } from './deadlines';
import { Reporter } from './reporter';
import type { LogLevel } from './logs';
import type { ContainerStatus } from './states';
import type { ContainerDoc, CounterCarry, CounterResult } from './store';
import type { ContainerSummary, FailurePolicy, SpawnResult, TaskRecord, TaskSpec } from './types';
import { validateData, validateNonNegativeInt, validatePositiveNumber } from './validation';
import { sleep } from './sleep';

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
  /**
   * The results of the task's dependencies, by dependency name (null for one that stored none,
   * e.g. skipped); `{}` without dependencies. Read when the task is claimed: one query, none
   * without dependencies. Over the client's `maxInputsBytes` the handler does not run: the task
   * fails for good with code `PTS_INPUTS_TOO_LARGE`.
   */
  readonly inputs: Readonly<Record<string, unknown>>;
  /**
   * Fires when the lease is lost (taken over, cancelled), the run is stopped, or the attempt's
   * deadline passed — then `signal.reason` is a `TaskTimeoutError` (`timeoutMs`) or
   * `TaskStalledError` (`stallMs`) and the failure is already recorded: stop work.
   */
  readonly signal: AbortSignal;
  /**
   * When this attempt ends (`timeoutMs`/`stallMs`; progress, status and checkpoints move the
   * stall part), or null without limits.
   */
  readonly deadline: Date | null;
  /** Reports progress (0–100) and optional status text. Throttled; the last value is always written. */
  progress(percentageComplete: number, statusText?: string): void;
  /** Reports status text. Throttled like progress. */
  status(statusText: string): void;
  /** Saves a checkpoint and waits until it is stored. */
  saveCheckpoint(data: unknown): Promise<void>;
  /** Waits until every reported value is stored. */
  flush(): Promise<void>;
  /**
   * Adds child tasks under this task's lease (dynamic fan-out, see `TaskLease.spawn`): idempotent
   * by name across retries, fenced, children may depend on each other; this task's dependents
   * wait for it and all its children. The runner runs the children like any other task.
   */
  spawn(specs: TaskSpec[]): Promise<SpawnResult>;
  /**
   * Logs a line of this attempt (step logs, see `TaskLease.log`): never waits; written in batches
   * (every `logFlushMs`, or `logMaxLines` lines) and before the outcome is recorded, so a normal
   * end keeps every line and a crash loses at most the last `logFlushMs`. Read with `task.logs()`.
   */
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

export type TaskHandler = (ctx: TaskContext) => unknown;
/**
 * One handler per task name, or one for all. A spawned child without a handler of its own runs
 * the one keyed `'<parent>/*'` (e.g. `{ split: …, 'split/*': … }`).
 */
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
  /**
   * What the run does when the container is paused (`container.pause()`) and none of its own
   * handlers is running: `'wait'` polls (one read per `pollIntervalMs`) until the container is
   * resumed or `signal` stops the run; `'return'` resolves with `paused: true`. Handlers already
   * running when the pause lands always finish first.
   * @defaultValue 'wait'
   */
  whenPaused?: 'wait' | 'return';
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
  /** True if the run returned because the container is paused (`whenPaused: 'return'`). */
  paused: boolean;
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
  whenPaused: 'wait' | 'return';
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
    whenPaused: o.whenPaused === undefined ? 'wait' : validateWhenPaused(o.whenPaused),
  };
}

function validateWhenPaused(v: unknown): 'wait' | 'return' {
  if (v !== 'wait' && v !== 'return') throw new ValidationError("whenPaused must be 'wait' or 'return'", { path: 'whenPaused' });
  return v;
}

/**
 * Retries `fn` while the database is unreachable (a transient `DatabaseError`), until it succeeds
 * or fails for another reason. No deadline: a completed step's result is kept until it can be
 * written (a lost lease still rejects it with LeaseLostError once the database is back).
 */
async function persist<T>(core: Core, op: string, poll: number, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      const v = await fn();
      core.notify.dbAvailable(op);
      return v;
    } catch (err) {
      if (!isTransient(err)) throw err;
      core.notify.dbUnavailable(op, err as Error);
      await sleep(poll);
    }
  }
}

export class Runner {
  private readonly run: ResolvedRun;
  private readonly active = new Map<string, Promise<void>>();
  private wake: (() => void) | null = null;
  private failFastTripped = false;
  /** Under fail-fast: the cleanup steps still claimed (read by `decide`'s `cleanups`). */
  private cleanupNames: string[] = [];
  private claimErrorAt: Date | null = null;
  /** The last read of the container found it paused. */
  private pausedSeen = false;
  private readonly result: RunResult;
  /**
   * The counter deltas of successes not written yet: the next claim adds them to its own counter
   * write, else they are written alone before the loop does anything but claim (store/counters.ts
   * `CounterCarry`). One command less per success.
   */
  private readonly carry: CounterCarry;
  /** A counter write carrying held-back deltas failed (maybe applied, maybe not): reconcile at the end. */
  private countersInDoubt = false;

  constructor(
    private readonly core: Core,
    private readonly containerId: ObjectId,
    private readonly containerName: string,
    private readonly handlers: Handlers,
    options: RunOptions,
  ) {
    this.run = resolveRun(core, options);
    this.carry = { containerId, delta: null };
    if (typeof handlers !== 'function' && (handlers === null || typeof handlers !== 'object')) {
      throw new ValidationError('handlers must be a function or an object of functions by task name', { path: 'handlers' });
    }
    if (typeof handlers === 'object') {
      for (const [k, v] of Object.entries(handlers)) {
        if (typeof v !== 'function') throw new ValidationError(`handler for ${JSON.stringify(k)} is not a function`, { path: `handlers.${k}` });
      }
    }
    this.result = { status: 'pending', summary: null as unknown as ContainerSummary, attempts: {}, succeeded: [], failed: [], stopped: false, paused: false };
  }

  private handlerFor(name: string, parent: string | null = null): TaskHandler | undefined {
    if (typeof this.handlers === 'function') return this.handlers;
    const own = (k: string): TaskHandler | undefined => (Object.prototype.hasOwnProperty.call(this.handlers, k) ? (this.handlers as Record<string, TaskHandler>)[k] : undefined);
    return own(name) ?? (parent === null ? undefined : own(`${parent}/*`));
  }

  /** The parents whose spawned children have a `'<parent>/*'` handler. */
  private childParents(): string[] {
    return typeof this.handlers === 'function' ? [] : Object.keys(this.handlers).filter((k) => k.endsWith('/*')).map((k) => k.slice(0, -2));
  }

  private async checkHandlers(): Promise<void> {
    if (typeof this.handlers === 'function') return;
    const names = await this.core.store.unfinishedTaskNames(this.containerId);
    let missing = names.filter((n) => !this.handlerFor(n));
    if (missing.length && this.childParents().length) {
      const parents = new Map((await this.core.store.spawnCandidates(this.containerId, missing)).map((t) => [t.name, t.parent ?? null]));
      missing = missing.filter((n) => !this.handlerFor(n, parents.get(n) ?? null));
    }
    if (missing.length) {
      throw new ValidationError(`no handler for task(s) ${missing.slice(0, 10).map((n) => JSON.stringify(n)).join(', ')}`, { path: 'handlers', missing });
    }
  }

  /** The store, with transient database errors retried until the database is back. */
  private db<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return persist(this.core, op, this.run.pollIntervalMs, fn);
  }

  private async sweep(): Promise<{ finalized: boolean; changed: boolean }> {
    const s = await this.db('sweep', () => this.core.store.sweep([this.containerId]));
    notifySweep(this.core, s);
    return { finalized: s.finalized.length > 0, changed: s.unblocked > 0 || s.reconciled.length > 0 || s.expired.length > 0 };
  }

  /**
   * Claims up to `free` ready tasks (the free slots) in one round trip when several are free
   * (claimSeveral: each task fenced on its own), one otherwise.
   */
  private async claim(free: number): Promise<TaskLease[]> {
    const held = this.carry.delta;
    const r = await this.db('claim', () =>
      this.core.store
        .claimSeveral({
          containerId: this.containerId,
          names: this.failFastTripped
            ? this.cleanupNames.filter((n) => this.handlerFor(n))
            : typeof this.handlers === 'function'
              ? undefined
              : Object.keys(this.handlers),
          parents: this.childParents(),
          owner: this.run.owner,
          leaseMs: this.run.leaseMs,
        }, free, this.carry)
        .catch((err) => {
          // The claim may have been applied with its reply lost: remember when, to adopt it.
          if (isTransient(err)) this.claimErrorAt ??= this.core.ctx.clock.now();
          // The held deltas were taken into a counter write that may or may not have landed (a
          // success added meanwhile also makes a new object: a needless reconcile at worst).
          if (held && this.carry.delta !== held) this.countersInDoubt = true;
          throw err;
        }),
    );
    for (const e of r.recovered) this.core.notify.transition(e);
    for (const c of r.claimed) this.core.notify.transition(c);
    return r.claimed.map((c) => new TaskLease(this.core, c.task, c.task, this.run.leaseMs));
  }

  /**
   * Writes the held-back success deltas on their own (one counter write, its status change
   * announced) and makes the check a success's counter write gets (lease.ts `afterSuccessCounters`). A
   * transient failure leaves the counters in doubt: they are reconciled at the end of the run.
   */
  private async flushCarry(): Promise<void> {
    if (!this.carry.delta) return;
    let r: CounterResult;
    try {
      r = await this.core.store.applyCarry(this.carry);
    } catch (err) {
      if (!isTransient(err)) throw err;
      this.countersInDoubt = true;
      this.core.notify.dbUnavailable('succeed', err as Error);
      return;
    }
    this.core.notify.containerChange(this.containerName, r);
    await this.db('read', () => afterSuccessCounters(this.core, this.containerName, r, this.containerId));
  }

  private async readDoc(): Promise<ContainerDoc> {
    const doc = await this.db('read', () => this.core.store.findContainerById(this.containerId));
    if (!doc) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} was deleted during the run`, { container: this.containerName });
    return doc;
  }

  async execute(): Promise<RunResult> {
    await this.db('read', () => this.checkHandlers());
    notifySweep(this.core, await this.db('sweep', () => this.core.store.sweep([this.containerId])));
    let doc: ContainerDoc | null = null;
    const fresh = (): RunnerSnapshot => ({
      stopping: this.run.signal?.aborted === true,
      failFast: this.failFastTripped,
      active: this.active.size,
      concurrency: this.run.concurrency,
      claimsExhausted: false,
      claimMayBeOrphaned: this.claimErrorAt !== null,
      now: this.core.ctx.clock.now().getTime(),
      pollMs: this.run.pollIntervalMs,
      waitWhenPaused: this.run.whenPaused === 'wait',
      wasPaused: this.pausedSeen,
    });
    let s = fresh();
    for (;;) {
      const d = decide(s);
      // Held-back success deltas ride on the next claim; before anything else they are written
      // (while waiting: after the wake-up is armed, so a task ending during the write is not missed).
      if (d.kind !== 'claim' && d.kind !== 'wait') await this.flushCarry();
      if (d.kind === 'stop') {
        this.result.stopped = true;
        break;
      }
      if (d.kind === 'finish') break;
      if (d.kind === 'paused') {
        this.result.paused = true;
        break;
      }
      switch (d.kind) {
        case 'claim': {
          const leases = await this.claim(this.run.concurrency - this.active.size);
          for (const lease of leases) this.start(lease);
          s = { ...s, active: this.active.size, claimsExhausted: leases.length === 0, stopping: this.run.signal?.aborted === true };
          continue;
        }
        case 'wait': {
          const woken = new Promise<void>((resolve) => {
            this.wake = resolve;
            setTimeout(resolve, d.ms).unref?.();
          });
          await this.flushCarry();
          await woken;
          this.wake = null;
          break;
        }
        case 'read':
          if (d.what === 'counts') {
            doc = await this.readDoc();
            this.pausedSeen = doc.paused === true;
            s = { ...s, counts: doc.counts, paused: this.pausedSeen };
          } else if (d.what === 'cleanups') {
            // Fail-fast tripped: the cleanup steps that still run before the container fails.
            const c = await this.db('read', () => this.core.store.haltedCleanups(this.containerId));
            for (const r of c.decided) this.core.notify.transition(r);
            this.cleanupNames = c.ready.map((t) => t.name);
            const at = c.ready.reduce<number | null>((m, t) => (m === null ? t.runAfter.getTime() : Math.min(m, t.runAfter.getTime())), null);
            s = { ...s, cleanups: { names: this.cleanupNames, nextReadyAt: at } };
          } else if (d.what === 'nextLeaseExpiry') {
            const exp = await this.db('read', () => this.core.store.earliestLeaseExpiry(this.containerId));
            s = { ...s, nextLeaseExpiry: exp?.getTime() ?? null };
          } else {
            const at = await this.db('read', () => this.core.store.earliestReadyAt(this.containerId));
            s = { ...s, nextReadyAt: at?.getTime() ?? null };
          }
          continue;
        case 'adopt': {
          const adopted = await this.db('read', () => this.adoptOrphans());
          if (adopted) break;
          s = { ...s, claimMayBeOrphaned: false };
          continue;
        }
        case 'sleep':
          await sleep(d.ms, this.run.signal);
          if (d.sweep) await this.sweep();
          break;
        case 'sweep':
          s = { ...s, swept: await this.sweep() };
          continue;
        case 'fail-container': {
          const r = await this.db('read', () => this.core.store.finalizeContainer(doc!, 'failed'));
          this.core.notify.containerChange(this.containerName, r);
          return this.finish();
        }
        case 'next-pass':
          break;
      }
      s = fresh();
    }
    return this.finish();
  }

  private async finish(): Promise<RunResult> {
    await Promise.all(this.active.values());
    await this.flushCarry();
    if (this.countersInDoubt) {
      this.countersInDoubt = false;
      await this.db('read', () => this.core.store.reconcileContainer(this.containerId));
    }
    const doc = await this.readDoc();
    this.result.summary = await this.db('read', () => this.core.store.summarize(doc));
    this.result.status = doc.status;
    return this.result;
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

  /**
   * Reads the task's inputs before its handler runs (`ctx.inputs`; transient errors retried).
   * False: the handler must not run — the inputs were too large (the task is failed for good,
   * counted as failed by this run) or the lease was lost meanwhile.
   */
  private async loadInputs(lease: TaskLease): Promise<boolean> {
    try {
      await persist(this.core, 'read', this.run.pollIntervalMs, () => lease.loadInputs());
      return true;
    } catch (err) {
      if (err instanceof InputsTooLargeError) {
        this.result.failed.push(lease.task.name);
        const policy = this.run.failurePolicy ?? (await persist(this.core, 'read', this.run.pollIntervalMs, () => this.policy()));
        if (policy === 'fail-fast') this.failFastTripped = true;
        return false;
      }
      if (err instanceof LeaseLostError) {
        this.core.notify.leaseLost(this.containerName, lease.task.name, lease.owner, err.message);
        return false;
      }
      throw err;
    }
  }

  private async execTask(lease: TaskLease): Promise<void> {
    if (!(await this.loadInputs(lease))) return;
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
        this.core.notify.leaseLost(this.containerName, lease.task.name, lease.owner, err.message);
        ac.abort(err);
        // Refused for its deadline: stop waiting for the handler (it may ignore the signal).
        if (isDeadlineError(err)) watch.trip(err);
      },
      this.core,
    );
    const watch = new DeadlineWatch(lease, this.core.ctx.clock, this.run.heartbeatMs, () => reporter.idle());
    const task = lease.task;
    const ctx: TaskContext = {
      task,
      name: task.name,
      data: task.taskData,
      checkpoint: task.processingData,
      attempt: task.attempts,
      inputs: lease.inputs ?? {},
      signal: ac.signal,
      get deadline() {
        return lease.deadline;
      },
      progress: (pct, statusText) => reporter.report(validateProgress(statusText === undefined ? { percentageComplete: pct } : { percentageComplete: pct, statusText })),
      status: (statusText) => reporter.report(validateProgress({ statusText })),
      saveCheckpoint: async (data) => {
        reporter.report({ processingData: validateData(data, 'processingData', await this.core.dataRules()) });
        await reporter.flush();
        if (lost) throw lost;
      },
      flush: async () => {
        await reporter.flush();
        if (lost) throw lost;
      },
      log: (level, message, fields) => lease.log(level, message, fields),
      spawn: async (specs) => {
        if (lost) throw lost;
        const r = await lease.spawn(specs);
        this.wake?.();
        return r;
      },
    };
    type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };
    const handler = this.handlerFor(task.name, task.parent)!;
    const ran: Promise<Outcome> = Promise.resolve()
      .then(() => handler(ctx))
      .then(
        (value) => ({ ok: true, value }),
        (error: unknown) => ({ ok: false, error }),
      );
    // At the deadline the attempt ends at once, whether or not the handler heeds its signal.
    const outcome = await Promise.race([ran, watch.tripped.then((reason) => ({ deadline: reason }))]);
    watch.stop();
    this.run.signal?.removeEventListener('abort', onStop);
    if ('deadline' in outcome) {
      if (!lost) {
        lost = outcome.deadline;
        ac.abort(outcome.deadline);
      }
      await reporter.stop();
      await this.endByDeadline(lease);
      return;
    }
    const patch = await reporter.stop();
    if (lost) {
      // Refused for its deadline: the attempt is a timeout (a no-op if the sweep recorded it).
      if (isDeadlineError(lost)) await this.endByDeadline(lease);
      return; // else someone else owns the task now: write nothing
    }
    try {
      if (outcome.ok) {
        let value: unknown;
        try {
          value = validateData(outcome.value, 'result', await this.core.dataRules());
        } catch (err) {
          await persist(this.core, 'fail', this.run.pollIntervalMs, () => lease.failValidated(toFailure(err, false), patch));
          this.result.failed.push(task.name);
          return;
        }
        await persist(this.core, 'succeed', this.run.pollIntervalMs, () => lease.succeedValidated(value, patch, this.carry));
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
        this.core.notify.leaseLost(this.containerName, task.name, lease.owner, err.message);
        // The handler returned past its deadline: the attempt is a timeout (unless swept already).
        if (isDeadlineError(err)) await this.endByDeadline(lease);
        return;
      }
      throw err;
    }
  }

  /** Records the end of an attempt by its deadline (a no-op if the sweep did already). */
  private async endByDeadline(lease: TaskLease): Promise<void> {
    const after = await persist(this.core, 'timeout', this.run.pollIntervalMs, () => lease.timeoutValidated());
    if (after?.state === 'failed') {
      this.result.failed.push(after.name);
      const policy = this.run.failurePolicy ?? (await persist(this.core, 'read', this.run.pollIntervalMs, () => this.policy()));
      if (policy === 'fail-fast') this.failFastTripped = true;
    }
  }

  /**
   * After a claim failed on a transient error, the server may have applied it and lost the
   * reply: such a task runs under this runner's own lease with nobody working on it. Start it
   * (only tasks this owner claimed since the error). Returns true if it adopted any.
   */
  private async adoptOrphans(): Promise<boolean> {
    const since = new Date(this.claimErrorAt!.getTime() - 1000);
    const orphans = await this.core.store.findOrphans(this.containerId, this.run.owner, since);
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
    const doc = await this.core.store.findContainerById(this.containerId);
    return doc?.failurePolicy ?? 'continue';
  }
}
