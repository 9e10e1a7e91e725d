/**
 * The store side of cleanup steps (`TaskSpec.runWhen`, the rule in lib/run-when.ts): the writes
 * that keep a cleanup step's `waitingOn` by its rule when a dependency fails, is cancelled or is
 * retried, the read of `'failed'` steps whose verdict is due, and the reads the sweep decides
 * from. Each write is one conditional `updateMany`/`updateOne`; the bypass transition (a
 * `'failed'` step none of whose dependencies failed → skipped) is in transitions.ts. Every query
 * here is an index range: `container_waitingOn` for a dependency's waiters and for the marker,
 * `container_state_id` for a container's pending tasks.
 * @internal
 */
import type { Filter, ObjectId } from 'mongodb';
import { CLEANUP_RUN_WHEN, initialWaitingOn, isCleanup, releasable, UNDECIDED, verdict, type Release, type RunVerdict, type RunWhen } from '../run-when';
import { SATISFYING_TASK_STATES, type TaskState } from '../states';
import { childCounts, heldBackParents } from './children';
import type { StoreContext } from './context';
import { stamp } from './context';
import type { TaskDoc } from './documents';
import { readyFilter } from './filters';
import { taskStates } from './queries';

const CLEANUP = (): Filter<TaskDoc> => ({ runWhen: { $in: [...CLEANUP_RUN_WHEN] } });

/** The fields of a new task that depend on its `runWhen`: `waitingOn` by the rule, `runWhen` itself (stored for cleanup steps only), the mark. */
export function runWhenFields(spec: { runWhen: RunWhen; dependsOn: string[] }, hasCleanupDependents: boolean): Partial<TaskDoc> {
  return {
    waitingOn: initialWaitingOn(spec.runWhen, spec.dependsOn),
    ...(isCleanup(spec.runWhen) ? { runWhen: spec.runWhen } : {}),
    ...(hasCleanupDependents ? { hasCleanupDependents: true } : {}),
  };
}

/** Marks tasks that new cleanup steps depend on (`hasCleanupDependents`), before those are inserted (as `hasDependents`). */
export async function markCleanupDependencies(ctx: StoreContext, containerId: ObjectId, names: string[]): Promise<void> {
  await ctx.cols.tasks.updateMany(
    { containerId, name: { $in: names }, hasCleanupDependents: { $ne: true } },
    { $set: { hasCleanupDependents: true } },
    { writeConcern: ctx.writeConcern },
  );
}

/**
 * A dependency ended `failed` or `cancelled`: the cleanup steps waiting on it stop waiting (a
 * `'succeeded'` step keeps waiting: it is blocked). A failure also decides the `'failed'` steps
 * behind it: their {@link UNDECIDED} marker goes. One `updateMany` (index `container_waitingOn`).
 */
export async function releaseCleanupWaiters(ctx: StoreContext, containerId: ObjectId, name: string, state: TaskState): Promise<number> {
  const st = stamp(ctx.clock.now());
  const r = await ctx.cols.tasks.updateMany(
    { containerId, waitingOn: name, ...CLEANUP() },
    { $pullAll: { waitingOn: state === 'failed' ? [name, UNDECIDED] : [name] }, $set: { ...st.$set, unblockedAt: st.$set.updatedAt }, $inc: st.$inc, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
  return r.modifiedCount;
}

/**
 * A failed or cancelled dependency went back to pending (retry, reset): the pending cleanup steps
 * that stopped waiting on it wait again, and `'failed'` ones get their verdict back to undecided
 * (it is taken again from the states once their dependencies are final). A cleanup step that
 * already ran is left as it is. At most two `updateMany` over the container's pending tasks.
 */
export async function rewaitCleanups(ctx: StoreContext, containerId: ObjectId, name: string): Promise<number> {
  const st = stamp(ctx.clock.now());
  const base: Filter<TaskDoc> = { containerId, state: 'pending', dependsOn: name };
  const meta = { $set: st.$set, $inc: st.$inc, $currentDate: st.$currentDate };
  const a = await ctx.cols.tasks.updateMany({ ...base, runWhen: 'always' }, { $addToSet: { waitingOn: name }, ...meta }, { writeConcern: ctx.writeConcern });
  const f = await ctx.cols.tasks.updateMany(
    { ...base, runWhen: 'failed' },
    { $addToSet: { waitingOn: { $each: [name, UNDECIDED] } }, ...meta },
    { writeConcern: ctx.writeConcern },
  );
  return a.modifiedCount + f.modifiedCount;
}

/** A `'failed'` step whose dependencies are all final, its verdict not taken yet. */
export type UndecidedStep = Pick<TaskDoc, '_id' | 'name' | 'dependsOn' | 'waitingOn'>;

/** The pending `'failed'` steps of a container waiting on nothing but the marker (index `container_waitingOn`). */
export function undecidedSteps(ctx: StoreContext, containerId: ObjectId): Promise<UndecidedStep[]> {
  return ctx.cols.tasks
    .find({ containerId, waitingOn: UNDECIDED, 'waitingOn.1': { $exists: false }, state: 'pending' }, { projection: { _id: 1, name: 1, dependsOn: 1, waitingOn: 1 } })
    .limit(1000)
    .toArray();
}

/**
 * Takes the verdict of an undecided `'failed'` step from its dependencies' states (one read):
 * `run` pulls the marker (one conditional write: still pending, still waiting on the marker
 * alone), `skip` is left to the caller (the bypass transition), `wait` writes nothing (a
 * dependency was retried meanwhile).
 */
export async function decideStep(ctx: StoreContext, containerId: ObjectId, step: UndecidedStep): Promise<RunVerdict> {
  const states = await taskStates(ctx, containerId, step.dependsOn ?? []);
  const v = verdict('failed', (step.dependsOn ?? []).map((d) => states.get(d) ?? 'open'));
  if (v === 'run') {
    const st = stamp(ctx.clock.now());
    await ctx.cols.tasks.updateOne(
      { _id: step._id, state: 'pending', waitingOn: [UNDECIDED] as never },
      { $pull: { waitingOn: UNDECIDED }, $set: { ...st.$set, unblockedAt: st.$set.updatedAt }, $inc: st.$inc, $currentDate: st.$currentDate },
      { writeConcern: ctx.writeConcern },
    );
  }
  return v;
}

/**
 * The cleanup steps of a container that nothing can hold back any more, for the sweep (nothing
 * running, nothing ready) or a fail-fast run that stopped claiming (`halted`): reads the pending
 * tasks that wait on something (index `container_state_id`, at most 5000) and the states of the
 * tasks they name (one read), and applies the rule ({@link releasable}).
 */
export async function findReleasable(ctx: StoreContext, containerId: ObjectId, halted: boolean): Promise<Array<Release & { _id: ObjectId }>> {
  const pending = await ctx.cols.tasks
    .find(
      halted ? { containerId, state: 'pending' } : { containerId, state: 'pending', 'waitingOn.0': { $exists: true } },
      { projection: { _id: 1, name: 1, runWhen: 1, waitingOn: 1, dependsOn: 1 } },
    )
    .limit(5000)
    .toArray();
  if (!pending.some((p) => p.runWhen === 'always' || p.runWhen === 'failed')) return [];
  const steps = pending.map((p) => ({ name: p.name, runWhen: (p.runWhen ?? 'succeeded') as RunWhen, waitingOn: p.waitingOn ?? [], dependsOn: p.dependsOn ?? [] }));
  const named = new Set<string>();
  for (const s of steps) for (const n of [...s.waitingOn, ...(s.runWhen === 'succeeded' ? [] : s.dependsOn)]) named.add(n);
  const states = await taskStates(ctx, containerId, [...named]);
  // A parent that spawned children (spawn.ts) is done only with them: one whose children are not
  // all done counts as failed if one failed, else cancelled if one was, else as still running.
  const held = await heldBackParents(ctx, containerId, [...states].filter(([, s]) => SATISFYING_TASK_STATES.includes(s)).map(([n]) => n));
  for (const c of await childCounts(ctx, containerId, [...held])) {
    states.set(c.parent, c.counts.failed > 0 ? 'failed' : c.counts.cancelled > 0 ? 'cancelled' : 'running');
  }
  const byName = new Map(pending.map((p) => [p.name, p._id]));
  return releasable(steps, states, halted).map((r) => ({ ...r, _id: byName.get(r.name)! }));
}

/**
 * Releases a cleanup step to run: pulls everything it waits on, conditional on it still being
 * pending and waiting on exactly what the decision was taken from (a dependency retried meanwhile
 * changes `waitingOn`, and the write then does nothing).
 */
export async function releaseStep(ctx: StoreContext, id: ObjectId, waitingOn: readonly string[], to: string[] = []): Promise<boolean> {
  if (to.length === waitingOn.length && to.every((n, i) => waitingOn[i] === n)) return true;
  const st = stamp(ctx.clock.now());
  const r = await ctx.cols.tasks.updateOne(
    { _id: id, state: 'pending', waitingOn: [...waitingOn] as never },
    { $set: { ...st.$set, waitingOn: to, unblockedAt: st.$set.updatedAt }, $inc: st.$inc, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
  return r.modifiedCount > 0;
}

/** The pending cleanup steps of a container that wait on nothing (a fail-fast run still claims these). */
export async function readyCleanups(ctx: StoreContext, containerId: ObjectId): Promise<Array<Pick<TaskDoc, 'name' | 'runAfter'>>> {
  return ctx.cols.tasks
    .find({ ...readyFilter({ containerId }), ...CLEANUP() }, { projection: { _id: 0, name: 1, runAfter: 1 } })
    .limit(1000)
    .toArray();
}
