/**
 * Every task state transition, one function each. Each is ONE conditional write to the task —
 * its precondition (the from-states of `TRANSITIONS` in states.ts, the fencing token) inside the
 * filter — followed by one `$inc` of the container's counters. Nothing here loads a document,
 * changes it and saves it back. Bulk forms (containers.ts) run these same functions per task.
 * @internal
 */
import type { Filter, UpdateFilter } from 'mongodb';
import { ObjectId } from './bson';
import { SATISFYING_TASK_STATES, TRANSITIONS, type TaskOperation, type TaskState } from '../states';
import { hasOpenChildren } from './children';
import type { StoreContext } from './context';
import { stamp } from './context';
import { addDeltas, applyCounters, carryAdd, carryTake, isNoop, moveDelta, type CounterCarry, type CounterDelta, type CounterResult } from './counters';
import type { FailureDoc, LeaseDoc, TaskDoc } from './documents';
import { CLAIM_ORDER, heldFilter, readyFilter } from './filters';
import { armDeadline, beatDeadline, deadlineFailure, keepDeadline, overdueKind, withinDeadline } from './deadlines';
import { dependentRefusal, fencedFailure, namedFailure, refusal } from './refusals';
import { releaseSlot, renewSlot, type SlotGrant } from './slots';
import { withdrawTombstone, writeTombstone } from './tombstones';
import { UNDECIDED } from '../run-when';
import { decideStep, releaseCleanupWaiters, rewaitCleanups, undecidedSteps, type UndecidedStep } from './run-when';

/** The outcome of a transition: the task after it, the state it left and the counter write's result. */
export interface TransitionResult {
  op: TaskOperation;
  task: TaskDoc;
  from: TaskState;
  container: CounterResult;
  /** Transitions this one caused, in order: cleanup steps it decided (`bypass`, run-when.ts). */
  also?: TransitionResult[];
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
  | 'timeoutMs'
  | 'stallMs'
> & { lease: LeaseDoc | null };

const AFTER = { returnDocument: 'after' as const };
const NO_COUNTERS: CounterResult = { container: null, statusChange: null };

/** The from-states of `op`, for a filter. */
function from(op: TaskOperation): TaskState[] {
  return [...TRANSITIONS[op].from];
}

/** weight × percentage: the task's share of its container's progress sum. */
function wp(t: Pick<TaskDoc, 'weight' | 'percentageComplete'>): number {
  return t.weight * t.percentageComplete;
}

async function counters(ctx: StoreContext, containerId: ObjectId, delta: CounterDelta, running = false): Promise<CounterResult> {
  if (isNoop(delta) && !running) return NO_COUNTERS;
  return applyCounters(ctx, containerId, delta, running);
}

/** Query of {@link claimTask}. `key: null` claims only tasks without a key. */
export interface ClaimQuery {
  containerId?: ObjectId;
  names?: string[];
  /** With `names`: also children spawned by these tasks. */
  parents?: string[];
  key?: string | null;
}

/** pending → running: takes the first ready task in {@link CLAIM_ORDER} matching the query and leases it to `owner` for `leaseMs`. */
export async function claimTask(
  ctx: StoreContext,
  q: ClaimQuery,
  owner: string,
  leaseMs: number,
  grant?: SlotGrant,
  /** Deltas held back by the claiming runner: added to this claim's counter write (counters.ts). */
  carry?: CounterCarry,
): Promise<TransitionResult | null> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const lease: LeaseDoc = { owner, expiresAt: new Date(now.getTime() + leaseMs), ms: leaseMs, ...(grant ? { slot: grant.slot, claim: grant.claim } : {}) };
  const update: UpdateFilter<TaskDoc> = {
    $set: { ...st.$set, state: 'running', lease, lastInvokedAt: now, endedAt: null, durationMs: null },
    $min: { startedAt: now },
    $inc: { ...st.$inc, fence: 1, invokeCount: 1, attempts: 1 },
    $currentDate: st.$currentDate,
  };
  const claimed = await ctx.cols.tasks.findOneAndUpdate(readyFilter(q, now), update, { ...AFTER, sort: CLAIM_ORDER, writeConcern: ctx.writeConcern });
  if (!claimed) return null;
  // A task with timeoutMs/stallMs gets its lease deadline in a second, fenced write (deadlines.ts).
  const task = await armDeadline(ctx, claimed, now);
  const delta = moveDelta('pending', 'running', task.weight, wp(task), wp(task));
  const held = carryTake(carry, task.containerId);
  const container = await counters(ctx, task.containerId, held ? addDeltas(delta, held) : delta, true);
  return { op: 'claim', task, from: 'pending', container };
}

/**
 * pending → running for up to `limit` ready tasks in {@link CLAIM_ORDER}, in three commands
 * whatever the number: one read of the candidates, one `update` command carrying one conditional
 * update per candidate — each fenced by the token read (`fence`) and the ready filter, so of two
 * claimers only one can take a task — and one `$inc` of the container's counters for all of them.
 * Every task claimed gets its own fencing token (its fence + 1, as {@link claimTask}) and the
 * batch's claim id (`lease.claim`). When a claimer lost some candidates to another, which ones it
 * won is read back by that id (a fourth command, under contention only). Tasks with a deadline
 * get their second, fenced write each (deadlines.ts). Unkeyed tasks only.
 */
export async function claimTasks(ctx: StoreContext, q: ClaimQuery, owner: string, leaseMs: number, limit: number, carry?: CounterCarry): Promise<TransitionResult[]> {
  const now = ctx.clock.now();
  const ready = readyFilter({ ...q, key: null }, now);
  const seen = await ctx.cols.tasks.find(ready, { sort: CLAIM_ORDER, limit }).toArray();
  if (seen.length === 0) return [];
  const st = stamp(now);
  const lease: LeaseDoc = { owner, expiresAt: new Date(now.getTime() + leaseMs), ms: leaseMs, claim: new ObjectId() };
  const update: UpdateFilter<TaskDoc> = {
    $set: { ...st.$set, state: 'running', lease, lastInvokedAt: now, endedAt: null, durationMs: null },
    $min: { startedAt: now },
    $inc: { ...st.$inc, fence: 1, invokeCount: 1, attempts: 1 },
    $currentDate: st.$currentDate,
  };
  const w = await ctx.cols.tasks.bulkWrite(
    seen.map((t) => ({ updateOne: { filter: { ...ready, _id: t._id, fence: t.fence }, update } })),
    { ordered: false, writeConcern: ctx.writeConcern },
  );
  let won: TaskDoc[];
  if (w.modifiedCount === seen.length) {
    // All taken: the tasks as written, without reading them back (changedAt stays the one read).
    won = seen.map((t) => ({
      ...t,
      state: 'running' as const,
      lease: { ...lease }, // its own: a holder updates its lease in place (deadlines.ts keepDeadline)
      lastInvokedAt: now,
      endedAt: null,
      durationMs: null,
      updatedAt: now,
      startedAt: t.startedAt && t.startedAt <= now ? t.startedAt : now,
      rev: t.rev + 1,
      fence: t.fence + 1,
      invokeCount: t.invokeCount + 1,
      attempts: t.attempts + 1,
    }));
  } else if (w.modifiedCount === 0) {
    won = [];
  } else {
    const mine = await ctx.cols.tasks.find({ _id: { $in: seen.map((t) => t._id) }, 'lease.claim': lease.claim }).toArray();
    const order = new Map(seen.map((t, i) => [t._id.toHexString(), i]));
    won = mine.sort((a, b) => order.get(a._id.toHexString())! - order.get(b._id.toHexString())!);
  }
  const tasks: TaskDoc[] = [];
  for (const t of won) tasks.push(await armDeadline(ctx, t, now));
  // One counter write per container claimed from (one, for a runner's claim).
  const byContainer = new Map<string, TaskDoc[]>();
  for (const t of tasks) byContainer.set(t.containerId.toHexString(), [...(byContainer.get(t.containerId.toHexString()) ?? []), t]);
  const out: TransitionResult[] = [];
  for (const group of byContainer.values()) {
    const delta = group.map((t) => moveDelta('pending', 'running', t.weight, wp(t), wp(t))).reduce(addDeltas);
    const held = carryTake(carry, group[0].containerId);
    const container = await counters(ctx, group[0].containerId, held ? addDeltas(delta, held) : delta, true);
    group.forEach((task, i) => out.push({ op: 'claim', task, from: 'pending', container: i === 0 ? container : { container: container.container, statusChange: null } }));
  }
  return out;
}

/** What a worker may report while it runs a task. */
export interface ProgressPatch {
  percentageComplete?: number;
  statusText?: string | null;
  processingData?: unknown;
}

function patchFields(patch: ProgressPatch): Partial<TaskDoc> {
  const set: Partial<TaskDoc> = {};
  if (patch.percentageComplete !== undefined) set.percentageComplete = patch.percentageComplete;
  if (patch.statusText !== undefined) set.statusText = patch.statusText;
  if (patch.processingData !== undefined) set.processingData = patch.processingData;
  return set;
}

/**
 * Heartbeat (with optional progress/status/checkpoint) of a held task: renews the lease for
 * `leaseMs` (stored with it). ONE command — running tasks are not part of the container's
 * progress sum, so no counter write.
 */
export async function heartbeat(ctx: StoreContext, held: HeldTask, patch: ProgressPatch, leaseMs: number): Promise<Date> {
  const now = ctx.clock.now();
  const expiresAt = new Date(now.getTime() + leaseMs);
  const st = stamp(now);
  // Refused past the lease's deadline; progress moves the stall deadline — in this same command.
  const dl = beatDeadline(held, patch, now);
  const update: UpdateFilter<TaskDoc> = {
    $set: { ...st.$set, ...patchFields(patch), 'lease.expiresAt': expiresAt, 'lease.ms': leaseMs, ...dl.set },
    $inc: st.$inc,
    $currentDate: st.$currentDate,
  };
  const r = await ctx.cols.tasks.updateOne({ ...heldFilter(held), ...dl.filter }, update, { writeConcern: ctx.writeConcern });
  if (r.matchedCount === 0) await fencedFailure(ctx, held, 'heartbeat');
  keepDeadline(held, dl.lease);
  await renewSlot(ctx, held.lease, expiresAt);
  return expiresAt;
}

/** `$pull`s a satisfied dependency from the tasks waiting on it. */
export async function unblockDependents(ctx: StoreContext, containerId: ObjectId, name: string): Promise<number> {
  const st = stamp(ctx.clock.now());
  const r = await ctx.cols.tasks.updateMany(
    { containerId, waitingOn: name },
    { $pull: { waitingOn: name }, $set: { ...st.$set, unblockedAt: st.$set.updatedAt }, $inc: st.$inc, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
  return r.modifiedCount;
}

/**
 * A task became satisfied (succeeded, skipped, completed): its dependents stop waiting on it —
 * unless it spawned children that are not all done (children.ts) — and, for a spawned child, its
 * parent's dependents stop waiting once the parent and every child are done. Each check reads
 * after its own write, so of two racing finishers (the last child and the parent, or the last two
 * children) the later one sees both done; a crash in between is repaired by the sweep
 * (`unblockSatisfied`, sweep.ts).
 */
export async function releaseDependents(ctx: StoreContext, t: Pick<TaskDoc, 'containerId' | 'name' | 'hasDependents' | 'spawned' | 'parent'>): Promise<number> {
  let n = 0;
  if (t.hasDependents !== false && !(t.spawned && (await hasOpenChildren(ctx, t.containerId, t.name)))) n += await unblockDependents(ctx, t.containerId, t.name);
  if (t.parent && !(await hasOpenChildren(ctx, t.containerId, t.parent))) {
    const p = await ctx.cols.tasks.findOne({ containerId: t.containerId, name: t.parent }, { projection: { state: 1, hasDependents: 1 } });
    if (p && SATISFYING_TASK_STATES.includes(p.state) && p.hasDependents !== false) n += await unblockDependents(ctx, t.containerId, t.parent);
  }
  return n;
}

/**
 * running → succeeded, by the lease holder. Stores the result and the last reported progress.
 * With `carry` (a runner's), the counter delta is held there for the runner's next counter write
 * instead of being written now (counters.ts `CounterCarry`): the result then has no container.
 */
export async function succeedTask(ctx: StoreContext, held: HeldTask, result: unknown, patch: ProgressPatch = {}, carry?: CounterCarry): Promise<TransitionResult> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const started = held.startedAt ?? now;
  const update: UpdateFilter<TaskDoc> = {
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
  };
  const task = await ctx.cols.tasks.findOneAndUpdate({ ...heldFilter(held), ...withinDeadline(now) }, update, { ...AFTER, writeConcern: ctx.writeConcern });
  if (!task) return fencedFailure(ctx, held, 'succeed');
  await releaseSlot(ctx, held.lease);
  const delta = moveDelta('running', 'succeeded', task.weight, 0, wp(task));
  let container = NO_COUNTERS;
  if (carry?.containerId.equals(task.containerId)) carryAdd(carry, delta);
  else container = await counters(ctx, task.containerId, delta);
  await releaseDependents(ctx, task);
  return { op: 'succeed', task, from: 'running', container, ...(await settleCleanups(ctx, task)) };
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

/** The write of a failed attempt: back to pending after the backoff while retries remain, else failed (also of a timeout). */
function failureUpdate(ctx: StoreContext, held: HeldTask, f: FailureDoc, now: Date, retryable: boolean): { update: UpdateFilter<TaskDoc>; set: Record<string, unknown>; to: TaskState } {
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
  return { update: { $set: set, $inc: { ...st.$inc, failureCount: 1 }, $currentDate: st.$currentDate }, set, to };
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
  const { update, set, to } = failureUpdate(ctx, held, f, now, failure.retryable !== false);
  Object.assign(set, patchFields(patch));
  const filter: Filter<TaskDoc> = { ...heldFilter(held), ...withinDeadline(now), failureCount: held.failureCount };
  const task = await ctx.cols.tasks.findOneAndUpdate(filter, update, { ...AFTER, writeConcern: ctx.writeConcern });
  if (!task) return fencedFailure(ctx, held, 'fail');
  await releaseSlot(ctx, held.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', to, task.weight, 0, wp(task)));
  return { op: 'fail', task, from: 'running', container, ...(await settleCleanups(ctx, task)) };
}

/**
 * running → pending by the lease holder, without counting a failure: the worker is shutting
 * down and hands the task back (its checkpoint stays; the attempt is not charged to the retry
 * budget). Anyone may claim it again at once.
 */
export async function releaseTask(ctx: StoreContext, held: HeldTask, patch: ProgressPatch = {}): Promise<TransitionResult> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const update: UpdateFilter<TaskDoc> = {
    $set: { ...st.$set, ...patchFields(patch), state: 'pending', lease: null, runAfter: now },
    $inc: { ...st.$inc, attempts: -1 },
    $currentDate: st.$currentDate,
  };
  const task = await ctx.cols.tasks.findOneAndUpdate({ ...heldFilter(held), ...withinDeadline(now) }, update, { ...AFTER, writeConcern: ctx.writeConcern });
  if (!task) return fencedFailure(ctx, held, 'release');
  await releaseSlot(ctx, held.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', 'pending', task.weight, 0, wp(task)));
  return { op: 'release', task, from: 'running', container };
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
  const { update, set, to } = failureUpdate(ctx, seen, f, now, true);
  set.runAfter = now;
  const filter: Filter<TaskDoc> = { ...heldFilter(seen), failureCount: seen.failureCount, 'lease.expiresAt': { $lte: now } };
  const task = await ctx.cols.tasks.findOneAndUpdate(filter, update, { ...AFTER, writeConcern: ctx.writeConcern });
  if (!task) return null;
  await releaseSlot(ctx, seen.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', to, task.weight, 0, wp(task)));
  return { op: 'expire', task, from: 'running', container, ...(await settleCleanups(ctx, task)) };
}

/**
 * running → pending (retry after its backoff) / failed (out of retries) for an attempt past its
 * deadline (`lease.deadline`, deadlines.ts): a failure of kind `timeout` or `stalled`, through
 * the retry policy like a handler's. Run by the sweep for every overdue task, and by the runner
 * holding the lease at the deadline. The filter carries the token and failure count read and the
 * deadline passed at `now`, so a progress heartbeat that moved the stall deadline first wins and
 * nothing is written (null).
 */
export async function timeoutTask(ctx: StoreContext, seen: HeldTask): Promise<TransitionResult | null> {
  const now = ctx.clock.now();
  const kind = overdueKind(seen.lease, now);
  if (!kind) return null;
  const f = deadlineFailure(seen, kind, now);
  const { update, to } = failureUpdate(ctx, seen, f, now, true);
  const filter: Filter<TaskDoc> = { ...heldFilter(seen), failureCount: seen.failureCount, 'lease.deadline': { $lte: now } };
  const task = await ctx.cols.tasks.findOneAndUpdate(filter, update, { ...AFTER, writeConcern: ctx.writeConcern });
  if (!task) return null;
  await releaseSlot(ctx, seen.lease);
  const container = await counters(ctx, task.containerId, moveDelta('running', to, task.weight, 0, wp(task)));
  return { op: 'timeout', task, from: 'running', container, ...(await settleCleanups(ctx, task)) };
}

/** Arguments of the admin transitions, which address a task by container and name. */
export interface NamedTask {
  containerId: ObjectId;
  name: string;
  /** The task's id when known (bulk forms): the same filter, narrowed to one document by `_id`. */
  _id?: ObjectId;
}

/** Options of the by-name transitions. */
export interface NamedOptions {
  /**
   * Leave the counter write to the caller (bulk forms sum the deltas of all their tasks into one
   * write); the result's `delta` is what to apply.
   */
  deferCounters?: boolean;
}

/** A by-name transition's result; `delta` is set when counters were deferred. */
export interface NamedResult extends TransitionResult {
  delta?: CounterDelta;
}

interface NamedWrite {
  set: Partial<TaskDoc>;
  /** The state it moves to; null: unchanged. */
  to: TaskState | null;
  inc?: Partial<Record<'fence', number>>;
  min?: Partial<Pick<TaskDoc, 'startedAt'>>;
}

async function namedTransition(
  ctx: StoreContext,
  t: NamedTask,
  op: TaskOperation,
  build: (now: Date) => NamedWrite,
  opts: NamedOptions = {},
): Promise<NamedResult> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const b = build(now);
  const allowed = from(op);
  const set: Partial<TaskDoc> = { ...st.$set, ...b.set, ...(b.to ? { state: b.to } : {}) };
  const update: UpdateFilter<TaskDoc> = { $set: set, $inc: { ...st.$inc, ...(b.inc ?? {}) }, $currentDate: st.$currentDate };
  if (b.min) update.$min = b.min;
  const before = await ctx.cols.tasks.findOneAndUpdate(
    { ...(t._id ? { _id: t._id } : {}), containerId: t.containerId, name: t.name, state: { $in: allowed } },
    update,
    { returnDocument: 'before', writeConcern: ctx.writeConcern },
  );
  if (!before) return namedFailure(ctx, t.containerId, t.name, op, allowed);
  if (before.state === 'running' && set.lease === null) await releaseSlot(ctx, before.lease);
  const task = { ...before, ...set, rev: before.rev + 1 } as TaskDoc;
  if (b.inc?.fence) task.fence = before.fence + b.inc.fence;
  if (b.min?.startedAt && !(before.startedAt && before.startedAt <= b.min.startedAt)) task.startedAt = b.min.startedAt;
  const delta = moveDelta(before.state, task.state, before.weight, wp(before), wp(task));
  if (opts.deferCounters) return { op, task, from: before.state, container: NO_COUNTERS, delta };
  const container = await counters(ctx, t.containerId, delta);
  return { op, task, from: before.state, container };
}

/** failed|cancelled → pending, with a fresh retry budget. Pending cleanup steps behind it wait for it again (run-when.ts). */
export async function retryTask(ctx: StoreContext, t: NamedTask, opts?: NamedOptions): Promise<NamedResult> {
  const r = await namedTransition(ctx, t, 'retry', (now) => ({ set: { attempts: 0, runAfter: now, endedAt: null, durationMs: null, lease: null }, to: 'pending' }), opts);
  if (r.task.hasCleanupDependents) await rewaitCleanups(ctx, t.containerId, t.name);
  return r;
}

/** pending|running → cancelled. A running task's holder loses its lease (the fence moves on). Cleanup steps behind it stop waiting on it. */
export async function cancelTask(ctx: StoreContext, t: NamedTask, opts?: NamedOptions): Promise<NamedResult> {
  const r = await namedTransition(ctx, t, 'cancel', (now) => ({ set: { lease: null, endedAt: now }, inc: { fence: 1 }, to: 'cancelled' }), opts);
  return { ...r, ...(await settleCleanups(ctx, r.task)) };
}

/** pending|failed|cancelled → skipped (counts as done: dependents may run). */
export async function skipTask(ctx: StoreContext, t: NamedTask): Promise<NamedResult> {
  const r = await namedTransition(ctx, t, 'skip', (now) => ({ set: { lease: null, endedAt: now, waitingOn: [], percentageComplete: 100 }, to: 'skipped' }));
  // Skipping a failed or cancelled task resolves it by hand, as markSucceeded does (run-when.ts).
  if ((r.from === 'failed' || r.from === 'cancelled') && r.task.hasCleanupDependents) await rewaitCleanups(ctx, t.containerId, t.name);
  await releaseDependents(ctx, r.task);
  return { ...r, ...(await settleCleanups(ctx, r.task)) };
}

/**
 * After a task became final: the cleanup steps behind it (run-when.ts), only if it has some
 * (`hasCleanupDependents`). A failed or cancelled task releases the cleanup steps waiting on it;
 * then (not after a failure, which decides them to run) the `'failed'` steps left waiting on
 * nothing but their verdict get it, and those none of whose dependencies failed are bypassed.
 * Returns the bypasses as `also` (for the events).
 */
async function settleCleanups(ctx: StoreContext, task: Pick<TaskDoc, 'containerId' | 'name' | 'state' | 'hasCleanupDependents'>): Promise<{ also?: TransitionResult[] }> {
  if (!task.hasCleanupDependents || task.state === 'pending' || task.state === 'running') return {};
  if (task.state === 'failed' || task.state === 'cancelled') await releaseCleanupWaiters(ctx, task.containerId, task.name, task.state);
  if (task.state === 'failed') return {};
  const also = await decideUndecided(ctx, task.containerId);
  return also.length > 0 ? { also } : {};
}

/**
 * Takes the verdict of every undecided `'failed'` step of the container (run-when.ts
 * `undecidedSteps`): run (its marker pulled) or bypass. Also the sweep's repair after a crash
 * between a dependency's write and this one.
 */
export async function decideUndecided(ctx: StoreContext, containerId: ObjectId): Promise<TransitionResult[]> {
  const out: TransitionResult[] = [];
  for (const step of await undecidedSteps(ctx, containerId)) {
    if ((await decideStep(ctx, containerId, step)) !== 'skip') continue;
    const r = await bypassTask(ctx, containerId, step);
    if (r) out.push(r);
  }
  return out;
}

/**
 * pending → skipped, by the system: a `runWhen: 'failed'` step all of whose dependencies ended
 * without a failure (run-when.ts). Conditional on the step still pending and waiting on nothing
 * but its verdict. Its dependents then proceed as after a skip.
 */
export async function bypassTask(ctx: StoreContext, containerId: ObjectId, step: Pick<UndecidedStep, '_id'>): Promise<TransitionResult | null> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const set: Partial<TaskDoc> = { ...st.$set, state: 'skipped', lease: null, endedAt: now, waitingOn: [], percentageComplete: 100 };
  const before = await ctx.cols.tasks.findOneAndUpdate(
    { _id: step._id, containerId, state: { $in: from('bypass') }, runWhen: 'failed', waitingOn: [UNDECIDED] as never },
    { $set: set, $inc: st.$inc, $currentDate: st.$currentDate },
    { returnDocument: 'before', writeConcern: ctx.writeConcern },
  );
  if (!before) return null;
  const task = { ...before, ...set, rev: before.rev + 1 } as TaskDoc;
  const container = await counters(ctx, containerId, moveDelta(before.state, 'skipped', before.weight, wp(before), wp(task)));
  await releaseDependents(ctx, task);
  return { op: 'bypass', task, from: before.state, container, ...(await settleCleanups(ctx, task)) };
}

/** The fields a reset sets (besides `state: 'pending'`): the task as if just added. */
export function resetFields(now: Date, waitingOn: string[]): Partial<TaskDoc> {
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
 * dependencies not satisfied now. Pending dependents wait for it again (unless `opts.deferCounters`:
 * a bulk reset resets those dependents itself).
 */
export async function resetTask(ctx: StoreContext, t: NamedTask, waitingOn: string[], opts?: NamedOptions): Promise<NamedResult> {
  const r = await namedTransition(ctx, t, 'reset', (now) => ({ set: resetFields(now, waitingOn), to: 'pending' }), opts);
  if (!opts?.deferCounters && (r.from === 'succeeded' || r.from === 'skipped')) {
    const st = stamp(ctx.clock.now());
    await ctx.cols.tasks.updateMany(
      { containerId: t.containerId, dependsOn: t.name, state: 'pending' },
      { $addToSet: { waitingOn: t.name }, $set: st.$set, $inc: st.$inc, $currentDate: st.$currentDate },
      { writeConcern: ctx.writeConcern },
    );
  }
  // Cleanup steps (run-when.ts): those that stopped waiting on a failed or cancelled task wait
  // again; a reset `'failed'` step whose dependencies all ended already gets its verdict now.
  if (!opts?.deferCounters && (r.from === 'failed' || r.from === 'cancelled') && r.task.hasCleanupDependents) await rewaitCleanups(ctx, t.containerId, t.name);
  if (!opts?.deferCounters && waitingOn.length === 1 && waitingOn[0] === UNDECIDED) {
    const also = await decideUndecided(ctx, t.containerId);
    if (also.length > 0) return { ...r, also };
  }
  return r;
}

/**
 * Any state → pending, as a task of a re-run plan (lib/store/rerun.ts): the fields of a reset,
 * `waitingOn` as the plan computed it, and the fence moved on so that the holder of a running
 * task loses its lease (its late writes are refused). Counters are the caller's (one write for
 * the whole plan: `delta`).
 */
export function rerunTask(ctx: StoreContext, t: NamedTask, waitingOn: string[]): Promise<NamedResult> {
  return namedTransition(ctx, t, 'rerun', (now) => ({ set: resetFields(now, waitingOn), inc: { fence: 1 }, to: 'pending' }), { deferCounters: true });
}

/**
 * pending|failed|cancelled|skipped → succeeded with `result`, by an admin (a step someone fixed
 * by hand): progress 100, nothing waited on, `endedAt` now; then its dependents are unblocked.
 */
export async function markSucceededTask(ctx: StoreContext, t: NamedTask, result: unknown): Promise<NamedResult> {
  const r = await namedTransition(ctx, t, 'markSucceeded', (now) => ({
    set: { result: result === undefined ? null : result, percentageComplete: 100, lease: null, waitingOn: [], endedAt: now, durationMs: null },
    to: 'succeeded',
    min: { startedAt: now },
  }));
  // A failure fixed by hand is no failure for the pending cleanup steps behind it (run-when.ts):
  // they wait on it again, and are released (or re-decided) below as after a success.
  if ((r.from === 'failed' || r.from === 'cancelled') && r.task.hasCleanupDependents) await rewaitCleanups(ctx, t.containerId, t.name);
  await releaseDependents(ctx, r.task);
  return { ...r, ...(await settleCleanups(ctx, r.task)) };
}

/**
 * The original API's `updateTask(name, values)`: sets progress, status text, checkpoint or
 * result of a pending or running task without a lease (for callers that run tasks themselves).
 * `isComplete: true` marks it succeeded (operation `complete`, else `update`).
 */
export async function patchTask(ctx: StoreContext, t: NamedTask, patch: ProgressPatch & { result?: unknown; isComplete?: boolean }): Promise<NamedResult> {
  const complete = patch.isComplete === true;
  const set: Partial<TaskDoc> = patchFields(patch);
  if (patch.result !== undefined) set.result = patch.result;
  const r = await namedTransition(ctx, t, complete ? 'complete' : 'update', (now) =>
    complete ? { set: { ...set, percentageComplete: 100, lease: null, waitingOn: [], endedAt: now }, to: 'succeeded', min: { startedAt: now } } : { set, to: null },
  );
  if (!complete) return r;
  await releaseDependents(ctx, r.task);
  return { ...r, ...(await settleCleanups(ctx, r.task)) };
}

/** Removes a task that is not running and that no other task depends on. */
export async function deleteTask(ctx: StoreContext, t: NamedTask): Promise<TransitionResult> {
  const dependent = await ctx.cols.tasks.findOne({ containerId: t.containerId, dependsOn: t.name }, { projection: { name: 1 } });
  if (dependent) dependentRefusal(t.name, dependent.name);
  const allowed = from('delete');
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
    await withdrawTombstone(ctx, current._id);
    const still = await ctx.cols.tasks.findOne({ _id: current._id }, { projection: { _id: 1 } });
    if (!still) await writeTombstone(ctx, tombstone);
    else await ctx.cols.tasks.updateOne({ _id: current._id }, { $inc: { rev: 1 }, $currentDate: { changedAt: { $type: 'timestamp' } } }, { writeConcern: ctx.writeConcern });
    return namedFailure(ctx, t.containerId, t.name, 'delete', allowed);
  }
  const container = await counters(ctx, t.containerId, moveDelta(before.state, null, before.weight, wp(before), 0));
  return { op: 'delete', task: before, from: before.state, container };
}
