/**
 * Every task state transition, one function each. Each is ONE conditional write to the task
 * (its precondition — state, fencing token — inside the filter) followed by one `$inc` of the
 * container's counters. Nothing here loads a document, changes it and saves it back.
 * @internal
 */
import { ObjectId, Timestamp } from 'mongodb';
import { InvalidTransitionError, LeaseLostError, NotFoundError } from '../errors';
import type { TaskState } from '../states';
import type { ResolvedTaskSpec } from '../validation';
import type { StoreContext } from './context';
import { stamp } from './context';
import { addDeltas, applyCounters, isNoop, moveDelta, type CounterDelta, type CounterResult } from './counters';
import type { ContainerDoc, FailureDoc, LeaseDoc, TaskDoc } from './documents';
import { releaseSlot, renewSlot, type SlotGrant } from './slots';

/** The outcome of a transition: the task after it, the state it left and the counter write's result. */
export interface TransitionResult {
  task: TaskDoc;
  from: TaskState;
  container: CounterResult;
}

/** What a worker knows about a task it holds: the task as claimed. Its fence is the lease token. */
export type HeldTask = Pick<
  TaskDoc,
  | '_id'
  | 'containerId'
  | 'container'
  | 'name'
  | 'fence'
  | 'weight'
  | 'attempts'
  | 'invokeCount'
  | 'maxRetries'
  | 'failureCount'
  | 'retryDelayMs'
  | 'backoff'
  | 'maxRetryDelayMs'
  | 'startedAt'
  | 'key'
> & { lease: LeaseDoc | null };

const ONE = { returnDocument: 'after' as const };

/** weight × percentage: the task's share of its container's progress sum. */
function wp(t: Pick<TaskDoc, 'weight' | 'percentageComplete'>): number {
  return t.weight * t.percentageComplete;
}

async function counters(ctx: StoreContext, containerId: ObjectId, delta: CounterDelta, running = false): Promise<CounterResult> {
  if (isNoop(delta) && !running) return { container: null, statusChange: null };
  return applyCounters(ctx, containerId, delta, running);
}

/** Why a fenced write matched nothing: the task is gone, or the caller's lease is. */
async function fencedFailure(ctx: StoreContext, held: HeldTask, op: string): Promise<never> {
  const cur = await ctx.cols.tasks.findOne({ _id: held._id }, { projection: { state: 1, fence: 1, lease: 1 } });
  if (!cur) throw new NotFoundError(`task ${JSON.stringify(held.name)} no longer exists`, { task: held.name, op });
  throw new LeaseLostError(
    `lease on task ${JSON.stringify(held.name)} lost (token ${held.fence}; task is ${cur.state}, token ${cur.fence}${
      cur.lease ? `, held by ${cur.lease.owner}` : ''
    })`,
    { task: held.name, container: held.container, op, token: held.fence, currentToken: cur.fence, state: cur.state },
  );
}

/** Why a write by name matched nothing: no such task, or it is in a state the transition does not start from. */
async function namedFailure(ctx: StoreContext, containerId: ObjectId, name: string, op: string, allowed: readonly TaskState[]): Promise<never> {
  const cur = await ctx.cols.tasks.findOne({ containerId, name }, { projection: { state: 1, container: 1 } });
  refusal(name, op, allowed, cur);
}

/** The error for a by-name transition refused on what was read (`cur`: the task, or null). */
function refusal(name: string, op: string, allowed: readonly TaskState[], cur: { state: TaskState } | null): never {
  if (!cur) throw new NotFoundError(`no task named ${JSON.stringify(name)} in this container`, { task: name, op });
  if (allowed.includes(cur.state)) {
    // It changed between the attempt and this read (added, or moved and back): say so rather
    // than "it is pending (allowed from pending)".
    throw new InvalidTransitionError(`cannot ${op} task ${JSON.stringify(name)}: it changed concurrently (now ${cur.state}); retry`, {
      task: name,
      op,
      state: cur.state,
      allowed,
      concurrent: true,
    });
  }
  throw new InvalidTransitionError(`cannot ${op} task ${JSON.stringify(name)}: it is ${cur.state} (allowed from ${allowed.join(', ')})`, {
    task: name,
    op,
    state: cur.state,
    allowed,
  });
}

function newTaskDoc(
  container: Pick<ContainerDoc, '_id' | 'name'>,
  spec: ResolvedTaskSpec,
  waitingOn: string[],
  hasDependents: boolean,
  now: Date,
): Omit<TaskDoc, '_id' | 'changedAt' | 'rev' | 'updatedAt'> {
  return {
    containerId: container._id,
    container: container.name,
    name: spec.name,
    state: 'pending',
    dependsOn: spec.dependsOn,
    waitingOn,
    hasDependents,
    weight: spec.weight,
    percentageComplete: 0,
    statusText: null,
    taskData: spec.data,
    processingData: null,
    result: null,
    invokeCount: 0,
    attempts: 0,
    maxRetries: spec.maxRetries,
    retryDelayMs: spec.retryDelayMs,
    backoff: spec.backoff,
    maxRetryDelayMs: spec.maxRetryDelayMs,
    failures: [],
    failureCount: 0,
    lease: null,
    fence: 0,
    key: spec.key,
    runAfter: now,
    createdAt: now,
    lastInvokedAt: null,
    endedAt: null,
    durationMs: null,
  };
}

/**
 * Adds tasks (idempotent by name: an existing task is returned unchanged). New tasks wait on
 * all their dependencies; the ones already satisfied are pulled right after the insert. The
 * order — mark the dependencies `hasDependents`, insert, then re-read their states — means a
 * dependency that succeeds concurrently is either seen here as satisfied or, having seen the
 * mark, unblocks the new task itself. One upsert command for the batch, one counter write, and
 * for dependencies on tasks that already exist: one mark, one read, at most one pull each.
 */
export async function addTasks(
  ctx: StoreContext,
  container: Pick<ContainerDoc, '_id' | 'name'>,
  specs: ResolvedTaskSpec[],
  existing: ReadonlySet<string>,
): Promise<{ tasks: TaskDoc[]; created: boolean[]; container: CounterResult }> {
  const now = ctx.clock.now();
  const depended = new Set(specs.flatMap((s) => s.dependsOn));
  const preexisting = [...depended].filter((d) => existing.has(d));
  if (preexisting.length > 0) {
    await ctx.cols.tasks.updateMany(
      { containerId: container._id, name: { $in: preexisting }, hasDependents: { $ne: true } },
      { $set: { hasDependents: true } },
      { writeConcern: ctx.writeConcern },
    );
  }
  const docs = specs.map((s) => newTaskDoc(container, s, [...s.dependsOn], depended.has(s.name), now));
  const created: boolean[] = [];
  const tasks: TaskDoc[] = [];
  let delta = moveDelta(null, null, 0, 0, 0);
  if (docs.length === 1) {
    const r = await upsertTask(ctx, docs[0], now);
    tasks.push(r.task);
    created.push(r.created);
  } else {
    // insertMany with client-side ids: no query per task. A duplicate key (the name exists, or a
    // concurrent adder won) marks the task as existing; those are read back.
    const full = docs.map((d) => ({ ...d, _id: new ObjectId(), updatedAt: now, rev: 1, changedAt: new Timestamp({ t: 0, i: 0 }) }) as TaskDoc);
    const dup = new Set<number>();
    try {
      await ctx.cols.tasks.insertMany(full, { ordered: false, writeConcern: ctx.writeConcern });
    } catch (err) {
      const e = err as { writeErrors?: Array<{ index: number; code: number }> | { index: number; code: number } };
      const writeErrors = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
      if (writeErrors.length === 0 || writeErrors.some((w) => w.code !== 11000)) throw err;
      for (const w of writeErrors) dup.add(w.index);
    }
    const inserted = full.filter((_, i) => !dup.has(i));
    if (inserted.length > 0) {
      // The server-assigned change stamp, for the changes feed (an insert cannot use $currentDate).
      await ctx.cols.tasks.updateMany(
        { _id: { $in: inserted.map((t) => t._id) } },
        { $currentDate: { changedAt: { $type: 'timestamp' } } },
        { writeConcern: ctx.writeConcern },
      );
    }
    const existing = dup.size
      ? await ctx.cols.tasks.find({ containerId: container._id, name: { $in: [...dup].map((i) => full[i].name) } }).toArray()
      : [];
    const byName = new Map(existing.map((t) => [t.name, t]));
    full.forEach((d, i) => {
      tasks.push(dup.has(i) ? byName.get(d.name)! : d);
      created.push(!dup.has(i));
    });
  }
  tasks.forEach((t, i) => {
    if (created[i]) delta = addDeltas(delta, moveDelta(null, 'pending', t.weight, 0, 0));
  });
  const c = await counters(ctx, container._id, delta);
  if (preexisting.length > 0 && created.some(Boolean)) {
    const done = await ctx.cols.tasks
      .find({ containerId: container._id, name: { $in: preexisting }, state: { $in: ['succeeded', 'skipped'] } }, { projection: { name: 1 } })
      .toArray();
    for (const d of done) await unblockDependents(ctx, container._id, d.name);
    if (done.length > 0) {
      const fresh = await ctx.cols.tasks.find({ _id: { $in: tasks.map((t) => t._id) } }).toArray();
      const byId = new Map(fresh.map((t) => [t._id.toHexString(), t]));
      tasks.forEach((t, i) => (tasks[i] = byId.get(t._id.toHexString()) ?? t));
    }
  }
  return { tasks, created, container: c };
}

/** One idempotent add; a duplicate-key error from a concurrent upsert is retried as a plain match. */
async function upsertTask(ctx: StoreContext, doc: ReturnType<typeof newTaskDoc>, now: Date): Promise<{ task: TaskDoc; created: boolean }> {
  const st = stamp(now);
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await ctx.cols.tasks.findOneAndUpdate(
        { containerId: doc.containerId, name: doc.name },
        { $setOnInsert: { ...doc, updatedAt: now, rev: 1 }, $currentDate: st.$currentDate },
        { upsert: true, returnDocument: 'after', includeResultMetadata: true, writeConcern: ctx.writeConcern },
      );
      return { task: res.value!, created: res.lastErrorObject?.updatedExisting === false };
    } catch (err) {
      if ((err as { code?: number }).code === 11000 && attempt < 3) continue;
      throw err;
    }
  }
}

/** Query of {@link claimTask}. `key: null` claims only tasks without a key. */
export interface ClaimQuery {
  containerId?: ObjectId;
  names?: string[];
  key?: string | null;
}

/** pending → running: takes the oldest ready task matching the query and leases it to `owner`. */
export async function claimTask(
  ctx: StoreContext,
  q: ClaimQuery,
  owner: string,
  leaseMs: number,
  grant?: SlotGrant,
): Promise<TransitionResult | null> {
  const now = ctx.clock.now();
  const filter: Record<string, unknown> = { state: 'pending', 'waitingOn.0': { $exists: false }, runAfter: { $lte: now } };
  if (q.containerId) filter.containerId = q.containerId;
  if (q.names) filter.name = { $in: q.names };
  if (q.key !== undefined) filter.key = q.key;
  const st = stamp(now);
  const task = await ctx.cols.tasks.findOneAndUpdate(
    filter,
    {
      $set: {
        ...st.$set,
        state: 'running',
        lease: { owner, expiresAt: new Date(now.getTime() + leaseMs), ...(grant ? { slot: grant.slot, claim: grant.claim } : {}) },
        lastInvokedAt: now,
        endedAt: null,
        durationMs: null,
      },
      $min: { startedAt: now },
      $inc: { ...st.$inc, fence: 1, invokeCount: 1, attempts: 1 },
      $currentDate: st.$currentDate,
    },
    { ...ONE, sort: { _id: 1 }, writeConcern: ctx.writeConcern },
  );
  if (!task) return null;
  const container = await counters(ctx, task.containerId, moveDelta('pending', 'running', task.weight, wp(task), wp(task)), true);
  return { task, from: 'pending', container };
}

/** What a worker may report while it runs a task. */
export interface ProgressPatch {
  percentageComplete?: number;
  statusText?: string | null;
  processingData?: unknown;
}

function patchFields(patch: ProgressPatch): Record<string, unknown> {
  const set: Record<string, unknown> = {};
  if (patch.percentageComplete !== undefined) set.percentageComplete = patch.percentageComplete;
  if (patch.statusText !== undefined) set.statusText = patch.statusText;
  if (patch.processingData !== undefined) set.processingData = patch.processingData;
  return set;
}

/**
 * Heartbeat (with optional progress/status/checkpoint) of a held task: renews the lease. ONE
 * command — running tasks are not part of the container's progress sum, so no counter write.
 */
export async function heartbeat(ctx: StoreContext, held: HeldTask, patch: ProgressPatch, leaseMs: number): Promise<Date> {
  const now = ctx.clock.now();
  const expiresAt = new Date(now.getTime() + leaseMs);
  const st = stamp(now);
  const r = await ctx.cols.tasks.updateOne(
    { _id: held._id, state: 'running', fence: held.fence },
    { $set: { ...st.$set, ...patchFields(patch), 'lease.expiresAt': expiresAt }, $inc: st.$inc, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
  if (r.matchedCount === 0) await fencedFailure(ctx, held, 'heartbeat');
  await renewSlot(ctx, held.lease, expiresAt);
  return expiresAt;
}

/** `$pull`s a satisfied dependency from the tasks waiting on it. */
export async function unblockDependents(ctx: StoreContext, containerId: ObjectId, name: string): Promise<number> {
  const r = await ctx.cols.tasks.updateMany(
    { containerId, waitingOn: name },
    { $pull: { waitingOn: name }, $set: { updatedAt: ctx.clock.now() }, $inc: { rev: 1 }, $currentDate: { changedAt: { $type: 'timestamp' } } },
    { writeConcern: ctx.writeConcern },
  );
  return r.modifiedCount;
}

/** running → succeeded, by the lease holder. Stores the result and the last reported progress. */
export async function succeedTask(ctx: StoreContext, held: HeldTask, result: unknown, patch: ProgressPatch = {}): Promise<TransitionResult> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const started = held.startedAt ?? now;
  const task = await ctx.cols.tasks.findOneAndUpdate(
    { _id: held._id, state: 'running', fence: held.fence },
    {
      $set: {
        ...st.$set,
        ...patchFields(patch),
        state: 'succeeded',
        percentageComplete: 100,
        result: result === undefined ? null : result,
        lease: null,
        endedAt: now,
        durationMs: now.getTime() - started.getTime(),
      },
      $inc: st.$inc,
      $currentDate: st.$currentDate,
    },
    { ...ONE, writeConcern: ctx.writeConcern },
  );
  if (!task) return fencedFailure(ctx, held, 'succeed');
  await releaseSlot(ctx, held.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', 'succeeded', task.weight, 0, wp(task)));
  if (task.hasDependents !== false) await unblockDependents(ctx, task.containerId, task.name);
  return { task, from: 'running', container };
}

/** A failure to record. */
export interface FailureInput {
  message: string;
  stack?: string | null;
  code?: string | null;
  /** false: fail for good now, whatever the retries left. @defaultValue true */
  retryable?: boolean;
}

/** Delay before attempt `attempts + 1`, after `attempts` failed attempts. */
export function retryDelay(t: Pick<TaskDoc, 'retryDelayMs' | 'backoff' | 'maxRetryDelayMs'>, attempts: number): number {
  if (t.backoff === 'fixed') return Math.min(t.retryDelayMs, t.maxRetryDelayMs);
  return Math.min(t.retryDelayMs * 2 ** Math.max(0, attempts - 1), t.maxRetryDelayMs);
}

function failureUpdate(ctx: StoreContext, held: HeldTask, f: FailureDoc, now: Date, retryable: boolean): { update: Record<string, unknown>; to: TaskState } {
  const retry = retryable && held.attempts <= held.maxRetries;
  const to: TaskState = retry ? 'pending' : 'failed';
  const slot = held.failureCount % ctx.failureHistoryLimit;
  const st = stamp(now);
  const set: Record<string, unknown> = { ...st.$set, state: to, lease: null, [`failures.${slot}`]: f };
  if (retry) set.runAfter = new Date(now.getTime() + retryDelay(held, held.attempts));
  else {
    set.endedAt = now;
    set.durationMs = now.getTime() - (held.startedAt ?? now).getTime();
  }
  return { update: { $set: set, $inc: { ...st.$inc, failureCount: 1 }, $currentDate: st.$currentDate }, to };
}

/** running → pending (retry after backoff) or → failed (out of retries), by the lease holder. */
export async function failTask(ctx: StoreContext, held: HeldTask, failure: FailureInput, patch: ProgressPatch = {}): Promise<TransitionResult> {
  const now = ctx.clock.now();
  const f: FailureDoc = {
    attempt: held.invokeCount,
    at: now,
    message: failure.message,
    stack: failure.stack ?? null,
    code: failure.code ?? null,
    workerId: held.lease?.owner ?? null,
    kind: 'error',
  };
  const { update, to } = failureUpdate(ctx, held, f, now, failure.retryable !== false);
  Object.assign(update.$set as object, patchFields(patch));
  const task = await ctx.cols.tasks.findOneAndUpdate(
    { _id: held._id, state: 'running', fence: held.fence, failureCount: held.failureCount },
    update,
    { ...ONE, writeConcern: ctx.writeConcern },
  );
  if (!task) return fencedFailure(ctx, held, 'fail');
  await releaseSlot(ctx, held.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', to, task.weight, 0, wp(task)));
  return { task, from: 'running', container };
}

/**
 * running → pending by the lease holder, without counting a failure: the worker is shutting
 * down and hands the task back (its checkpoint stays; the attempt is not charged to the retry
 * budget). Anyone may claim it again at once.
 */
export async function releaseTask(ctx: StoreContext, held: HeldTask, patch: ProgressPatch = {}): Promise<TransitionResult> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const task = await ctx.cols.tasks.findOneAndUpdate(
    { _id: held._id, state: 'running', fence: held.fence },
    {
      $set: { ...st.$set, ...patchFields(patch), state: 'pending', lease: null, runAfter: now },
      $inc: { ...st.$inc, attempts: -1 },
      $currentDate: st.$currentDate,
    },
    { ...ONE, writeConcern: ctx.writeConcern },
  );
  if (!task) return fencedFailure(ctx, held, 'release');
  await releaseSlot(ctx, held.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', 'pending', task.weight, 0, wp(task)));
  return { task, from: 'running', container };
}

/**
 * running → pending/failed for a task whose lease expired (its worker is presumed dead). The
 * filter carries the expiry and the fencing token read by the sweep, so a heartbeat that lands
 * first wins and nothing is recovered.
 */
export async function expireLease(ctx: StoreContext, seen: HeldTask): Promise<TransitionResult | null> {
  const now = ctx.clock.now();
  const f: FailureDoc = {
    attempt: seen.invokeCount,
    at: now,
    message: `lease of ${seen.lease?.owner ?? 'unknown worker'} expired at ${seen.lease?.expiresAt.toISOString() ?? '?'}: attempt interrupted`,
    stack: null,
    code: 'LEASE_EXPIRED',
    workerId: seen.lease?.owner ?? null,
    kind: 'interrupted',
  };
  const { update, to } = failureUpdate(ctx, seen, f, now, true);
  (update.$set as Record<string, unknown>).runAfter = now;
  const task = await ctx.cols.tasks.findOneAndUpdate(
    { _id: seen._id, state: 'running', fence: seen.fence, failureCount: seen.failureCount, 'lease.expiresAt': { $lte: now } },
    update,
    { ...ONE, writeConcern: ctx.writeConcern },
  );
  if (!task) return null;
  await releaseSlot(ctx, seen.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', to, task.weight, 0, wp(task)));
  return { task, from: 'running', container };
}

/** Arguments of the admin transitions, which address a task by container and name. */
export interface NamedTask {
  containerId: ObjectId;
  name: string;
}

async function namedTransition(
  ctx: StoreContext,
  t: NamedTask,
  op: string,
  from: readonly TaskState[],
  build: (now: Date) => { set: Record<string, unknown>; to: TaskState | null; extra?: Record<string, unknown> },
): Promise<TransitionResult> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const b = build(now);
  const set: Record<string, unknown> = { ...st.$set, ...b.set, ...(b.to ? { state: b.to } : {}) };
  const extraInc = (b.extra?.$inc as Record<string, number> | undefined) ?? {};
  const before = await ctx.cols.tasks.findOneAndUpdate(
    { containerId: t.containerId, name: t.name, state: { $in: [...from] } },
    { ...(b.extra ?? {}), $set: set, $inc: { ...st.$inc, ...extraInc }, $currentDate: st.$currentDate },
    { returnDocument: 'before', writeConcern: ctx.writeConcern },
  );
  if (!before) return namedFailure(ctx, t.containerId, t.name, op, from);
  if (before.state === 'running' && set.lease === null) await releaseSlot(ctx, before.lease);
  const task = { ...before, ...(set as Partial<TaskDoc>), rev: before.rev + 1 } as TaskDoc;
  if (extraInc.fence) task.fence = before.fence + extraInc.fence;
  const container = await counters(ctx, t.containerId, moveDelta(before.state, task.state, before.weight, wp(before), wp(task)));
  return { task, from: before.state, container };
}

/** failed|cancelled → pending, with a fresh retry budget. */
export function retryTask(ctx: StoreContext, t: NamedTask): Promise<TransitionResult> {
  return namedTransition(ctx, t, 'retry', ['failed', 'cancelled'], (now) => ({
    set: { attempts: 0, runAfter: now, endedAt: null, durationMs: null, lease: null },
    to: 'pending',
  }));
}

/** pending|running → cancelled. A running task's holder loses its lease (the fence moves on). */
export function cancelTask(ctx: StoreContext, t: NamedTask): Promise<TransitionResult> {
  return namedTransition(ctx, t, 'cancel', ['pending', 'running'], (now) => ({
    set: { lease: null, endedAt: now },
    extra: { $inc: { fence: 1 } },
    to: 'cancelled',
  }));
}

/** pending|failed|cancelled → skipped (counts as done: dependents may run). */
export async function skipTask(ctx: StoreContext, t: NamedTask): Promise<TransitionResult> {
  const r = await namedTransition(ctx, t, 'skip', ['pending', 'failed', 'cancelled'], (now) => ({
    set: { lease: null, endedAt: now, waitingOn: [], percentageComplete: 100 },
    to: 'skipped',
  }));
  if (r.task.hasDependents !== false) await unblockDependents(ctx, t.containerId, t.name);
  return r;
}

/** The fields a reset sets (besides `state: 'pending'`): the task as if just added. */
export function resetFields(now: Date, waitingOn: string[]): Record<string, unknown> {
  return {
    percentageComplete: 0,
    processingData: null,
    result: null,
    statusText: null,
    attempts: 0,
    runAfter: now,
    endedAt: null,
    durationMs: null,
    lease: null,
    waitingOn,
  };
}

/**
 * Any state but running → pending, as if just added: progress, checkpoint, result, status text
 * and retry budget cleared (failure history and invokeCount kept). `waitingOn` is the
 * dependencies not satisfied now. Pending dependents wait for it again.
 */
export async function resetTask(ctx: StoreContext, t: NamedTask, waitingOn: string[]): Promise<TransitionResult> {
  const r = await namedTransition(ctx, t, 'reset', ['pending', 'succeeded', 'failed', 'skipped', 'cancelled'], (now) => ({
    set: resetFields(now, waitingOn),
    to: 'pending',
  }));
  if (r.from === 'succeeded' || r.from === 'skipped') {
    await ctx.cols.tasks.updateMany(
      { containerId: t.containerId, dependsOn: t.name, state: 'pending' },
      { $addToSet: { waitingOn: t.name }, $set: { updatedAt: ctx.clock.now() }, $inc: { rev: 1 }, $currentDate: { changedAt: { $type: 'timestamp' } } },
      { writeConcern: ctx.writeConcern },
    );
  }
  return r;
}

/**
 * The original API's `updateTask(name, values)`: sets progress, status text, checkpoint or
 * result of a pending or running task without a lease (for callers that run tasks themselves).
 * `isComplete: true` marks it succeeded.
 */
export async function patchTask(
  ctx: StoreContext,
  t: NamedTask,
  patch: ProgressPatch & { result?: unknown; isComplete?: boolean },
): Promise<TransitionResult> {
  const complete = patch.isComplete === true;
  const set: Record<string, unknown> = patchFields(patch);
  if (patch.result !== undefined) set.result = patch.result;
  const r = await namedTransition(ctx, t, complete ? 'complete' : 'update', ['pending', 'running'], (now) => ({
    set: complete ? { ...set, percentageComplete: 100, lease: null, waitingOn: [], endedAt: now } : set,
    to: complete ? 'succeeded' : null,
    extra: complete ? { $min: { startedAt: now } } : undefined,
  }));
  if (complete && r.task.hasDependents !== false) await unblockDependents(ctx, t.containerId, t.name);
  return r;
}

/** Removes a task that is not running and that no other task depends on. */
export async function deleteTask(ctx: StoreContext, t: NamedTask): Promise<TaskDoc> {
  const dependent = await ctx.cols.tasks.findOne({ containerId: t.containerId, dependsOn: t.name }, { projection: { name: 1 } });
  if (dependent) {
    throw new InvalidTransitionError(`cannot delete task ${JSON.stringify(t.name)}: ${JSON.stringify(dependent.name)} depends on it`, {
      task: t.name,
      op: 'delete',
      dependent: dependent.name,
    });
  }
  const allowed: TaskState[] = ['pending', 'succeeded', 'failed', 'skipped', 'cancelled'];
  const current = await ctx.cols.tasks.findOne({ containerId: t.containerId, name: t.name }, { projection: { _id: 1, container: 1, state: 1 } });
  // A refusal (no such task, or running) writes nothing, and reports what was read.
  if (!current || !allowed.includes(current.state)) refusal(t.name, 'delete', allowed, current);
  // Tombstone first, so the changes feed can never miss the deletion (a crash right after it
  // leaves a tombstone for a task that still exists; a retried delete completes it).
  const tombstone = { _id: current._id, kind: 'task', container: current.container, containerId: t.containerId, task: t.name } as const;
  await writeTombstone(ctx, tombstone);
  const before = await ctx.cols.tasks.findOneAndDelete({ _id: current._id, state: { $in: allowed } }, { writeConcern: ctx.writeConcern });
  if (!before) {
    // Claimed since the read: withdraw the tombstone and re-announce the task, so a feed reader
    // that already saw the tombstone sees the task again after it. Withdraw first, then look:
    // if a concurrent deleteTask removed the task meanwhile, its deletion stands and gets its
    // tombstone back (the upsert above was shared with it).
    await ctx.cols.tombstones.deleteOne({ _id: current._id }, { writeConcern: ctx.writeConcern });
    const still = await ctx.cols.tasks.findOne({ _id: current._id }, { projection: { _id: 1 } });
    if (!still) await writeTombstone(ctx, tombstone);
    else await ctx.cols.tasks.updateOne({ _id: current._id }, { $inc: { rev: 1 }, $currentDate: { changedAt: { $type: 'timestamp' } } }, { writeConcern: ctx.writeConcern });
    return namedFailure(ctx, t.containerId, t.name, 'delete', allowed);
  }
  await counters(ctx, t.containerId, moveDelta(before.state, null, before.weight, wp(before), 0));
  return before;
}

/** Records a deletion for the changes feed (upsert by the deleted document's `_id`). */
export async function writeTombstone(
  ctx: StoreContext,
  t: { _id: ObjectId; kind: 'task' | 'container'; container: string; containerId: ObjectId; task: string | null },
): Promise<void> {
  await ctx.cols.tombstones.updateOne(
    { _id: t._id },
    {
      $set: { kind: t.kind, container: t.container, containerId: t.containerId, task: t.task, deletedAt: ctx.clock.now() },
      $currentDate: { changedAt: { $type: 'timestamp' } },
    },
    { upsert: true, writeConcern: ctx.writeConcern },
  );
}
