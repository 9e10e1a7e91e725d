/**
 * The client: the entry point of the library. A thin facade — each method delegates to the
 * store, the runner or the recovery sweep.
 */
import type { ObjectId } from 'mongodb';
import type { Connection } from 'mongoose';
import { withCallback } from './callback';
import { claimNext } from './claim';
import { TaskContainer } from './container';
import { Core } from './core';
import { LeaseLostError, NotFoundError, ValidationError } from './errors';
import type { PtsEventName, PtsListener } from './events';
import { TaskLease } from './lease';
import { emitContainerChange } from './notify';
import { resolveClientOptions, type ClientOptions } from './options';
import { sweep } from './recovery';
import { deleteContainer, getOrCreateContainer } from './store/containers';
import { setKeyLimit } from './store/keys';
import { toTaskRecord } from './store/documents';
import { escapeRegex, findContainer, listContainers, summarize } from './store/queries';
import type { ClaimFilter, ClaimOptions, ContainerOptions, ContainerSummary, FailurePolicy, ListContainersQuery, Page, RecoveryReport } from './types';
import { validateData, validateName, validateNonNegativeInt, validatePositiveNumber } from './validation';

type Cb<T> = (err: Error | null, value?: T, ...extra: unknown[]) => void;

const POLICIES: readonly FailurePolicy[] = ['continue', 'fail-fast'];

export class Client {
  /** @internal */
  readonly core: Core;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly containerIds = new Map<string, ObjectId>();

  constructor(options: ClientOptions = {}) {
    this.core = new Core(resolveClientOptions(options));
    if (this.core.opts.sweepIntervalMs > 0) this.startSweeper(this.core.opts.sweepIntervalMs);
  }

  /** This client's worker id (lease owner). */
  get workerId(): string {
    return this.core.opts.workerId;
  }
  /** The mongoose connection in use. */
  get connection(): Connection {
    return this.core.connection;
  }

  on<E extends PtsEventName>(event: E, listener: PtsListener<E>): this {
    this.core.events.on(event, listener);
    return this;
  }
  once<E extends PtsEventName>(event: E, listener: PtsListener<E>): this {
    this.core.events.once(event, listener);
    return this;
  }
  off<E extends PtsEventName>(event: E, listener: PtsListener<E>): this {
    this.core.events.off(event, listener);
    return this;
  }

  /** Creates the collections' indexes (also done on first use). */
  ensureIndexes(): Promise<void> {
    return this.core.createIndexes();
  }

  /** The container with that name, or null (the original API: `getTaskContainer(name, cb)`). */
  getTaskContainer(name: string): Promise<TaskContainer | null>;
  getTaskContainer(name: string, cb: Cb<TaskContainer | null>): void;
  getTaskContainer(name: string, cb?: Cb<TaskContainer | null>): Promise<TaskContainer | null> | void {
    const p = (async () => {
      const n = validateName(name, 'container name');
      await this.core.ready();
      const doc = await findContainer(this.core.ctx, n);
      return doc ? new TaskContainer(this.core, doc) : null;
    })();
    return withCallback(p, cb);
  }

  /**
   * The container with that name, created if missing — atomically, so concurrent callers get
   * one container and exactly one of them `isNew === true` (the original API:
   * `getOrCreateTaskContainer(name, cb(err, container, isNew))`).
   */
  getOrCreateTaskContainer(name: string, options?: ContainerOptions): Promise<TaskContainer>;
  getOrCreateTaskContainer(name: string, cb: Cb<TaskContainer>): void;
  getOrCreateTaskContainer(name: string, options: ContainerOptions, cb: Cb<TaskContainer>): void;
  getOrCreateTaskContainer(name: string, a?: ContainerOptions | Cb<TaskContainer>, b?: Cb<TaskContainer>): Promise<TaskContainer> | void {
    const cb = typeof a === 'function' ? a : b;
    const options = typeof a === 'object' && a !== null ? a : {};
    const p = (async () => {
      const n = validateName(name, 'container name');
      if (options.failurePolicy !== undefined && !POLICIES.includes(options.failurePolicy)) {
        throw new ValidationError("failurePolicy must be 'continue' or 'fail-fast'", { path: 'failurePolicy' });
      }
      const metadata = options.metadata === undefined ? {} : validateData(options.metadata, 'metadata');
      if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new ValidationError('metadata must be an object', { path: 'metadata' });
      await this.core.ready();
      const { doc, created } = await getOrCreateContainer(this.core.ctx, n, {
        failurePolicy: options.failurePolicy ?? 'continue',
        metadata: metadata as Record<string, unknown>,
      });
      if (created) this.core.events.emit('container:created', { container: n });
      return new TaskContainer(this.core, doc, created);
    })();
    return withCallback(p, cb, (c) => [c.isNew]);
  }

  /** Deletes a container and all its tasks. Resolves to false if there was none. */
  deleteTaskContainer(name: string): Promise<boolean>;
  deleteTaskContainer(name: string, cb: Cb<boolean>): void;
  deleteTaskContainer(name: string, cb?: Cb<boolean>): Promise<boolean> | void {
    const p = (async () => {
      const n = validateName(name, 'container name');
      await this.core.ready();
      const doc = await findContainer(this.core.ctx, n);
      if (!doc) return false;
      await deleteContainer(this.core.ctx, doc);
      return true;
    })();
    return withCallback(p, cb);
  }

  /** Containers, newest first, filtered by status and name prefix, with cursor pagination. */
  async listContainers(q: ListContainersQuery = {}): Promise<Page<ContainerSummary>> {
    await this.core.ready();
    return listContainers(this.core.ctx, q);
  }

  /** The summary of one container (counters + live progress), or null. */
  async summary(name: string): Promise<ContainerSummary | null> {
    const doc = await findContainer(this.core.ctx, validateName(name, 'container name'));
    return doc ? summarize(this.core.ctx, doc) : null;
  }

  /**
   * Claims the next ready task for a worker that is not `container.run()` (another process, an
   * HTTP worker). Honours per-key limits. Resolves to null when nothing is ready.
   */
  async claimNext(filter: ClaimFilter = {}, options: ClaimOptions = { owner: this.workerId }): Promise<TaskLease | null> {
    await this.core.ready();
    if (filter === null || typeof filter !== 'object') throw new ValidationError('filter must be an object', { path: 'filter' });
    const owner = validateName(options.owner ?? this.workerId, 'owner');
    const leaseMs = options.leaseMs === undefined ? this.core.opts.leaseMs : validatePositiveNumber(options.leaseMs, 'leaseMs', 7 * 86_400_000);
    const names = filter.names === undefined ? undefined : Array.isArray(filter.names) ? filter.names.map((n, i) => validateName(n, `names[${i}]`)) : undefined;
    if (filter.names !== undefined && !names) throw new ValidationError('names must be an array', { path: 'names' });
    const key = filter.key === undefined ? undefined : validateName(filter.key, 'key');
    if (filter.container === undefined) return claimNext(this.core, { names, key, owner, leaseMs });
    const name = validateName(filter.container, 'container');
    // A worker loop claims from the same container over and over: remember its id. A cached id
    // can only be stale if the container was deleted (and maybe re-created): when a claim with a
    // cached id finds nothing, look the name up again once.
    const cached = this.containerIds.get(name);
    if (cached) {
      const lease = await claimNext(this.core, { containerId: cached, names, key, owner, leaseMs });
      if (lease) return lease;
    }
    const doc = await findContainer(this.core.ctx, name);
    if (!doc) {
      this.containerIds.delete(name);
      return null;
    }
    if (cached && cached.equals(doc._id)) return null;
    if (this.containerIds.size >= 1000) this.containerIds.clear();
    this.containerIds.set(name, doc._id);
    return claimNext(this.core, { containerId: doc._id, names, key, owner, leaseMs });
  }

  /**
   * Re-attaches to a task held under `token` (for stateless workers, e.g. over HTTP): rejects
   * with LeaseLostError if the task is no longer running under that token.
   */
  async lease(container: string, task: string, token: number): Promise<TaskLease> {
    const c = await findContainer(this.core.ctx, validateName(container, 'container'));
    if (!c) throw new NotFoundError(`no container named ${JSON.stringify(container)}`, { container });
    validateNonNegativeInt(token, 'token');
    const t = await this.core.ctx.cols.tasks.findOne({ containerId: c._id, name: validateName(task, 'task') });
    if (!t) throw new NotFoundError(`no task named ${JSON.stringify(task)}`, { container, task });
    if (t.state !== 'running' || t.fence !== token) {
      throw new LeaseLostError(`lease token ${token} on task ${JSON.stringify(task)} is not current (task is ${t.state}, token ${t.fence})`, {
        task,
        container,
        token,
        currentToken: t.fence,
        state: t.state,
      });
    }
    // Renew by the duration the lease was last taken or renewed for (both stamped by that write).
    const held = t.lease ? t.lease.expiresAt.getTime() - t.updatedAt.getTime() : 0;
    return new TaskLease(this.core, t, t, held > 0 ? held : undefined);
  }

  /** Sets how many tasks with `key` may run at once across all processes (default 1). */
  async setKeyLimit(key: string, limit: number): Promise<void> {
    await this.core.ready();
    await setKeyLimit(this.core.ctx, validateName(key, 'key'), Math.max(1, validateNonNegativeInt(limit, 'limit', 100_000)));
  }

  /**
   * The recovery sweep: moves tasks whose lease expired back to pending (or to failed, out of
   * retries), recording the interruption; repairs counters of the containers involved. Safe to
   * call from any process at any time.
   */
  async recoverStale(options: { container?: string; limit?: number } = {}): Promise<RecoveryReport> {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new ValidationError('options must be an object', { path: 'options' });
    }
    const limit = options.limit === undefined ? 1000 : Math.max(1, validateNonNegativeInt(options.limit, 'limit', 100_000));
    await this.core.ready();
    let ids = null;
    if (options.container !== undefined) {
      const doc = await findContainer(this.core.ctx, validateName(options.container, 'container'));
      if (!doc) return { recovered: [], reconciled: [], unblocked: 0 };
      ids = [doc._id];
    }
    const s = await sweep(this.core.ctx, ids, limit);
    for (const r of s.expired) this.core.emit('expired', r);
    for (const f of s.finalized) emitContainerChange(this.core.events, f.name, f.result);
    const names = await this.core.ctx.cols.containers.find({ _id: { $in: s.reconciled } }, { projection: { name: 1 } }).toArray();
    return {
      recovered: s.expired.map((r) => ({ container: r.task.container, task: r.task.name, owner: toTaskRecord(r.task).failures.at(-1)?.workerId ?? 'unknown', state: r.task.state })),
      reconciled: names.map((n) => n.name),
      unblocked: s.unblocked,
    };
  }

  /**
   * Removes deletion records (`pts_tombstones`, the changes feed's deletion entries) older than
   * `olderThan`, optionally only for containers whose name starts with `namePrefix`. A feed
   * follower that falls further behind than this misses those deletions. Resolves to the number
   * removed.
   */
  async pruneTombstones(olderThan: Date, options: { namePrefix?: string } = {}): Promise<number> {
    if (!(olderThan instanceof Date) || Number.isNaN(olderThan.getTime())) throw new ValidationError('olderThan must be a valid Date', { path: 'olderThan' });
    if (options === null || typeof options !== 'object' || Array.isArray(options)) throw new ValidationError('options must be an object', { path: 'options' });
    const filter: Record<string, unknown> = { deletedAt: { $lt: olderThan } };
    if (options.namePrefix !== undefined) {
      if (typeof options.namePrefix !== 'string') throw new ValidationError('namePrefix must be a string', { path: 'namePrefix' });
      if (options.namePrefix !== '') filter.container = { $regex: `^${escapeRegex(options.namePrefix)}` };
    }
    await this.core.ready();
    const r = await this.core.ctx.cols.tombstones.deleteMany(filter, { writeConcern: this.core.ctx.writeConcern });
    return r.deletedCount;
  }

  /** Runs {@link recoverStale} every `intervalMs` (unref'd timer; errors are reported as `db:unavailable`). */
  startSweeper(intervalMs: number): void {
    this.stopSweeper();
    this.sweeper = setInterval(() => {
      this.recoverStale().then(
        () => this.core.dbAvailable('sweep'),
        (error: Error) => this.core.dbUnavailable('sweep', error),
      );
    }, intervalMs);
    this.sweeper.unref?.();
  }

  stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  /** Stops the sweeper and closes the connection if this client opened it. */
  async close(): Promise<void> {
    this.stopSweeper();
    if (this.core.ownsConnection) await this.core.connection.close();
  }
}

/** A client with its own options (`connection` or `uri`; by default the default mongoose connection). */
export function createClient(options: ClientOptions = {}): Client {
  return new Client(options);
}
