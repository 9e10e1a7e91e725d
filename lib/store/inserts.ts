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
import type { ContainerDoc, TaskDoc } from './documents';
import { driverCode } from './db-errors';
import { unblockDependents } from './transitions';

/** True for a duplicate-key error (E11000) on a unique index. */
export function isDuplicateKey(err: unknown): boolean {
  return driverCode(err) === 11000;
}

/** Atomic get-or-create by name (an upsert on the unique name index). */
export async function getOrCreateContainer(
  ctx: StoreContext,
  name: string,
  init: { failurePolicy: FailurePolicy; metadata: Record<string, unknown> },
): Promise<{ doc: ContainerDoc; created: boolean }> {
  const now = ctx.clock.now();
  const st = stamp(now);
  // startedAt/endedAt are left out, not null: a claim sets startedAt with $min, and null sorts
  // below every date.
  const insert: Omit<ContainerDoc, '_id' | 'changedAt' | 'name' | 'startedAt' | 'endedAt'> = {
    status: 'pending',
    failurePolicy: init.failurePolicy,
    metadata: init.metadata,
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

/** What {@link addTasks} did: every task of the batch (new or existing) and the counter write. */
export interface AddResult {
  tasks: TaskDoc[];
  created: boolean[];
  container: CounterResult;
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
  const docs = specs.map((s) => newTaskDoc(container, s, [...s.dependsOn], depended.has(s.name), now));
  const created: boolean[] = [];
  const tasks: TaskDoc[] = [];
  if (docs.length === 1) {
    const r = await upsertTask(ctx, docs[0], now);
    tasks.push(r.task);
    created.push(r.created);
  } else {
    const r = await insertTasks(ctx, container._id, docs, now);
    tasks.push(...r.tasks);
    created.push(...r.created);
  }
  let delta = moveDelta(null, null, 0, 0, 0);
  tasks.forEach((t, i) => {
    if (created[i]) delta = addDeltas(delta, moveDelta(null, 'pending', t.weight, 0, 0));
  });
  const c = isNoop(delta) ? { container: null, statusChange: null } : await applyCounters(ctx, container._id, delta);
  if (preexisting.length > 0 && created.some(Boolean)) {
    const done = await ctx.cols.tasks
      .find({ containerId: container._id, name: { $in: preexisting }, state: { $in: [...SATISFYING_TASK_STATES] } }, { projection: { name: 1 } })
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

/**
 * insertMany with client-side ids: no query per task. A duplicate key (the name exists, or a
 * concurrent adder won) marks the task as existing; those are read back.
 */
async function insertTasks(
  ctx: StoreContext,
  containerId: ObjectId,
  docs: Array<ReturnType<typeof newTaskDoc>>,
  now: Date,
): Promise<{ tasks: TaskDoc[]; created: boolean[] }> {
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
  const existing = dup.size ? await ctx.cols.tasks.find({ containerId, name: { $in: [...dup].map((i) => full[i].name) } }).toArray() : [];
  const byName = new Map(existing.map((t) => [t.name, t]));
  return { tasks: full.map((d, i) => (dup.has(i) ? byName.get(d.name)! : d)), created: full.map((_, i) => !dup.has(i)) };
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
      if (isDuplicateKey(err) && attempt < 3) continue;
      throw err;
    }
  }
}
