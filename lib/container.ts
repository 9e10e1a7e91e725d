/**
 * A task container: a named pipeline of tasks. Reads go to the database; the one exception is
 * the original API's synchronous `isComplete()`, which answers from the status this handle last
 * read or wrote (see {@link TaskContainer.isComplete}). Every change goes through one transition
 * function.
 */
import type { ObjectId } from 'mongodb';
import { withCallback } from './callback';
import type { Core } from './core';
import { DuplicateError, NotFoundError, ValidationError } from './errors';
import { Runner, type Handlers, type RunOptions, type RunResult } from './runner';
import { initialWaitingOn } from './run-when';
import type { ContainerAction, ContainerStatus } from './states';
import type { ContainerDoc, CounterResult, TransitionResult } from './store';
import { toTaskRecord } from './store/documents';
import type { NamedTask } from './store/transitions';
import { Task } from './task';
import { readTaskLogs } from './logs';
import type { ChildrenSummary, ContainerSummary, ListTasksQuery, Page, RerunOptions, RerunPlan, TaskRecord, TaskSpec, TaskUpdate } from './types';
import { checkDependencies, deadlineDefaults, resolveTaskSpec, type DeadlineDefaults, validateData, validateName, validatePercentage, validateStatusText } from './validation';

type Cb<T> = (err: Error | null, value?: T) => void;

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
/** Options of `addTask` besides name and data. */
export type AddTaskOptions = Omit<TaskSpec, 'name' | 'data'>;

/** Options of {@link TaskContainer.pause}. */
export interface PauseOptions {
  /** Who pauses (shown as `pausedBy` while paused; the HTTP service passes the token id). @defaultValue null */
  by?: string | null;
}

/** What a handle last saw of its container (from any read or write that returned the container document). */
interface Seen {
  status: ContainerStatus;
  paused: boolean;
  /** The pause holding the container's tasks (0: unknown or not paused). */
  pauseSeq: number;
  rev: number;
}

export class TaskContainer {
  /** @internal */
  readonly _id: ObjectId;
  private readonly containerName: string;
  private seen: Seen | null = null;
  /** `timeoutMs`/`stallMs` of added tasks whose spec sets none: the container's, else the client's. */
  private readonly deadlines: DeadlineDefaults;

  /** @internal */
  constructor(
    private readonly core: Core,
    doc: Pick<ContainerDoc, '_id' | 'name'> & Partial<ContainerDoc>,
    /** True if this call created the container. */
    readonly isNew = false,
  ) {
    this._id = doc._id;
    this.containerName = doc.name;
    this.deadlines = deadlineDefaults(doc, core.opts);
    this.remember(doc);
  }

  /** Keeps what a read or write returned of the container (never an older revision over a newer one). */
  private remember(doc: Partial<Pick<ContainerDoc, 'status' | 'paused' | 'pauseSeq' | 'rev'>> | null | undefined): void {
    if (!doc || doc.status === undefined || typeof doc.rev !== 'number') return;
    if (this.seen && doc.rev < this.seen.rev) return;
    const paused = doc.paused === true;
    const pauseSeq = doc.pauseSeq ?? (paused && this.seen?.paused ? this.seen.pauseSeq : 0);
    this.seen = { status: doc.status, paused, pauseSeq, rev: doc.rev };
  }

  /** Passes a counter write's result through, remembering the container it returned. */
  private counted<R extends { container: CounterResult | null }>(r: R): R {
    this.remember(r.container?.container);
    return r;
  }

  get id(): string {
    return this._id.toHexString();
  }
  name(): string {
    return this.containerName;
  }

  private async doc(): Promise<ContainerDoc> {
    const d = await this.core.store.findContainerById(this._id);
    if (!d) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} no longer exists`, { container: this.containerName });
    this.remember(d);
    return d;
  }

  private task(r: TaskRecord): Task {
    return new Task(
      r,
      async () => {
        const d = await this.core.store.findTask(this._id, r.name);
        return d ? toTaskRecord(d) : null;
      },
      (q) => readTaskLogs(this.core, r.id, q),
    );
  }

  private named(name: unknown): NamedTask {
    return { containerId: this._id, name: validateName(name, 'task name') };
  }

  /**
   * Adds a task (the original API: `addTask(name, data, cb)`). Idempotent by name: adding an
   * existing name returns the existing task unchanged.
   */
  addTask(name: string, data?: unknown, options?: AddTaskOptions): Promise<Task>;
  addTask(name: string, data: unknown, cb: Cb<Task>): void;
  addTask(name: string, data: unknown, options: AddTaskOptions, cb: Cb<Task>): void;
  addTask(name: string, data?: unknown, a?: AddTaskOptions | Cb<Task>, b?: Cb<Task>): Promise<Task> | void {
    const cb = typeof a === 'function' ? a : b;
    const options = typeof a === 'function' || a === undefined || a === null ? {} : a;
    const p = (async () => {
      if (typeof options !== 'object' || Array.isArray(options)) throw new ValidationError('options must be an object', { path: 'options' });
      const [t] = await this.addTasks([{ ...options, name, data: data ?? null }]);
      return t;
    })();
    return withCallback(p, cb);
  }

  /**
   * Adds many tasks in one batch (dependencies may point inside the batch or at existing tasks).
   * The whole batch is validated first: a bad spec, an unknown dependency or a cycle rejects it
   * with nothing written.
   */
  async addTasks(specs: TaskSpec[]): Promise<Task[]> {
    await this.core.ready();
    if (!Array.isArray(specs)) throw new ValidationError('tasks must be an array', { path: 'tasks' });
    if (specs.length === 0) return [];
    if (specs.length > 100_000) throw new ValidationError('at most 100000 tasks per batch', { path: 'tasks' });
    const rules = await this.core.dataRules();
    const resolved = specs.map((s, i) => resolveTaskSpec(s, `tasks[${i}]`, rules, this.deadlines));
    const inBatch = new Set(resolved.map((s) => s.name));
    const external = [...new Set(resolved.flatMap((s) => s.dependsOn).filter((d) => !inBatch.has(d)))];
    // One read: the external dependencies' states, and the batch names that already exist.
    const known = await this.core.store.existingTasks(this._id, [...external, ...inBatch]);
    const existing = new Map(known.map((t) => [t.name, t]));
    for (const s of resolved) {
      const cur = existing.get(s.name);
      if (cur && !sameSet(cur.dependsOn ?? [], s.dependsOn)) {
        throw new DuplicateError(
          `task ${JSON.stringify(s.name)} already exists with different dependencies (${JSON.stringify(cur.dependsOn ?? [])})`,
          { task: s.name, existing: cur.dependsOn ?? [], requested: s.dependsOn },
        );
      }
    }
    const ordered = checkDependencies(resolved, new Set(known.filter((t) => !inBatch.has(t.name)).map((t) => t.name)));
    const existingNames = new Set(known.map((t) => t.name));
    const out: Task[] = [];
    for (let i = 0; i < ordered.length; i += 1000) {
      // New tasks start held if this handle last saw the container paused (the store puts it right if that is stale).
      const pause = this.seen?.paused ? this.seen.pauseSeq : null;
      const r = this.counted(await this.core.store.addTasks({ _id: this._id, name: this.containerName, pause }, ordered.slice(i, i + 1000), existingNames));
      for (const t of ordered.slice(i, i + 1000)) existingNames.add(t.name);
      this.core.notify.added(this.containerName, r.tasks, r.created, r.container, r.also);
      const byName = new Map(r.tasks.map((t) => [t.name, t]));
      for (const s of ordered.slice(i, i + 1000)) out.push(this.task(toTaskRecord(byName.get(s.name)!)));
    }
    const order = new Map(resolved.map((s, i) => [s.name, i]));
    return out.sort((x, y) => order.get(x.name())! - order.get(y.name())!);
  }

  getTask(name: string): Promise<Task | null>;
  getTask(name: string, cb: Cb<Task | null>): void;
  getTask(name: string, cb?: Cb<Task | null>): Promise<Task | null> | void {
    const p = (async () => {
      await this.core.ready();
      const d = await this.core.store.findTask(this._id, validateName(name, 'task name'));
      return d ? this.task(toTaskRecord(d)) : null;
    })();
    return withCallback(p, cb);
  }

  /** Every task, in the order added. For large containers prefer {@link listTasks}. */
  getTasks(): Promise<Task[]>;
  getTasks(cb: Cb<Task[]>): void;
  getTasks(cb?: Cb<Task[]>): Promise<Task[]> | void {
    const p = (async () => (await this.core.store.allTasks(this._id)).map((d) => this.task(toTaskRecord(d))))();
    return withCallback(p, cb);
  }

  /**
   * The original API's `updateTask(name, values)`: progress, status text, checkpoint or result
   * of a pending or running task; `isComplete: true` marks it succeeded.
   */
  updateTask(name: string, values: TaskUpdate): Promise<Task>;
  updateTask(name: string, values: TaskUpdate, cb: Cb<Task>): void;
  updateTask(name: string, values: TaskUpdate, cb?: Cb<Task>): Promise<Task> | void {
    const p = (async () => {
      if (values === null || typeof values !== 'object' || Array.isArray(values)) throw new ValidationError('values must be an object', { path: 'values' });
      const allowed = new Set(['percentageComplete', 'statusText', 'processingData', 'isComplete', 'result']);
      for (const k of Object.keys(values)) if (!allowed.has(k)) throw new ValidationError(`unknown field ${JSON.stringify(k)}`, { path: `values.${k}` });
      if (values.isComplete !== undefined && typeof values.isComplete !== 'boolean') throw new ValidationError('isComplete must be a boolean', { path: 'values.isComplete' });
      const rules = await this.core.dataRules();
      const patch = {
        percentageComplete: values.percentageComplete === undefined ? undefined : validatePercentage(values.percentageComplete),
        statusText: values.statusText === undefined ? undefined : validateStatusText(values.statusText),
        processingData: values.processingData === undefined ? undefined : validateData(values.processingData, 'processingData', rules),
        result: values.result === undefined ? undefined : validateData(values.result, 'result', rules),
        isComplete: values.isComplete,
      };
      const t = this.named(name);
      const r = this.counted(await this.core.store.patchTask(t, patch));
      this.core.notify.transition(r, patch);
      return this.task(toTaskRecord(r.task));
    })();
    return withCallback(p, cb);
  }

  /**
   * Deletes a task that is not running and that nothing depends on. Resolves to `true`, or — as
   * the original API called back `(null, null)` — to `null` when there is no task of that name
   * (nothing is written). A running task or one with dependents is refused with an error.
   */
  deleteTask(name: string): Promise<true | null>;
  deleteTask(name: string, cb: Cb<true | null>): void;
  deleteTask(name: string, cb?: Cb<true | null>): Promise<true | null> | void {
    const p = (async (): Promise<true | null> => {
      const t = this.named(name);
      try {
        const r = await this.core.store.deleteTask(t);
        this.core.notify.transition(this.counted(r));
        // Its step logs go with it (a crash in between leaves them to the container's deletion).
        await this.core.store.deleteLogs({ taskId: r.task._id });
        return true;
      } catch (err) {
        if (err instanceof NotFoundError) return null;
        throw err;
      }
    })();
    return withCallback(p, cb);
  }

  /**
   * The original API's `isComplete()`: true when every task succeeded or was skipped (an empty
   * container is not complete). Synchronous, as in the 2011 module: it answers from the status
   * this handle last read or wrote — its creation (`getOrCreateTaskContainer`,
   * `getTaskContainer`), `summary()`, `checkComplete()`, the end of `run()` and this handle's
   * own writes (adds, updates, deletes, retry/cancel/skip/reset, pause/resume). Changes made
   * elsewhere (another handle or process, a worker's `claimNext`) show after the next of those;
   * ask the database with {@link checkComplete}. `await container.isComplete()` still works
   * (awaiting a boolean yields it). With a callback it reads the database, like `checkComplete`.
   */
  isComplete(): boolean;
  isComplete(cb: Cb<boolean>): void;
  isComplete(cb?: Cb<boolean>): boolean | void {
    if (typeof cb !== 'function') return this.seen?.status === 'succeeded';
    withCallback(this.checkComplete(), cb);
  }

  /** Reads the container and resolves to whether it is complete (what `isComplete()` answers from then on). */
  checkComplete(): Promise<boolean>;
  checkComplete(cb: Cb<boolean>): void;
  checkComplete(cb?: Cb<boolean>): Promise<boolean> | void {
    const p = (async () => (await this.doc()).status === 'succeeded')();
    return withCallback(p, cb);
  }

  /** Status, counts per state and weighted percentage complete — without scanning the tasks. */
  async summary(): Promise<ContainerSummary> {
    return this.core.store.summarize(await this.doc());
  }

  /** Whether the container was paused, as of what this handle last read or wrote (like {@link isComplete}). */
  isPaused(): boolean {
    return this.seen?.paused === true;
  }

  /**
   * Pauses the container: from when this resolves no task of it is claimed — by `run()`,
   * `client.claimNext()`, keyed claims or HTTP workers — until {@link resume}; tasks already
   * running finish and are recorded as usual, and tasks added meanwhile wait too. Summaries show
   * `paused` (with `pausedAt`, `pausedBy`). Idempotent: pausing a paused container changes nothing
   * (and emits no event) but re-applies the hold to its tasks. Resolves to the summary after it.
   */
  async pause(options: PauseOptions = {}): Promise<ContainerSummary> {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new ValidationError('options must be an object', { path: 'options' });
    for (const k of Object.keys(options)) if (k !== 'by') throw new ValidationError(`unknown option ${JSON.stringify(k)}`, { path: `options.${k}` });
    const by = options.by === undefined || options.by === null ? null : validateName(options.by, 'by');
    return this.setPaused(true, by);
  }

  /** Resumes a paused container: its tasks may be claimed again. Idempotent, like {@link pause}. Resolves to the summary after it. */
  async resume(): Promise<ContainerSummary> {
    return this.setPaused(false, null);
  }

  private async setPaused(paused: boolean, by: string | null): Promise<ContainerSummary> {
    await this.core.ready();
    const r = await this.core.store.setPaused(this._id, paused, by);
    if (!r.container) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} no longer exists`, { container: this.containerName });
    this.remember(r.container);
    this.core.notify.pauseChange(this.containerName, r);
    return this.core.store.summarize(r.container);
  }

  /** A page of tasks in insertion order, optionally filtered by state or by parent (`parent: null`: the top level only). */
  async listTasks(q: ListTasksQuery = {}): Promise<Page<TaskRecord>> {
    return this.core.store.listTasks(this._id, q);
  }

  /**
   * The children each of the named tasks spawned, counted per state ("N of M done": `done` of
   * `total`). One `$group` over the `parent` index; a task that spawned nothing gets zeros.
   */
  async children(name: string): Promise<ChildrenSummary>;
  async children(names: string[]): Promise<ChildrenSummary[]>;
  async children(names: string | string[]): Promise<ChildrenSummary | ChildrenSummary[]> {
    const list = (Array.isArray(names) ? names : [names]).map((n, i) => validateName(n, Array.isArray(names) ? `names[${i}]` : 'task name'));
    if (list.length > 1000) throw new ValidationError('at most 1000 names', { path: 'names' });
    const r = await this.core.store.childCounts(this._id, list);
    return Array.isArray(names) ? r : r[0];
  }

  /** Runs the pipeline (see {@link RunOptions}); resumes whatever an earlier run left. */
  async run(handlers: Handlers, options: RunOptions = {}): Promise<RunResult> {
    await this.core.ready();
    const r = await new Runner(this.core, this._id, this.containerName, handlers, options).execute();
    this.remember(r.summary);
    return r;
  }

  /** Retries a failed or cancelled task (or, without a name, all of them) with a fresh retry budget. */
  async retry(name?: string): Promise<number> {
    if (name === undefined) return this.bulk('retry');
    this.core.notify.transition(this.counted(await this.core.store.retryTask(this.named(name))));
    return 1;
  }

  /** Cancels a pending or running task (or, without a name, all of them). */
  async cancel(name?: string): Promise<number> {
    if (name === undefined) return this.bulk('cancel');
    const r = this.counted(await this.core.store.cancelTask(this.named(name)));
    this.core.notify.transition(r);
    // Nothing left running but pending tasks: they may now be blocked for good — release the
    // cleanup steps behind them (run-when.ts) or give the container its final status.
    const doc = r.container.container;
    if (doc && doc.counts.running === 0 && doc.counts.pending > 0) {
      const out = { unblocked: 0, decided: [] as TransitionResult[] };
      const f = await this.core.store.finalizeIfBlocked(this._id, out);
      for (const d of out.decided) this.core.notify.transition(d);
      this.core.notify.containerChange(this.containerName, f);
    }
    return 1;
  }

  /** Skips a task that is pending, failed or cancelled: it counts as done and its dependents may run. */
  async skip(name: string): Promise<Task> {
    const r = this.counted(await this.core.store.skipTask(this.named(name)));
    this.core.notify.transition(r);
    return this.task(toTaskRecord(r.task));
  }

  /** Resets a task that is not running (or, without a name, every such task) to pending as if just added. */
  async reset(name?: string): Promise<number> {
    if (name === undefined) return this.bulk('reset');
    const t = this.named(name);
    const cur = await this.core.store.findTask(this._id, t.name);
    if (!cur) throw new NotFoundError(`no task named ${JSON.stringify(t.name)} in this container`, { task: t.name, op: 'reset' });
    const deps = cur.dependsOn ?? [];
    const states = await this.core.store.taskStates(this._id, deps);
    // A dependency whose spawned children are not all done is still waited on (children.ts).
    for (const d of await this.core.store.heldBackParents(this._id, deps)) states.set(d, 'pending');
    // By the task's runWhen (a cleanup step waits only on dependencies not final yet: run-when.ts).
    const waitingOn = initialWaitingOn(cur.runWhen ?? 'succeeded', deps, states);
    this.core.notify.transition(this.counted(await this.core.store.resetTask(t, waitingOn)));
    return 1;
  }

  /**
   * Re-run from a step: resets `name` and (with `downstream`, the default) every task that depends
   * on it, transitively, whatever their state — a running one too: its worker loses the lease, as
   * on cancel (Airflow's "clear" does the same) — and keeps every other task as it is. Each planned
   * task is one conditional write (the `rerun` row of the transition table), in dependency order,
   * then one counter write; a finished container is running again. Resolves to the plan; with
   * `dryRun` nothing is written (one read). The plan reads at most 100000 tasks
   * (`ValidationError` beyond).
   */
  async rerun(name: string, options: RerunOptions = {}): Promise<RerunPlan> {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new ValidationError('options must be an object', { path: 'options' });
    for (const k of Object.keys(options)) if (k !== 'downstream' && k !== 'dryRun') throw new ValidationError(`unknown option ${JSON.stringify(k)}`, { path: `options.${k}` });
    for (const k of ['downstream', 'dryRun'] as const) {
      if (options[k] !== undefined && typeof options[k] !== 'boolean') throw new ValidationError(`${k} must be a boolean`, { path: `options.${k}` });
    }
    const step = this.named(name).name;
    const downstream = options.downstream ?? true;
    await this.core.ready();
    if (options.dryRun === true) return { ...(await this.core.store.planRerun(this._id, step, downstream)), dryRun: true };
    const r = this.counted(await this.core.store.rerunFrom(this._id, step, downstream));
    this.core.notify.bulk(this.containerName, r);
    return { ...r.plan, dryRun: false };
  }

  /**
   * Marks a task that is pending, failed, cancelled or skipped as succeeded with `result` — for a
   * step someone fixed by hand. Its dependents may run; a finished container with pending tasks
   * is running again. A running task is refused (`InvalidTransitionError`): cancel it first.
   */
  async markSucceeded(name: string, result?: unknown): Promise<Task> {
    const t = this.named(name);
    const value = result === undefined ? null : validateData(result, 'result', await this.core.dataRules());
    const r = this.counted(await this.core.store.markSucceeded(t, value));
    this.core.notify.transition(r);
    return this.task(toTaskRecord(r.task));
  }

  /** A container-wide action: the same transition on every task the table allows it for; resolves to how many moved. */
  private async bulk(action: ContainerAction): Promise<number> {
    const r = this.counted(await this.core.store.bulkAction(this._id, action));
    this.core.notify.bulk(this.containerName, r);
    return r.results.length;
  }

  /**
   * Sets top-level keys of the container's `metadata` (other keys are kept); resolves to the
   * metadata after the write.
   */
  async setMetadata(patch: Record<string, unknown>): Promise<Record<string, unknown>> {
    const value = validateData(patch, 'metadata', await this.core.dataRules());
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('metadata must be an object', { path: 'metadata' });
    const doc = await this.core.store.setContainerMetadata(this.containerName, value as Record<string, unknown>);
    if (!doc) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} no longer exists`, { container: this.containerName });
    this.remember(doc);
    return doc.metadata ?? {};
  }

  /** Rebuilds the counters from the tasks if they drifted (after a crash). True if it repaired something. */
  async reconcile(): Promise<boolean> {
    return this.core.store.reconcileContainer(this._id);
  }
}
