/**
 * A task container: a named pipeline of tasks. Reads always go to the database (nothing is
 * served from a cached document); every change goes through one transition function.
 */
import type { ObjectId } from 'mongodb';
import { withCallback } from './callback';
import type { Core } from './core';
import { DuplicateError, NotFoundError, ValidationError } from './errors';
import { Runner, type Handlers, type RunOptions, type RunResult } from './runner';
import { SATISFYING_TASK_STATES } from './states';
import { cancelAll, resetAll, retryAll } from './store/containers';
import { reconcileContainer } from './store/counters';
import { toTaskRecord, type ContainerDoc } from './store/documents';
import { allTasks, findContainerById, findTask, listTasks, summarize, taskStates } from './store/queries';
import * as tx from './store/transitions';
import { Task } from './task';
import type { ContainerSummary, ListTasksQuery, Page, TaskRecord, TaskSpec, TaskUpdate } from './types';
import { checkDependencies, resolveTaskSpec, validateData, validateName, validatePercentage, validateStatusText } from './validation';

type Cb<T> = (err: Error | null, value?: T) => void;

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
/** Options of `addTask` besides name and data. */
export type AddTaskOptions = Omit<TaskSpec, 'name' | 'data'>;

export class TaskContainer {
  /** @internal */
  readonly _id: ObjectId;
  private readonly containerName: string;

  /** @internal */
  constructor(
    private readonly core: Core,
    doc: Pick<ContainerDoc, '_id' | 'name'>,
    /** True if this call created the container. */
    readonly isNew = false,
  ) {
    this._id = doc._id;
    this.containerName = doc.name;
  }

  get id(): string {
    return this._id.toHexString();
  }
  name(): string {
    return this.containerName;
  }

  private async doc(): Promise<ContainerDoc> {
    const d = await findContainerById(this.core.ctx, this._id);
    if (!d) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} no longer exists`, { container: this.containerName });
    return d;
  }

  private task(r: TaskRecord): Task {
    return new Task(r, async () => {
      const d = await findTask(this.core.ctx, this._id, r.name);
      return d ? toTaskRecord(d) : null;
    });
  }

  private named(name: unknown): tx.NamedTask {
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
    const resolved = specs.map((s, i) => resolveTaskSpec(s, `tasks[${i}]`));
    const inBatch = new Set(resolved.map((s) => s.name));
    const external = [...new Set(resolved.flatMap((s) => s.dependsOn).filter((d) => !inBatch.has(d)))];
    // One read: the external dependencies' states, and the batch names that already exist.
    const known = await this.core.ctx.cols.tasks
      .find({ containerId: this._id, name: { $in: [...external, ...inBatch] } }, { projection: { name: 1, state: 1, dependsOn: 1 } })
      .toArray();
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
      const r = await tx.addTasks(this.core.ctx, { _id: this._id, name: this.containerName }, ordered.slice(i, i + 1000), existingNames);
      for (const t of ordered.slice(i, i + 1000)) existingNames.add(t.name);
      r.tasks.forEach((t, j) => {
        if (r.created[j]) this.core.events.emit('task:added', { container: this.containerName, task: toTaskRecord(t) });
      });
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
      const d = await findTask(this.core.ctx, this._id, validateName(name, 'task name'));
      return d ? this.task(toTaskRecord(d)) : null;
    })();
    return withCallback(p, cb);
  }

  /** Every task, in the order added. For large containers prefer {@link listTasks}. */
  getTasks(): Promise<Task[]>;
  getTasks(cb: Cb<Task[]>): void;
  getTasks(cb?: Cb<Task[]>): Promise<Task[]> | void {
    const p = (async () => (await allTasks(this.core.ctx, this._id)).map((d) => this.task(toTaskRecord(d))))();
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
      const patch = {
        percentageComplete: values.percentageComplete === undefined ? undefined : validatePercentage(values.percentageComplete),
        statusText: values.statusText === undefined ? undefined : validateStatusText(values.statusText),
        processingData: values.processingData === undefined ? undefined : validateData(values.processingData, 'processingData'),
        result: values.result === undefined ? undefined : validateData(values.result, 'result'),
        isComplete: values.isComplete,
      };
      const t = this.named(name);
      const r = await tx.patchTask(this.core.ctx, t, patch);
      this.core.emit(values.isComplete ? 'succeeded' : 'updated', r);
      if (patch.percentageComplete !== undefined || patch.statusText !== undefined) {
        this.core.events.emit('task:progress', {
          container: this.containerName,
          task: r.task.name,
          percentageComplete: patch.percentageComplete ?? null,
          statusText: patch.statusText ?? null,
        });
      }
      return this.task(toTaskRecord(r.task));
    })();
    return withCallback(p, cb);
  }

  /** Deletes a task that is not running and that nothing depends on. */
  deleteTask(name: string): Promise<boolean>;
  deleteTask(name: string, cb: Cb<boolean>): void;
  deleteTask(name: string, cb?: Cb<boolean>): Promise<boolean> | void {
    const p = (async () => {
      await tx.deleteTask(this.core.ctx, this.named(name));
      return true;
    })();
    return withCallback(p, cb);
  }

  /** True when every task succeeded or was skipped (an empty container is not complete). */
  isComplete(): Promise<boolean>;
  isComplete(cb: Cb<boolean>): void;
  isComplete(cb?: Cb<boolean>): Promise<boolean> | void {
    const p = (async () => (await this.doc()).status === 'succeeded')();
    return withCallback(p, cb);
  }

  /** Status, counts per state and weighted percentage complete — without scanning the tasks. */
  async summary(): Promise<ContainerSummary> {
    return summarize(this.core.ctx, await this.doc());
  }

  /** A page of tasks in insertion order, optionally filtered by state. */
  async listTasks(q: ListTasksQuery = {}): Promise<Page<TaskRecord>> {
    return listTasks(this.core.ctx, this._id, q);
  }

  /** Runs the pipeline (see {@link RunOptions}); resumes whatever an earlier run left. */
  async run(handlers: Handlers, options: RunOptions = {}): Promise<RunResult> {
    await this.core.ready();
    return new Runner(this.core, this._id, this.containerName, handlers, options).execute();
  }

  /** Retries a failed or cancelled task (or, without a name, all of them) with a fresh retry budget. */
  async retry(name?: string): Promise<number> {
    if (name === undefined) return retryAll(this.core.ctx, this._id);
    const r = await tx.retryTask(this.core.ctx, this.named(name));
    this.core.emit('retried', r);
    return 1;
  }

  /** Cancels a pending or running task (or, without a name, all of them). */
  async cancel(name?: string): Promise<number> {
    if (name === undefined) return cancelAll(this.core.ctx, this._id);
    const r = await tx.cancelTask(this.core.ctx, this.named(name));
    this.core.emit('cancelled', r);
    return 1;
  }

  /** Skips a task that is pending, failed or cancelled: it counts as done and its dependents may run. */
  async skip(name: string): Promise<Task> {
    const r = await tx.skipTask(this.core.ctx, this.named(name));
    this.core.emit('skipped', r);
    return this.task(toTaskRecord(r.task));
  }

  /** Resets a task that is not running (or, without a name, every such task) to pending as if just added. */
  async reset(name?: string): Promise<number> {
    if (name === undefined) return resetAll(this.core.ctx, this._id);
    const t = this.named(name);
    const cur = await findTask(this.core.ctx, this._id, t.name);
    if (!cur) throw new NotFoundError(`no task named ${JSON.stringify(t.name)} in this container`, { task: t.name });
    const deps = cur.dependsOn ?? [];
    const states = await taskStates(this.core.ctx, this._id, deps);
    const waitingOn = deps.filter((d) => !SATISFYING_TASK_STATES.includes(states.get(d) ?? 'pending'));
    const r = await tx.resetTask(this.core.ctx, t, waitingOn);
    this.core.emit('reset', r);
    return 1;
  }

  /** Rebuilds the counters from the tasks if they drifted (after a crash). True if it repaired something. */
  async reconcile(): Promise<boolean> {
    return reconcileContainer(this.core.ctx, this._id);
  }
}
