/**
 * Inserts with duplicate-key recovery: get-or-create of a container and idempotent adds of
 * tasks. A concurrent inserter that wins the unique index makes the loser read the winner's
 * document instead of failing.
 * @internal
 */
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
import { serverLocalTime, taskStates } from './queries';

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
  let reservedAt: Timestamp | null = null;
  if (unseen.length > 0) {
    const r = await reserveSequence(ctx, unseen.length);
    unseen.forEach((d, i) => (d.seq = r.first + i));
    reservedAt = r.at;
  }
  const created: boolean[] = [];
  const tasks: TaskDoc[] = [];
  if (docs.length === 1) {
    const r = await upsertTask(ctx, docs[0], now);
    tasks.push(r.task);
    created.push(r.created);
  } else {
    const r = await insertTasks(ctx, container._id, docs, now, reservedAt);
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

/**
 * How far from the end of its reservation's second a batch insert must have finished to keep the
 * reservation's stamp (see insertTasks): a margin for the clocks of different servers answering
 * `hello` (mongos routers, a new primary). Mutable for specs only: 1000 always restamps.
 * @internal
 */
export const INSERT_STAMP = { marginMs: 100 };

/**
 * insertMany with client-side ids: no query per task. A duplicate key (the name exists, or a
 * concurrent adder won) marks the task as existing; those are read back. The documents are
 * inserted lean (documents.ts: no null or empty fields).
 *
 * The change stamp (`changedAt`, for the feed) is the server's stamp of the sequence reservation
 * just before, `reservedAt` (second S), inserted with the documents. A feed reader returns only
 * entries stamped before the start of the second its `hello.localTime` is in (minus its horizon,
 * changes.ts), so it can have read past second S only from the server time (S + 1) s on. Asked
 * after the insert returned (one `hello`), the server's time still in second S (by a margin,
 * INSERT_STAMP) proves that no reader could have passed the new documents before they were
 * visible: done. Otherwise (the insert straddled a second, or there was no reservation stamp) the
 * server stamps them again with one `updateMany … $currentDate`, as every other write is stamped,
 * and they come later in the feed.
 */
async function insertTasks(
  ctx: StoreContext,
  containerId: ObjectId,
  docs: Array<ReturnType<typeof newTaskDoc>>,
  now: Date,
  reservedAt: Timestamp | null,
): Promise<{ tasks: TaskDoc[]; created: boolean[] }> {
  const changedAt = reservedAt ?? new Timestamp({ t: 0, i: 0 });
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
  if (inserted.length > 0 && !(reservedAt && (await stampHolds(ctx, reservedAt)))) {
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

/** True while the server's clock is still in the second of `stamp`, by INSERT_STAMP's margin (see insertTasks). */
async function stampHolds(ctx: StoreContext, stamp: Timestamp): Promise<boolean> {
  const local = await serverLocalTime(ctx);
  return local !== null && local.getTime() + INSERT_STAMP.marginMs < (stamp.t + 1) * 1000;
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
