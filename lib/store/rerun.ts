/**
 * Re-run from a step, and "mark succeeded with this result". A re-run resets a step and (with
 * `downstream`) everything that depends on it, transitively, whatever their state, and leaves
 * every other task alone. The plan comes from ONE projected read of the container's tasks
 * (name, dependsOn, state; at most {@link RERUN_MAX_TASKS}); applying it is one conditional write
 * per planned task (`rerunTask`, the `rerun` row of the transition table: any state → pending, a
 * running task's lease revoked as on cancel), in dependency order, then one counter write. Each
 * task's `waitingOn` follows its run condition (`initialWaitingOn`, lib/run-when.ts), with the
 * planned dependencies counting as pending, and so do satisfied ones whose spawned children are
 * not all done (children.ts: they hold their dependents back).
 *
 * Why dependency order and a last look: a planned task is written before the tasks that depend
 * on it, so the old attempt of a task that was running can only finish before its own write
 * (after it, the fence refuses its worker) — that is, before its dependents are written to wait
 * on it again. A task that is claimed and finishes its new run while the rest of the plan is still
 * being written would leave a dependent waiting on it for good; so would a dependency outside the
 * plan that finished after the plan was read. After the writes, one read of the states of every
 * name the plan wrote into a `waitingOn` finds those and pulls them (one write, only if any).
 * @internal
 */
import type { ObjectId } from 'mongodb';
import { NotFoundError, ValidationError } from '../errors';
import { FINAL_CONTAINER_STATUSES, SATISFYING_TASK_STATES, type TaskState } from '../states';
import { initialWaitingOn, UNDECIDED, type RunWhen } from '../run-when';
import type { RerunPlan } from '../types';
import type { StoreContext } from './context';
import { stamp } from './context';
import { addDeltas, applyCounters, isNoop, moveDelta, settleStatus, type CounterResult } from './counters';
import { heldBackParents } from './children';
import { markSucceededTask, rerunTask, type NamedResult, type NamedTask } from './transitions';

/** The most tasks a container may hold for a re-run to be planned (the plan is one read of them all). */
export const RERUN_MAX_TASKS = 100_000;

/** A re-run plan as the store computes it (the public {@link RerunPlan} adds `dryRun`). */
export type StorePlan = Omit<RerunPlan, 'dryRun'>;

/** What applying a plan did. */
export interface RerunOutcome {
  plan: StorePlan;
  /** One result per task reset (a planned task deleted meanwhile is missing). */
  results: NamedResult[];
  /** The one counter write (and the status change it caused, or that reopened the container). */
  container: CounterResult;
}

type Row = { name: string; state: TaskState; dependsOn?: string[]; runWhen?: RunWhen };

interface Planned {
  plan: StorePlan;
  /** name → its row, for the planned tasks and their dependencies. */
  rows: Map<string, Row>;
}

/** The one projected read, and the closure of `step` over the dependents graph. */
async function planOf(ctx: StoreContext, containerId: ObjectId, step: string, downstream: boolean): Promise<Planned> {
  const docs: Row[] = await ctx.cols.tasks
    .find({ containerId }, { projection: { _id: 0, name: 1, state: 1, dependsOn: 1, runWhen: 1 } })
    .sort({ _id: 1 })
    .limit(RERUN_MAX_TASKS + 1)
    .toArray();
  if (docs.length > RERUN_MAX_TASKS) {
    throw new ValidationError(`cannot plan a re-run of a container with more than ${RERUN_MAX_TASKS} tasks`, { path: 'task', limit: RERUN_MAX_TASKS });
  }
  const rows = new Map(docs.map((d) => [d.name, d]));
  if (!rows.has(step)) throw new NotFoundError(`no task named ${JSON.stringify(step)} in this container`, { task: step, op: 'rerun' });
  const dependents = new Map<string, string[]>();
  for (const d of docs) for (const dep of d.dependsOn ?? []) dependents.set(dep, [...(dependents.get(dep) ?? []), d.name]);
  const planned = new Set([step]);
  if (downstream) {
    const queue = [step];
    while (queue.length) {
      for (const n of dependents.get(queue.shift()!) ?? []) {
        if (planned.has(n)) continue;
        planned.add(n);
        queue.push(n);
      }
    }
  }
  // Dependency order within the plan (Kahn over the planned subgraph; ties in insertion order).
  const inPlan = docs.filter((d) => planned.has(d.name));
  const missing = new Map(inPlan.map((d) => [d.name, (d.dependsOn ?? []).filter((x) => planned.has(x)).length]));
  const reset: string[] = [];
  const ready = inPlan.filter((d) => missing.get(d.name) === 0).map((d) => d.name);
  while (ready.length) {
    const n = ready.shift()!;
    reset.push(n);
    for (const m of dependents.get(n) ?? []) {
      if (!planned.has(m)) continue;
      const left = missing.get(m)! - 1;
      missing.set(m, left);
      if (left === 0) ready.push(m);
    }
  }
  const plan: StorePlan = {
    step,
    downstream,
    reset,
    interrupted: reset.filter((n) => rows.get(n)!.state === 'running'),
    kept: docs.filter((d) => !planned.has(d.name)).map((d) => d.name),
  };
  return { plan, rows };
}

/** The plan of a re-run from `step`, without writing anything (one read). */
export async function planRerun(ctx: StoreContext, containerId: ObjectId, step: string, downstream: boolean): Promise<StorePlan> {
  return (await planOf(ctx, containerId, step, downstream)).plan;
}

/**
 * After a change that left pending tasks in a container whose status is final (failed,
 * cancelled, succeeded), the container is running again (pending if nothing has started).
 * Conditional on the revision the counter write returned, like every status change.
 */
async function reopen(ctx: StoreContext, c: CounterResult): Promise<CounterResult> {
  const doc = c.container;
  if (!doc || doc.counts.pending === 0 || !FINAL_CONTAINER_STATUSES.includes(doc.status)) return c;
  const to = doc.total - doc.counts.pending > 0 ? 'running' : 'pending';
  const s = await settleStatus(ctx, doc, to);
  if (!s.statusChange) return c;
  return { container: s.container, statusChange: { from: c.statusChange?.from ?? s.statusChange.from, to } };
}

/** Plans a re-run from `step` and applies it (see the module comment for the order of writes). */
export async function rerunFrom(ctx: StoreContext, containerId: ObjectId, step: string, downstream: boolean): Promise<RerunOutcome> {
  const { plan, rows } = await planOf(ctx, containerId, step, downstream);
  const planned = new Set(plan.reset);
  // A satisfied dependency outside the plan that spawned children not all done yet still holds
  // its dependents back (children.ts): it counts as pending here.
  const external = new Set<string>();
  for (const n of plan.reset) for (const d of rows.get(n)!.dependsOn ?? []) if (!planned.has(d) && SATISFYING_TASK_STATES.includes(rows.get(d)?.state ?? 'pending')) external.add(d);
  const heldBack = await heldBackParents(ctx, containerId, [...external]);
  const results: NamedResult[] = [];
  const watched = new Set<string>();
  let delta = moveDelta(null, null, 0, 0, 0);
  for (const name of plan.reset) {
    const row = rows.get(name)!;
    const deps = row.dependsOn ?? [];
    // By the step's run condition (lib/run-when.ts), a planned dependency counting as pending.
    const states = new Map(deps.map((d) => [d, planned.has(d) || heldBack.has(d) ? ('pending' as const) : (rows.get(d)?.state ?? 'pending')]));
    const waitingOn = initialWaitingOn(row.runWhen ?? 'succeeded', deps, states);
    for (const d of waitingOn) if (d !== UNDECIDED) watched.add(d);
    const t: NamedTask = { containerId, name };
    try {
      const r = await rerunTask(ctx, t, waitingOn);
      results.push(r);
      if (r.delta) delta = addDeltas(delta, r.delta);
    } catch (err) {
      // Deleted since the plan was read (only a task nothing depends on can be): nothing to reset.
      if ((err as { code?: string }).code !== 'PTS_NOT_FOUND') throw err;
    }
  }
  const counted: CounterResult = isNoop(delta) ? { container: null, statusChange: null } : await applyCounters(ctx, containerId, delta);
  const container = await reopen(ctx, counted);
  await pullSatisfied(ctx, containerId, [...watched]);
  return { plan, results, container };
}

/** The last look: pulls from every `waitingOn` those of `names` that are satisfied now. */
async function pullSatisfied(ctx: StoreContext, containerId: ObjectId, names: string[]): Promise<void> {
  if (names.length === 0) return;
  const docs = await ctx.cols.tasks
    .find({ containerId, name: { $in: names }, state: { $in: [...SATISFYING_TASK_STATES] } }, { projection: { _id: 0, name: 1 } })
    .toArray();
  // A parent whose spawned children are not all done keeps its dependents waiting (children.ts).
  const held = await heldBackParents(ctx, containerId, docs.map((d) => d.name));
  const done = docs.map((d) => d.name).filter((n) => !held.has(n));
  if (done.length === 0) return;
  const st = stamp(ctx.clock.now());
  await ctx.cols.tasks.updateMany(
    { containerId, waitingOn: { $in: done } },
    { $pullAll: { waitingOn: done }, $set: { ...st.$set, unblockedAt: st.$set.updatedAt }, $inc: st.$inc, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
}

/**
 * Marks a task succeeded with `result` (an admin's fix by hand; the `markSucceeded` row), unblocks
 * its dependents, and reopens a finished container that now has pending tasks.
 */
export async function markSucceeded(ctx: StoreContext, t: NamedTask, result: unknown): Promise<NamedResult> {
  const r = await markSucceededTask(ctx, t, result);
  return { ...r, container: await reopen(ctx, r.container) };
}
