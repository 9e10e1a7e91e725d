/**
 * A task container: a named pipeline of tasks. Reads always go to the database (nothing is
 * served from a cached document); every change goes through one transition function.
 */
import type { ObjectId } from 'mongodb';
import { withCallback } from './callback';
import type { Core } from './core';
import { DuplicateError, NotFoundError, ValidationError } from './errors';
import { Runner, type Handlers, type RunOptions, type RunResult } from './runner';
import { SATISFYING_TASK_STATES, type ContainerAction } from './states';
import type { ContainerDoc } from './store';
import { toTaskRecord } from './store/documents';
import type { NamedTask } from './store/transitions';
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
    const d = await this.core.store.findContainerById(this._id);
    if (!d) throw new NotFoundError(`container ${JSON.stringify(this.containerName)} no longer exists`, { container: this.containerName });
    return d;
  }

  private task(r: TaskRecord): Task {
    return new Task(r, async () => {
      const d = await this.core.store.findTask(this._id, r.name);
      return d ? toTaskRecord(d) : null;
    });
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
    const resolved = specs.map((s, i) => resolveTaskSpec(s, `tasks[${i}]`, rules));
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
      const r = await this.core.store.addTasks({ _id: this._id, name: this.containerName }, ordered.slice(i, i + 1000), existingNames);
      for (const t of ordered.slice(i, i + 1000)) existingNames.add(t.name);
      this.core.notify.added(this.containerName, r.tasks, r.created, r.container);
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
      const r = await this.core.store.patchTask(t, patch);
      this.core.notify.transition(r, patch);
      return this.task(toTaskRecord(r.task));
    })();
    return withCallback(p, cb);
  }

  /** Deletes a task that is not running and that nothing depends on. */
  deleteTask(name: string): Promise<boolean>;
  deleteTask(name: string, cb: Cb<boolean>): void;
  deleteTask(name: string, cb?: Cb<boolean>): Promise<boolean> | void {
    const p = (async () => {
      this.core.notify.transition(await this.core.store.deleteTask(this.named(name)));
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
    return this.core.store.summarize(await this.doc());
  }

  /** A page of tasks in insertion order, optionally filtered by state. */
  async listTasks(q: ListTasksQuery = {}): Promise<Page<TaskRecord>> {
    return this.core.store.listTasks(this._id, q);
  }

  /** Runs the pipeline (see {@link RunOptions}); resumes whatever an earlier run left. */
  async run(handlers: Handlers, options: RunOptions = {}): Promise<RunResult> {
    await this.core.ready();
    return new Runner(this.core, this._id, this.containerName, handlers, options).execute();
  }

  /** Retries a failed or cancelled task (or, without a name, all of them) with a fresh retry budget. */
  async retry(name?: string): Promise<number> {
    if (name === undefined) return this.bulk('retry');
    this.core.notify.transition(await this.core.store.retryTask(this.named(name)));
    return 1;
  }

  /** Cancels a pending or running task (or, without a name, all of them). */
  async cancel(name?: string): Promise<number> {
    if (name === undefined) return this.bulk('cancel');
    this.core.notify.transition(await this.core.store.cancelTask(this.named(name)));
    return 1;
  }

  /** Skips a task that is pending, failed or cancelled: it counts as done and its dependents may run. */
  async skip(name: string): Promise<Task> {
    const r = await this.core.store.skipTask(this.named(name));
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
    const waitingOn = deps.filter((d) => !SATISFYING_TASK_STATES.includes(states.get(d) ?? 'pending'));
    this.core.notify.transition(await this.core.store.resetTask(t, waitingOn));
    return 1;
  }

  /** A container-wide action: the same transition on every task the table allows it for; resolves to how many moved. */
  private async bulk(action: ContainerAction): Promise<number> {
    const r = await this.core.store.bulkAction(this._id, action);
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
    return doc.metadata ?? {};
  }

  /** Rebuilds the counters from the tasks if they drifted (after a crash). True if it repaired something. */
  async reconcile(): Promise<boolean> {
    return this.core.store.reconcileContainer(this._id);
  }
}
