/**
 * Container counters: per-state counts and weights and the progress sum, kept on the container
 * document so a summary never scans tasks. Each task transition is followed by one `$inc` here;
 * a crash between the two writes is repaired by {@link reconcileContainer}.
 * @internal
 */
import type { ObjectId } from 'mongodb';
import { deriveContainerStatus, emptyCounts, TASK_STATES, type ContainerStatus, type StateCounts, type TaskState } from '../states';
import type { StoreContext } from './context';
import { stamp } from './context';
import type { ContainerDoc } from './documents';
import { syncPause } from './holds';

export interface CounterDelta {
  counts: Partial<StateCounts>;
  weights: Partial<StateCounts>;
  total: number;
  weightTotal: number;
  progressSum: number;
}

/** The counter change of one task moving from `from` to `to` (null = added / removed). */
export function moveDelta(
  from: TaskState | null,
  to: TaskState | null,
  weight: number,
  wpctBefore: number,
  wpctAfter: number,
): CounterDelta {
  const d: CounterDelta = { counts: {}, weights: {}, total: 0, weightTotal: 0, progressSum: 0 };
  if (from) {
    d.counts[from] = -1;
    d.weights[from] = -weight;
    if (from !== 'running') d.progressSum -= wpctBefore;
  } else {
    d.total += 1;
    d.weightTotal += weight;
  }
  if (to) {
    d.counts[to] = (d.counts[to] ?? 0) + 1;
    d.weights[to] = (d.weights[to] ?? 0) + weight;
    if (to !== 'running') d.progressSum += wpctAfter;
  } else {
    d.total -= 1;
    d.weightTotal -= weight;
  }
  return d;
}

export function addDeltas(a: CounterDelta, b: CounterDelta): CounterDelta {
  const out: CounterDelta = {
    counts: { ...a.counts },
    weights: { ...a.weights },
    total: a.total + b.total,
    weightTotal: a.weightTotal + b.weightTotal,
    progressSum: a.progressSum + b.progressSum,
  };
  for (const s of TASK_STATES) {
    if (b.counts[s]) out.counts[s] = (out.counts[s] ?? 0) + b.counts[s]!;
    if (b.weights[s]) out.weights[s] = (out.weights[s] ?? 0) + b.weights[s]!;
  }
  return out;
}

export function isNoop(d: CounterDelta): boolean {
  return (
    d.total === 0 &&
    d.weightTotal === 0 &&
    d.progressSum === 0 &&
    TASK_STATES.every((s) => !d.counts[s] && !d.weights[s])
  );
}

/**
 * Counter deltas held back by a runner (runner.ts): each success of `container.run()` hands its
 * delta here instead of writing it, and the runner's next claim in that container adds it to its
 * own counter write (one `$inc` for both), or the runner writes it alone ({@link applyCarry})
 * before anything else it does. A crash in between leaves the counters behind the tasks, as a
 * crash between any transition's two writes does; {@link reconcileContainer} repairs it (every
 * runner's start-up sweep of its container, the recovery sweep of an expired lease).
 */
export interface CounterCarry {
  containerId: ObjectId;
  delta: CounterDelta | null;
}

/** Adds `d` to what `carry` holds. */
export function carryAdd(carry: CounterCarry, d: CounterDelta): void {
  carry.delta = carry.delta ? addDeltas(carry.delta, d) : d;
}

/** Takes what `carry` holds for `containerId` (leaving it empty); null when it holds nothing for it. */
export function carryTake(carry: CounterCarry | undefined, containerId: ObjectId): CounterDelta | null {
  if (!carry?.delta || !carry.containerId.equals(containerId)) return null;
  const d = carry.delta;
  carry.delta = null;
  return d;
}

/** Writes what `carry` holds on its own (a counter write with its status settled); no command when empty. */
export async function applyCarry(ctx: StoreContext, carry: CounterCarry): Promise<CounterResult> {
  const d = carryTake(carry, carry.containerId);
  if (!d || isNoop(d)) return { container: null, statusChange: null };
  return applyCounters(ctx, carry.containerId, d);
}

/** Result of a counter write: the container after it, and its status change if this write caused one. */
export interface CounterResult {
  container: ContainerDoc | null;
  statusChange: { from: ContainerStatus; to: ContainerStatus } | null;
}

/**
 * Applies a delta in one `$inc`, then settles the derived status (one more write only when it
 * changes). With `running: true` (a claim) the status is set to running in the same write —
 * after a claim nothing else can be derived — so a claim is always exactly two commands.
 */
export async function applyCounters(ctx: StoreContext, containerId: ObjectId, delta: CounterDelta, running = false): Promise<CounterResult> {
  const now = ctx.clock.now();
  const inc: Record<string, number> = { rev: 1 };
  for (const s of TASK_STATES) {
    if (delta.counts[s]) inc[`counts.${s}`] = delta.counts[s]!;
    if (delta.weights[s]) inc[`weights.${s}`] = delta.weights[s]!;
  }
  if (delta.total) inc.total = delta.total;
  if (delta.weightTotal) inc.weightTotal = delta.weightTotal;
  if (delta.progressSum) inc.progressSum = delta.progressSum;
  const st = stamp(now);
  if (running) {
    const before = await ctx.cols.containers.findOneAndUpdate(
      { _id: containerId },
      { $inc: inc, $set: { ...st.$set, status: 'running', endedAt: null }, $min: { startedAt: now }, $currentDate: st.$currentDate },
      { returnDocument: 'before', writeConcern: ctx.writeConcern },
    );
    if (!before) return { container: null, statusChange: null };
    const after = { ...before, status: 'running' as const, rev: before.rev + 1 };
    return { container: after, statusChange: before.status === 'running' ? null : { from: before.status, to: 'running' } };
  }
  const doc = await ctx.cols.containers.findOneAndUpdate(
    { _id: containerId },
    { $inc: inc, $set: st.$set, $currentDate: st.$currentDate },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  if (!doc) return { container: null, statusChange: null };
  return settleStatus(ctx, doc, deriveContainerStatus(doc.counts, doc.status));
}

/**
 * Moves the container to `to` if it is still at the revision `doc` was read at. A writer that
 * loses this race has been overtaken by a later counter write, whose own settle sees the newer
 * counts: the last writer always settles.
 */
export async function settleStatus(ctx: StoreContext, doc: ContainerDoc, to: ContainerStatus): Promise<CounterResult> {
  if (to === doc.status) return { container: doc, statusChange: null };
  const now = ctx.clock.now();
  const finished = to === 'succeeded' || to === 'failed' || to === 'cancelled';
  const set: Record<string, unknown> = { status: to, updatedAt: now, endedAt: finished ? now : null };
  if (to === 'running' && !doc.startedAt) set.startedAt = now;
  const updated = await ctx.cols.containers.findOneAndUpdate(
    { _id: doc._id, rev: doc.rev, status: doc.status },
    { $set: set, $inc: { rev: 1 }, $currentDate: { changedAt: { $type: 'timestamp' } } },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  if (!updated) return { container: doc, statusChange: null };
  return { container: updated, statusChange: { from: doc.status, to } };
}

/** What the counters should say, rebuilt from the tasks with `$group`/`$sum` (server-side). */
export async function countFromTasks(
  ctx: StoreContext,
  containerId: ObjectId,
): Promise<{ counts: StateCounts; weights: StateCounts; total: number; weightTotal: number; progressSum: number }> {
  // FerretDB's $group has $sum but no $multiply, and its $sum of a field updated by $set can
  // come back as 0: group by (state, weight, percentage) and count, then multiply here.
  const rows = await ctx.cols.tasks
    .aggregate<{ _id: { s: TaskState; w: number; p: number | null }; n: number }>([
      { $match: { containerId } },
      { $group: { _id: { s: '$state', w: '$weight', p: '$percentageComplete' }, n: { $sum: 1 } } },
    ])
    .toArray();
  const counts = emptyCounts();
  const weights = emptyCounts();
  let total = 0;
  let weightTotal = 0;
  let progressSum = 0;
  for (const r of rows) {
    const { s, w } = r._id;
    const pct = r._id.p ?? 0;
    counts[s] += r.n;
    weights[s] += r.n * w;
    total += r.n;
    weightTotal += r.n * w;
    if (s !== 'running') progressSum += r.n * pct * w;
  }
  return { counts, weights, total, weightTotal, progressSum };
}

const EPSILON = 1e-6;

type Truth = Awaited<ReturnType<typeof countFromTasks>>;

function matches(doc: ContainerDoc, truth: Truth): boolean {
  return (
    doc.total === truth.total &&
    Math.abs(doc.weightTotal - truth.weightTotal) < EPSILON &&
    Math.abs(doc.progressSum - truth.progressSum) < EPSILON * Math.max(1, truth.weightTotal) &&
    TASK_STATES.every((s) => doc.counts[s] === truth.counts[s] && Math.abs(doc.weights[s] - truth.weights[s]) < EPSILON)
  );
}

/** How long a difference must persist, with the container's revision unchanged, to count as drift. */
export const RECONCILE_SETTLE_MS = 250;

/**
 * Rewrites the container's counters from its tasks if they differ. A difference can be a crash
 * between a task write and its counter write (drift), or a transition in flight right now, whose
 * counter write is about to land. So a difference is only repaired if it persists for
 * {@link RECONCILE_SETTLE_MS} with the container's revision unchanged, and the write is
 * conditional on that revision. (Without transactions this narrows, not closes, the window: a
 * transition whose two writes straddle the final check can still be counted twice, until the
 * next reconcile.) It also makes the tasks' pause holds agree with the container (pause.ts).
 * Returns true if it repaired something.
 */
export async function reconcileContainer(ctx: StoreContext, containerId: ObjectId, settleMs = RECONCILE_SETTLE_MS): Promise<boolean> {
  let synced = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    const before = await ctx.cols.containers.findOne({ _id: containerId });
    if (!before) return synced > 0;
    if (attempt === 0) synced = await syncPause(ctx, before);
    if (matches(before, await countFromTasks(ctx, containerId))) {
      await settleStatus(ctx, before, deriveContainerStatus(before.counts, before.status));
      return synced > 0;
    }
    await new Promise((r) => setTimeout(r, settleMs));
    const again = await ctx.cols.containers.findOne({ _id: containerId });
    if (!again) return false;
    if (again.rev !== before.rev) continue; // a counter write landed meanwhile: look again
    const truth = await countFromTasks(ctx, containerId);
    if (matches(again, truth)) return synced > 0;
    const now = ctx.clock.now();
    const updated = await ctx.cols.containers.findOneAndUpdate(
      { _id: containerId, rev: before.rev },
      {
        $set: { ...truth, updatedAt: now },
        $inc: { rev: 1 },
        $currentDate: { changedAt: { $type: 'timestamp' } },
      },
      { returnDocument: 'after', writeConcern: ctx.writeConcern },
    );
    if (updated) {
      await settleStatus(ctx, updated, deriveContainerStatus(updated.counts, updated.status));
      return true;
    }
  }
  return synced > 0;
}
