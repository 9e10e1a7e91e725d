/**
 * The client: the entry point of the library. A thin facade — each method delegates to the
 * store, the runner or the recovery sweep.
 */
import type { ObjectId } from 'mongodb';
import type { Connection } from 'mongoose';
import { withCallback } from './callback';
import { changes, type ChangesPage, type ChangesQuery } from './changes';
import {
  addAlertRule,
  deleteAlertRule,
  listAlertRules,
  listDeliveries,
  setAlertRuleEnabled,
  startAlerts,
  testAlertRule,
  type AlertRule,
  type AlertRuleOptions,
  type AlertsHandle,
  type AlertsOptions,
  type DeliveryRecord,
  type ListDeliveriesQuery,
} from './alerts';
import { TaskContainer } from './container';
import { Core } from './core';
import { DatabaseError, InputsTooLargeError, NotFoundError, ValidationError } from './errors';
import type { PtsEventName, PtsListener } from './events';
import { TaskLease } from './lease';
import { resolveClientOptions, type ClientOptions } from './options';
import { recoverStale, type RecoverOptions } from './recovery';
import {
  applyRetention,
  deleteRetentionPolicy,
  listRetentionPolicies,
  setRetentionPolicy,
  type ApplyRetentionOptions,
  type RetentionPolicy,
  type RetentionPolicyOptions,
  type RetentionReport,
} from './retention';
import { definePipeline, type Pipeline, type PipelineOptions } from './pipeline';
import { listRuns, stepDurations, toRunRecord, toScheduleRecord, type ListRunsQuery, type RunRecord, type ScheduleRecord } from './runs';
import { OVERLAP_POLICIES, resolveSchedule, type OverlapPolicy, type ScheduleOptions } from './schedule';
import { viewSchedule, type ScheduleView } from './schedule-view';
import { following, Scheduler, startSchedulerLoop, type SchedulerHandle, type SchedulerOptions, type SchedulerReport } from './scheduler';
import { startWork, type WorkHandle, type WorkOptions } from './work';
import type { Handlers } from './runner';
import type { ClockOffset } from './server-clock';
import { lostLease } from './store/refusals';
import type { StateCounts } from './states';
import type { ClaimFilter, ClaimOptions, ContainerOptions, ContainerSummary, FailurePolicy, ListContainersQuery, Page, RecoveryReport } from './types';
import { validateData, validateDeadlineMs, validateName, validateNonNegativeInt, validatePositiveNumber } from './validation';

type Cb<T> = (err: Error | null, value?: T, ...extra: unknown[]) => void;

const POLICIES: readonly FailurePolicy[] = ['continue', 'fail-fast'];

/**
 * How long `claimNext({ container: name })` trusts the container id it found for a name before
 * looking the name up again after a claim that found nothing (a container deleted and re-created
 * by another process is claimed from within this long).
 */
export const CONTAINER_RECHECK_MS = 1_000;

/** A new container's `taskTimeoutMs`/`taskStallMs`, validated; only the ones set (absent: the adding client's default). */
function containerDeadlines(o: ContainerOptions): { taskTimeoutMs?: number; taskStallMs?: number } {
  const out: { taskTimeoutMs?: number; taskStallMs?: number } = {};
  if (o.taskTimeoutMs !== undefined && o.taskTimeoutMs !== null) out.taskTimeoutMs = validateDeadlineMs(o.taskTimeoutMs, 'taskTimeoutMs');
  if (o.taskStallMs !== undefined && o.taskStallMs !== null) out.taskStallMs = validateDeadlineMs(o.taskStallMs, 'taskStallMs');
  return out;
}

export class Client {
  /** @internal */
  readonly core: Core;
  private sweeper: NodeJS.Timeout | null = null;
  /** `claimNext({ container })`: name → id, and when the name was last looked up (see CONTAINER_RECHECK_MS). */
  private readonly containerIds = new Map<string, { id: ObjectId; checkedAt: number }>();
  /** Lookups of a container by name in flight (claimNext), shared by the workers that wait on them. */
  private readonly containerLookups = new Map<string, ReturnType<Core['store']['findContainer']>>();
  private readonly pipelines = new Map<string, Pipeline>();
  private readonly scheduler: Scheduler;
  /** Scheduler and worker loops started here, stopped by {@link close}. */
  private readonly loops = new Set<{ stop(): Promise<void> }>();

  constructor(options: ClientOptions = {}) {
    this.core = new Core(resolveClientOptions(options));
    this.scheduler = new Scheduler(this.core, this.pipelines);
    // A container deleted through this client is forgotten at once (see claimNext).
    this.core.events.on('container:deleted', ({ container }) => this.containerIds.delete(container));
    if (this.core.opts.sweepIntervalMs > 0) this.startSweeper(this.core.opts.sweepIntervalMs);
  }

  /** This client's worker id (lease owner). */
  get workerId(): string {
    return this.core.opts.workerId;
  }
  /** Prefix of this client's collection names (`pts_` by default). */
  get collectionPrefix(): string {
    return this.core.opts.collectionPrefix;
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
      const doc = await this.core.store.findContainer(n);
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
      const metadata = options.metadata === undefined ? {} : validateData(options.metadata, 'metadata', await this.core.dataRules());
      if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new ValidationError('metadata must be an object', { path: 'metadata' });
      await this.core.ready();
      const { doc, created } = await this.core.store.getOrCreateContainer(n, {
        failurePolicy: options.failurePolicy ?? 'continue',
        metadata: metadata as Record<string, unknown>,
        ...containerDeadlines(options),
      });
      if (created) this.core.notify.containerCreated(n);
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
      const doc = await this.core.store.findContainer(n);
      if (!doc) return false;
      this.core.notify.containerDeleted(n, await this.core.store.deleteContainer(doc));
      return true;
    })();
    return withCallback(p, cb);
  }

  /** Containers, newest first, filtered by status and name prefix, with cursor pagination. */
  async listContainers(q: ListContainersQuery = {}): Promise<Page<ContainerSummary>> {
    await this.core.ready();
    return this.core.store.listContainers(q);
  }

  /** The summary of one container (counters + live progress), or null. */
  async summary(name: string): Promise<ContainerSummary | null> {
    const doc = await this.core.store.findContainer(validateName(name, 'container name'));
    return doc ? this.core.store.summarize(doc) : null;
  }

  /**
   * Resolves when the database answers a `ping` within `timeoutMs`; rejects with a transient
   * `DatabaseError` otherwise (readiness checks, `/readyz`).
   */
  async ping(timeoutMs = 2_000): Promise<void> {
    if (this.core.connection.readyState !== 1) throw new DatabaseError('the client is not connected', { op: 'ping' }, undefined, true);
    await this.core.store.ping(timeoutMs);
  }

  /**
   * The measured offset of this process's clock to the database server's, which every lease
   * expiry, deadline and stored time is computed on (see "Time" in docs/api.md). Null while not
   * measured yet (it is, before the first operation) or with `serverClock: false`.
   */
  clockOffset(): ClockOffset | null {
    return this.core.serverClock?.offset() ?? null;
  }

  /**
   * Measures the clock offset now (it is also measured before the first operation, every
   * `clockSyncIntervalMs` and on reconnect) and resolves to it. With a {@link ManualClock} it is
   * measured once only (again would undo the test's `advance()`s). Null with `serverClock: false`.
   */
  async syncClock(): Promise<ClockOffset | null> {
    const clock = this.core.serverClock;
    if (!clock) return null;
    if (!clock.offset()) await this.core.clockReady();
    else if (clock.resyncs) await clock.sync();
    return clock.offset();
  }

  /** The `metadata` of a container (one projected read), or null if there is none. */
  async containerMetadata(name: string): Promise<Record<string, unknown> | null> {
    return this.core.store.containerMetadata(validateName(name, 'container name'));
  }

  /** Tasks per state summed over every container (from the containers' counters: no task is read), and the number of containers. */
  async totals(): Promise<{ containers: number; tasks: StateCounts }> {
    await this.core.ready();
    return this.core.store.totals();
  }

  /**
   * A page of the changes feed (see {@link ChangesQuery}): every task and container in the order
   * of their last write, deletions included. Pass `next` back as `since` to follow it.
   */
  changes(q: ChangesQuery = {}): Promise<ChangesPage> {
    return changes(this.core, q);
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
    if (options.includeInputs !== undefined && typeof options.includeInputs !== 'boolean') {
      throw new ValidationError('includeInputs must be a boolean', { path: 'includeInputs' });
    }
    const inputs = options.includeInputs === true;
    if (filter.container === undefined) return this.claim({ names, key, owner, leaseMs }, inputs);
    const name = validateName(filter.container, 'container');
    // A worker loop claims from the same container over and over: remember its id. A cached id
    // can only be stale if the container was deleted (and maybe re-created under the same name).
    // When a claim with a cached id finds nothing, the name is looked up again — at most once
    // per CONTAINER_RECHECK_MS, so idle workers polling an empty container cost one command per
    // poll, not two. A container deleted through this client is forgotten at once; one deleted
    // and re-created by another process is found within CONTAINER_RECHECK_MS.
    const cached = this.containerIds.get(name);
    if (cached) {
      const lease = await this.claim({ containerId: cached.id, names, key, owner, leaseMs }, inputs);
      if (lease) return lease;
      if (this.core.opts.clock.now().getTime() - cached.checkedAt < CONTAINER_RECHECK_MS) return null;
    }
    // Workers starting together share one lookup of the name.
    let lookup = this.containerLookups.get(name);
    if (!lookup) {
      lookup = this.core.store.findContainer(name).finally(() => this.containerLookups.delete(name));
      this.containerLookups.set(name, lookup);
    }
    const doc = await lookup;
    if (!doc) {
      this.containerIds.delete(name);
      return null;
    }
    if (this.containerIds.size >= 1000 && !cached) this.containerIds.clear();
    this.containerIds.set(name, { id: doc._id, checkedAt: this.core.opts.clock.now().getTime() });
    if (cached && cached.id.equals(doc._id)) return null;
    return this.claim({ containerId: doc._id, names, key, owner, leaseMs }, inputs);
  }

  private async claim(q: Parameters<Core['store']['claimNext']>[0], withInputs = false): Promise<TaskLease | null> {
    const r = await this.core.store.claimNext(q);
    for (const e of r.recovered) this.core.notify.transition(e);
    if (!r.claimed) return null;
    this.core.notify.transition(r.claimed);
    const lease = new TaskLease(this.core, r.claimed.task, r.claimed.task, q.leaseMs);
    if (withInputs) {
      try {
        await lease.loadInputs();
      } catch (err) {
        // Too large: the task was failed for good. Any other error (the database went away): the
        // caller never gets the lease, so hand the task back rather than strand it until expiry.
        if (!(err instanceof InputsTooLargeError)) await lease.releaseValidated({}).catch(() => undefined);
        throw err;
      }
    }
    return lease;
  }

  /**
   * Re-attaches to a task held under `token` (for stateless workers, e.g. over HTTP): rejects
   * with LeaseLostError if the task is no longer running under that token.
   */
  async lease(container: string, task: string, token: number): Promise<TaskLease> {
    const c = await this.core.store.findContainer(validateName(container, 'container'));
    if (!c) throw new NotFoundError(`no container named ${JSON.stringify(container)}`, { container });
    validateNonNegativeInt(token, 'token');
    const t = await this.core.store.findTask(c._id, validateName(task, 'task'));
    if (!t) throw new NotFoundError(`no task named ${JSON.stringify(task)}`, { container, task });
    if (t.state !== 'running' || t.fence !== token) throw lostLease({ name: t.name, container, fence: token }, 'lease', t, this.core.ctx.clock.now());
    // Renew by the duration the lease was granted or last renewed for (stored with it; leases
    // granted before it was stored: as long as the last write that set the expiry).
    const held = t.lease?.ms ?? (t.lease ? t.lease.expiresAt.getTime() - t.updatedAt.getTime() : 0);
    return new TaskLease(this.core, t, t, held > 0 ? held : undefined);
  }

  /** Sets how many tasks with `key` may run at once across all processes (default 1). */
  async setKeyLimit(key: string, limit: number): Promise<void> {
    await this.core.ready();
    await this.core.store.setKeyLimit(validateName(key, 'key'), Math.max(1, validateNonNegativeInt(limit, 'limit', 100_000)));
  }

  /**
   * The recovery sweep: moves tasks whose lease expired back to pending (or to failed, out of
   * retries), recording the interruption; repairs counters of the containers involved. Safe to
   * call from any process at any time.
   */
  async recoverStale(options: RecoverOptions = {}): Promise<RecoveryReport> {
    return recoverStale(this.core, options);
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
    if (options.namePrefix !== undefined && typeof options.namePrefix !== 'string') throw new ValidationError('namePrefix must be a string', { path: 'namePrefix' });
    await this.core.ready();
    return this.core.store.pruneTombstones(olderThan, options.namePrefix || undefined);
  }

  /** Runs {@link recoverStale} every `intervalMs` (unref'd timer; errors are reported as `db:unavailable`). */
  startSweeper(intervalMs: number): void {
    this.stopSweeper();
    this.sweeper = setInterval(() => {
      this.recoverStale().then(
        () => this.core.notify.dbAvailable('sweep'),
        (error: Error) => this.core.notify.dbUnavailable('sweep', error),
      );
    }, intervalMs);
    this.sweeper.unref?.();
  }

  stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  // ---- pipelines and schedules (docs/schedules.md): each method delegates to scheduler.ts / runs.ts / work.ts

  /**
   * Defines a pipeline on this client: the tasks of each run (or a function of the run's slot
   * returning them). Every process that schedules, triggers or works on the pipeline defines it.
   * Defining the same name again replaces the definition (new runs use it; the run history shows
   * what changed).
   */
  definePipeline(name: string, options: PipelineOptions): Pipeline {
    const p = definePipeline(name, options);
    this.pipelines.set(p.name, p);
    return p;
  }

  /**
   * Creates or updates the schedule `options.name` (default: the pipeline's name). Calling it
   * again with the same cron, time zone and jitter keeps the next slot (every process may call it
   * at start-up without losing the slots missed while all were down); a changed one starts from now.
   */
  async schedule(pipeline: string | Pipeline, options: ScheduleOptions): Promise<ScheduleRecord> {
    const r = resolveSchedule(typeof pipeline === 'string' ? pipeline : pipeline?.name, options);
    await this.core.ready();
    return toScheduleRecord((await this.core.store.saveSchedule(r, (from) => following(r, from))).doc);
  }

  async getSchedule(name: string): Promise<ScheduleRecord | null> {
    await this.core.ready();
    const d = await this.core.store.findSchedule(validateName(name, 'schedule'));
    return d ? toScheduleRecord(d) : null;
  }

  /** A schedule with its next fire times and recent skipped slots (what `pts schedule list`, the HTTP API and the dashboard show), or null. */
  async describeSchedule(name: string): Promise<ScheduleView | null> {
    await this.core.ready();
    const d = await this.core.store.findSchedule(validateName(name, 'schedule'));
    return d ? viewSchedule(this.core, d) : null;
  }

  /** Every schedule (of one pipeline) as {@link describeSchedule} shows it, by name. */
  async describeSchedules(query: { pipeline?: string } = {}): Promise<ScheduleView[]> {
    await this.core.ready();
    const pipelines = query?.pipeline === undefined ? undefined : [validateName(query.pipeline, 'pipeline')];
    const docs = await this.core.store.listSchedules(pipelines);
    return Promise.all(docs.map((d) => viewSchedule(this.core, d)));
  }

  /** Every schedule (of one pipeline), by name. */
  async listSchedules(query: { pipeline?: string } = {}): Promise<ScheduleRecord[]> {
    await this.core.ready();
    const pipelines = query?.pipeline === undefined ? undefined : [validateName(query.pipeline, 'pipeline')];
    return (await this.core.store.listSchedules(pipelines)).map(toScheduleRecord);
  }

  /** Pauses a schedule (its slots are recorded as skipped, reason `paused`). Resolves to false if it was already paused. */
  async pauseSchedule(name: string, note: string | null = null): Promise<boolean> {
    if (note !== null && typeof note !== 'string') throw new ValidationError('note must be a string', { path: 'note' });
    await this.core.ready();
    const n = validateName(name, 'schedule');
    const d = await this.core.store.setSchedulePaused(n, true, note);
    if (!d && !(await this.core.store.findSchedule(n))) throw new NotFoundError(`no schedule named ${JSON.stringify(n)}`, { schedule: n });
    if (d) this.core.notify.schedulePaused(n, note);
    return d !== null;
  }

  /** Unpauses a schedule: the slots due while it was paused are recorded as skipped; the next slot after now fires. */
  async unpauseSchedule(name: string): Promise<ScheduleRecord> {
    return toScheduleRecord(await this.scheduler.unpause(validateName(name, 'schedule')));
  }

  /** Deletes a schedule (its run history and runs are kept). Resolves to false if there was none. */
  async deleteSchedule(name: string): Promise<boolean> {
    await this.core.ready();
    return this.core.store.deleteSchedule(validateName(name, 'schedule'));
  }

  /** Fires the schedule now (slot: the database clock's current time), under its overlap policy. */
  async triggerSchedule(name: string): Promise<RunRecord> {
    return toRunRecord(await this.scheduler.trigger(validateName(name, 'schedule')));
  }

  /**
   * Fires the schedule's slots in `[from, to]` (to in the past) through the same path as the
   * scheduler, under `overlap` (default: the schedule's). A slot already decided keeps its record.
   */
  async backfillSchedule(name: string, range: { from: Date; to: Date; overlap?: OverlapPolicy }): Promise<RunRecord[]> {
    if (range === null || typeof range !== 'object') throw new ValidationError('range must be an object', { path: 'range' });
    for (const k of ['from', 'to'] as const) {
      if (!(range[k] instanceof Date) || Number.isNaN(range[k].getTime())) throw new ValidationError(`${k} must be a valid Date`, { path: k });
    }
    if (range.from > range.to) throw new ValidationError('from must not be after to', { path: 'from' });
    if (range.overlap !== undefined && !OVERLAP_POLICIES.includes(range.overlap)) throw new ValidationError(`overlap must be one of ${OVERLAP_POLICIES.join(', ')}`, { path: 'overlap' });
    return (await this.scheduler.backfill(validateName(name, 'schedule'), range.from, range.to, range.overlap)).map((d) => toRunRecord(d));
  }

  /**
   * One scheduler pass (what {@link startScheduler} runs every `intervalMs`): settles the open runs
   * of this client's pipelines and decides every due slot. Safe from any number of processes.
   */
  runSchedulerPass(): Promise<SchedulerReport> {
    return this.scheduler.pass();
  }

  /** Runs the scheduler for this client's pipelines until `stop()`. */
  startScheduler(options: SchedulerOptions = {}): SchedulerHandle {
    return this.track(startSchedulerLoop(this.core, this.scheduler, options));
  }

  /** Works on the pipeline's runs (containers the schedulers started), oldest first, until `stop()`. */
  work(pipeline: string | Pipeline, handlers: Handlers, options: WorkOptions = {}): WorkHandle {
    return this.track(startWork(this.core, typeof pipeline === 'string' ? pipeline : pipeline?.name, handlers, options));
  }

  // ---- alerts (lib/alerts.ts; docs/api.md#alerts)

  /** Stores an alert rule: `events` of containers under `prefix`, delivered to the webhook `url`, signed with `secret`. */
  addAlertRule(rule: AlertRuleOptions): Promise<AlertRule> {
    return addAlertRule(this.core, rule);
  }
  /** Every alert rule, by name (secrets are never returned). */
  listAlertRules(): Promise<AlertRule[]> {
    return listAlertRules(this.core);
  }
  /** Deletes an alert rule; false if there was none. */
  deleteAlertRule(name: string): Promise<boolean> {
    return deleteAlertRule(this.core, name);
  }
  /** Enables or disables an alert rule. */
  setAlertRuleEnabled(name: string, enabled: boolean): Promise<AlertRule> {
    return setAlertRuleEnabled(this.core, name, enabled);
  }
  /** Sends a signed test body to the rule's webhook now and says how it answered (nothing stored). */
  testAlertRule(name: string): Promise<{ statusCode: number | null; error: string | null; body: string }> {
    return testAlertRule(this.core, name);
  }
  /** A page of alert deliveries, newest first, each with its attempts. */
  listDeliveries(query: ListDeliveriesQuery = {}): Promise<{ items: DeliveryRecord[]; nextCursor: string | null }> {
    return listDeliveries(this.core, query);
  }
  /** Delivers alerts while this process holds the alert lease (one process at a time), until `stop()`. */
  startAlerts(options: AlertsOptions = {}): AlertsHandle {
    return this.track(startAlerts(this.core, options));
  }

  // ---- retention (lib/retention.ts; docs/api.md#retention)

  /**
   * Creates or replaces the retention policy of containers whose name starts with `prefix`
   * (the longest matching prefix governs a container). Applied by every sweep, in bounded batches.
   */
  setRetentionPolicy(prefix: string, policy: RetentionPolicyOptions): Promise<RetentionPolicy> {
    return setRetentionPolicy(this.core, prefix, policy);
  }
  /** Every retention policy, by prefix. */
  listRetentionPolicies(): Promise<RetentionPolicy[]> {
    return listRetentionPolicies(this.core);
  }
  /** Deletes the retention policy of `prefix`; false if there was none. */
  deleteRetentionPolicy(prefix: string): Promise<boolean> {
    return deleteRetentionPolicy(this.core, prefix);
  }
  /** One retention pass now (what each sweep runs), or with `dryRun` the list of what it would delete. */
  applyRetention(options: ApplyRetentionOptions = {}): Promise<RetentionReport> {
    return applyRetention(this.core, options);
  }

  private track<H extends { stop(): Promise<void> }>(h: H): H {
    const stop = h.stop.bind(h);
    h.stop = () => {
      this.loops.delete(h);
      return stop();
    };
    this.loops.add(h);
    return h;
  }

  /** A page of the pipeline's run history, newest slot first: each slot's decision, steps with durations, definition changes. */
  listRuns(pipeline: string | Pipeline, query: ListRunsQuery = {}): Promise<{ items: RunRecord[]; nextCursor: string | null }> {
    return listRuns(this.core, typeof pipeline === 'string' ? pipeline : pipeline?.name, query);
  }

  /** Each step's durations over the pipeline's newest `limit` runs (default 50). */
  stepDurations(pipeline: string | Pipeline, options: { limit?: number } = {}): Promise<Record<string, Array<{ slot: Date; durationMs: number }>>> {
    return stepDurations(this.core, typeof pipeline === 'string' ? pipeline : pipeline?.name, options?.limit);
  }

  /** Stops the sweeper and the scheduler and worker loops started here, and closes the connection if this client opened it. */
  async close(): Promise<void> {
    this.stopSweeper();
    await Promise.all([...this.loops].map((h) => h.stop()));
    this.core.close();
    if (this.core.ownsConnection) await this.core.connection.close();
  }
}

/** A client with its own options (`connection` or `uri`; by default the default mongoose connection). */
export function createClient(options: ClientOptions = {}): Client {
  return new Client(options);
}
