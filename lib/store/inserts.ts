/**
 * Inserts with duplicate-key recovery: get-or-create of a container and idempotent adds of
 * tasks. A concurrent inserter that wins the unique index makes the loser read the winner's
 * document instead of failing.
 * @internal
 */
import { performance } from 'node:perf_hooks';
import { ObjectId, Timestamp } from './bson';
import { emptyCounts, SATISFYING_TASK_STATES } from '../states';
import type { FailurePolicy } from '../types';
import type { ResolvedTaskSpec } from '../validation';
import type { StoreContext } from './context';
import { stamp } from './context';
import { addDeltas, applyCounters, isNoop, moveDelta, type CounterResult } from './counters';
import { leanTaskDoc, withTaskDefaults, type ContainerDoc, type TaskDoc } from './documents';
import { driverCode } from './db-errors';
import { reserveSequence } from './sequence';
import { heldBackParents } from './children';
import { alignAdded } from './holds';
import { decideUndecided, unblockDependents, type TransitionResult } from './transitions';
import { isCleanup, UNDECIDED } from '../run-when';
import { markCleanupDependencies, releaseCleanupWaiters, runWhenFields } from './run-when';
import { taskStates } from './queries';

/** True for a duplicate-key error (E11000) on a unique index. */
export function isDuplicateKey(err: unknown): boolean {
  return driverCode(err) === 11000;
}

/** Atomic get-or-create by name (an upsert on the unique name index). */
export async function getOrCreateContainer(
  ctx: StoreContext,
  name: string,
  init: { failurePolicy: FailurePolicy; metadata: Record<string, unknown>; taskTimeoutMs?: number; taskStallMs?: number },
): Promise<{ doc: ContainerDoc; created: boolean }> {
  const now = ctx.clock.now();
  const st = stamp(now);
  // startedAt/endedAt are left out, not null: a claim sets startedAt with $min, and null sorts
  // below every date.
  const insert: Omit<ContainerDoc, '_id' | 'changedAt' | 'name' | 'startedAt' | 'endedAt'> = {
    status: 'pending',
    failurePolicy: init.failurePolicy,
    metadata: init.metadata,
    // Deadline defaults of its tasks (deadlines.ts): stored only when set.
    ...(init.taskTimeoutMs !== undefined ? { taskTimeoutMs: init.taskTimeoutMs } : {}),
    ...(init.taskStallMs !== undefined ? { taskStallMs: init.taskStallMs } : {}),
    counts: emptyCounts(),
    weights: emptyCounts(),
    total: 0,
    weightTotal: 0,
    progressSum: 0,
    createdAt: now,
    updatedAt: now,
    rev: 1,
  };
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await ctx.cols.containers.findOneAndUpdate(
        { name },
        { $setOnInsert: { ...insert, _id: new ObjectId() }, $currentDate: st.$currentDate },
        { upsert: true, returnDocument: 'after', includeResultMetadata: true, writeConcern: ctx.writeConcern },
      );
      return { doc: res.value!, created: res.lastErrorObject?.updatedExisting === false };
    } catch (err) {
      // Two upserts racing on a unique index: the loser gets E11000 and retries as a plain match.
      if (isDuplicateKey(err) && attempt < 3) continue;
      throw err;
    }
  }
}

/** The container an add writes to: id, name, and the pause its handle last saw holding it (pause.ts). */
export type AddTarget = Pick<ContainerDoc, '_id' | 'name'> & { pause?: number | null };

function newTaskDoc(
  container: AddTarget,
  spec: ResolvedTaskSpec,
  waitingOn: string[],
  hasDependents: boolean,
  now: Date,
  parent?: string,
): Omit<TaskDoc, '_id' | 'changedAt' | 'rev' | 'updatedAt'> {
  return {
    containerId: container._id,
    container: container.name,
    name: spec.name,
    state: 'pending',
    dependsOn: spec.dependsOn,
    waitingOn,
    hasDependents,
    ...(parent === undefined ? {} : { parent }),
    weight: spec.weight,
    priority: spec.priority,
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
    // Deadlines (deadlines.ts) are stored only when set: absent = no limit.
    ...(spec.timeoutMs !== null ? { timeoutMs: spec.timeoutMs } : {}),
    ...(spec.stallMs !== null ? { stallMs: spec.stallMs } : {}),
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
    // Held from the start if the handle knew the container paused (`alignAdded` puts it right if not).
    ...(container.pause ? { pause: container.pause } : {}),
  };
}

/** What {@link addTasks} did: every task of the batch (new or existing) and the counter write. */
export interface AddResult {
  tasks: TaskDoc[];
  created: boolean[];
  container: CounterResult;
  /** New `runWhen: 'failed'` steps skipped at once, their dependencies having all ended without a failure (`bypass`). */
  also?: TransitionResult[];
}

/**
 * Adds tasks (idempotent by name: an existing task is returned unchanged). New tasks wait on
 * all their dependencies; the ones already satisfied are pulled right after the insert. The
 * order — mark the dependencies `hasDependents`, insert, then re-read their states — means a
 * dependency that succeeds concurrently is either seen here as satisfied or, having seen the
 * mark, unblocks the new task itself. One sequence reservation (when some name is new), one
 * upsert command for the batch, one counter write, and
 * for dependencies on tasks that already exist: one mark, one read, at most one pull each.
 */
export async function addTasks(
  ctx: StoreContext,
  container: AddTarget,
  specs: ResolvedTaskSpec[],
  existing: ReadonlySet<string>,
  /** The spawning task (spawn.ts): stored as each new task's `parent`. */
  parent?: string,
): Promise<AddResult> {
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
  // Cleanup steps (run-when.ts): their dependencies are marked too, so failing one updates them.
  const cleanupDepended = new Set(specs.filter((s) => isCleanup(s.runWhen)).flatMap((s) => s.dependsOn));
  const cleanupPreexisting = [...cleanupDepended].filter((d) => existing.has(d));
  if (cleanupPreexisting.length > 0) await markCleanupDependencies(ctx, container._id, cleanupPreexisting);
  const docs = specs.map((s) => newTaskDoc(container, s, [...s.dependsOn], depended.has(s.name), now, parent));
  docs.forEach((d, i) => Object.assign(d, runWhenFields(specs[i], cleanupDepended.has(specs[i].name))));
  // Creation numbers for the claim order, in batch order (sequence.ts): one reservation for the
  // names not known to exist (none when every name exists: an idempotent re-add costs nothing).
  const unseen = docs.filter((d) => !existing.has(d.name));
  let reserved: StampSource | null = null;
  if (unseen.length > 0) {
    const sent = performance.now();
    const r = await reserveSequence(ctx, unseen.length);
    unseen.forEach((d, i) => (d.seq = r.first + i));
    if (r.at) reserved = { at: r.at, sent };
  }
  const created: boolean[] = [];
  const tasks: TaskDoc[] = [];
  if (docs.length === 1) {
    const r = await upsertTask(ctx, docs[0], now);
    tasks.push(r.task);
    created.push(r.created);
  } else {
    const r = await insertTasks(ctx, container._id, docs, now, reserved);
    tasks.push(...r.tasks);
    created.push(...r.created);
  }
  let delta = moveDelta(null, null, 0, 0, 0);
  tasks.forEach((t, i) => {
    if (created[i]) delta = addDeltas(delta, moveDelta(null, 'pending', t.weight, 0, 0));
  });
  const c = isNoop(delta) ? { container: null, statusChange: null } : await applyCounters(ctx, container._id, delta);
  // A pause or resume the handle had not seen: the counter write returned the container as it is now.
  await alignAdded(ctx, c.container, tasks.filter((_, i) => created[i]));
  if (preexisting.length > 0 && created.some(Boolean)) {
    const satisfied = await ctx.cols.tasks
      .find({ containerId: container._id, name: { $in: preexisting }, state: { $in: [...SATISFYING_TASK_STATES] } }, { projection: { name: 1 } })
      .toArray();
    // A parent whose spawned children are not all done holds its dependents back (children.ts).
    const held = await heldBackParents(ctx, container._id, satisfied.map((d) => d.name));
    const done = satisfied.filter((d) => !held.has(d.name));
    for (const d of done) await unblockDependents(ctx, container._id, d.name);
    if (done.length > 0) {
      const fresh = await ctx.cols.tasks.find({ _id: { $in: tasks.map((t) => t._id) } }).toArray();
      const byId = new Map(fresh.map((t) => [t._id.toHexString(), t]));
      tasks.forEach((t, i) => (tasks[i] = byId.get(t._id.toHexString()) ?? t));
    }
  }
  const also = cleanupPreexisting.length > 0 && tasks.some((t, i) => created[i] && isCleanup(t.runWhen)) ? await settleAddedCleanups(ctx, container._id, cleanupPreexisting, tasks) : [];
  return { tasks, created, container: c, ...(also.length > 0 ? { also } : {}) };
}

/**
 * New cleanup steps depending on tasks that had already ended: released from the failed or
 * cancelled ones, and `'failed'` steps whose dependencies all ended get their verdict (bypassed
 * if none failed: returned, for their events). Re-reads the batch if anything changed.
 */
async function settleAddedCleanups(ctx: StoreContext, containerId: ObjectId, deps: string[], tasks: TaskDoc[]): Promise<TransitionResult[]> {
  const states = await taskStates(ctx, containerId, deps);
  let changed = 0;
  for (const [name, state] of states) {
    if (state === 'failed' || state === 'cancelled') changed += await releaseCleanupWaiters(ctx, containerId, name, state);
  }
  const decided = await decideUndecided(ctx, containerId);
  changed += decided.length;
  if (changed === 0 && !tasks.some((t) => t.waitingOn?.length === 1 && t.waitingOn[0] === UNDECIDED)) return decided;
  const fresh = await ctx.cols.tasks.find({ _id: { $in: tasks.map((t) => t._id) } }).toArray();
  const byId = new Map(fresh.map((t) => [t._id.toHexString(), t]));
  tasks.forEach((t, i) => (tasks[i] = byId.get(t._id.toHexString()) ?? t));
  return decided;
}

/** Where a batch's change stamp comes from: the sequence reservation's server Timestamp and when it was sent (monotonic ms). */
interface StampSource {
  at: Timestamp;
  sent: number;
}

/**
 * `budgetMs`: how long (monotonic ms, from sending the sequence reservation to the insert's
 * acknowledgement) a batch may take for its inserted stamp to be safe; slower batches are
 * re-stamped by the server. The bound is 1000 ms (see {@link batchStamp}); the rest is margin for
 * clock rate and scheduling. Mutable for specs only (0: every batch takes the slow path).
 * @internal
 */
export const STAMP_BUDGET = { budgetMs: 800 };

/**
 * The `changedAt` a batch's documents are inserted with, so that the changes feed needs no second
 * write: the second after the reservation's server Timestamp, `(at.t + 1, 0)`. Why a feed reader
 * cannot skip them (changes.ts): a reader returns only stamps below the start of the second that
 * was current `horizonMs ≥ 0` ago on the server, so it can move past `(at.t + 1, 0)` only once
 * the server's clock has reached `(at.t + 2) s`. The reservation ran at a server time below
 * `(at.t + 1) s` (its Timestamp's second; a replica set's cluster time is never behind its wall
 * clock) and after it was sent; so when the insert is acknowledged less than 1000 ms after the
 * reservation was sent, every document was visible before any reader could pass its stamp.
 * Otherwise (`addTasks` checks, {@link STAMP_BUDGET}) the batch is stamped again with
 * `$currentDate`, as every other write is. Later writes stamp the tasks from the server as usual
 * (a claim in the same second moves a task's `changedAt` back below this stamp, which no reader
 * can have passed yet).
 */
export function batchStamp(at: Timestamp): Timestamp {
  return new Timestamp({ t: at.t + 1, i: 0 });
}

/**
 * insertMany with client-side ids: no query per task. A duplicate key (the name exists, or a
 * concurrent adder won) marks the task as existing; those are read back. The documents are
 * inserted lean (documents.ts: no null or empty fields) and stamped for the changes feed
 * ({@link batchStamp}); only a batch slower than {@link STAMP_BUDGET}, or one without a
 * reservation, costs a second write (`updateMany … $currentDate`).
 */
async function insertTasks(
  ctx: StoreContext,
  containerId: ObjectId,
  docs: Array<ReturnType<typeof newTaskDoc>>,
  now: Date,
  source: StampSource | null,
): Promise<{ tasks: TaskDoc[]; created: boolean[] }> {
  const changedAt = source ? batchStamp(source.at) : new Timestamp({ t: 0, i: 0 });
  const full = docs.map((d) => ({ ...d, _id: new ObjectId(), updatedAt: now, rev: 1, changedAt }) as TaskDoc);
  const dup = new Set<number>();
  try {
    await ctx.cols.tasks.insertMany(
      full.map((d) => leanTaskDoc(d)),
      { ordered: false, writeConcern: ctx.writeConcern },
    );
  } catch (err) {
    const e = err as { writeErrors?: Array<{ index: number; code: number }> | { index: number; code: number } };
    const writeErrors = Array.isArray(e.writeErrors) ? e.writeErrors : e.writeErrors ? [e.writeErrors] : [];
    if (writeErrors.length === 0 || writeErrors.some((w) => w.code !== 11000)) throw err;
    for (const w of writeErrors) dup.add(w.index);
  }
  const inserted = full.filter((_, i) => !dup.has(i));
  if (inserted.length > 0 && (!source || performance.now() - source.sent >= STAMP_BUDGET.budgetMs)) {
    // Too slow (or no reservation) for the inserted stamp to be safe: the server stamps them now.
    await ctx.cols.tasks.updateMany(
      { _id: { $in: inserted.map((t) => t._id) } },
      { $currentDate: { changedAt: { $type: 'timestamp' } } },
      { writeConcern: ctx.writeConcern },
    );
  }
  const existing = dup.size ? await ctx.cols.tasks.find({ containerId, name: { $in: [...dup].map((i) => full[i].name) } }).toArray() : [];
  const byName = new Map(existing.map((t) => [t.name, withTaskDefaults(t)]));
  return { tasks: full.map((d, i) => (dup.has(i) ? byName.get(d.name)! : d)), created: full.map((_, i) => !dup.has(i)) };
}

/** One idempotent add; a duplicate-key error from a concurrent upsert is retried as a plain match. */
async function upsertTask(ctx: StoreContext, doc: ReturnType<typeof newTaskDoc>, now: Date): Promise<{ task: TaskDoc; created: boolean }> {
  const st = stamp(now);
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await ctx.cols.tasks.findOneAndUpdate(
        { containerId: doc.containerId, name: doc.name },
        { $setOnInsert: { ...leanTaskDoc(doc), updatedAt: now, rev: 1 }, $currentDate: st.$currentDate },
        { upsert: true, returnDocument: 'after', includeResultMetadata: true, writeConcern: ctx.writeConcern },
      );
      return { task: withTaskDefaults(res.value!), created: res.lastErrorObject?.updatedExisting === false };
    } catch (err) {
      if (isDuplicateKey(err) && attempt < 3) continue;
      throw err;
    }
  }
}
