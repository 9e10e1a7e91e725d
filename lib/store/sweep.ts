/**
 * The recovery sweep's store side: takes back tasks whose lease expired (their worker is
 * presumed dead), repairs counters left behind by a crash between a task write and its counter
 * write, clears `waitingOn` entries of dependencies that are already satisfied, and gives a
 * container blocked for good its final status. Anyone can run it at any time, from any process.
 * @internal
 */
import type { Filter, ObjectId } from 'mongodb';
import { SATISFYING_TASK_STATES } from '../states';
import type { StoreContext } from './context';
import { reconcileContainer, settleStatus, type CounterResult } from './counters';
import type { TaskDoc } from './documents';
import { readyFilter } from './filters';
import { taskStates } from './queries';
import { expireLease, unblockDependents, type TransitionResult } from './transitions';

export interface SweepResult {
  expired: TransitionResult[];
  /** Containers that got their final status because their pending tasks are blocked for good. */
  finalized: Array<{ name: string; result: CounterResult }>;
  reconciled: ObjectId[];
  unblocked: number;
}

/** Expires every lease that ran out (up to `limit`), optionally within one container. */
export async function expireStaleLeases(ctx: StoreContext, containerId?: ObjectId, limit = 1000): Promise<TransitionResult[]> {
  const now = ctx.clock.now();
  const filter: Filter<TaskDoc> = { state: 'running', 'lease.expiresAt': { $lte: now } };
  if (containerId) filter.containerId = containerId;
  const stale = await ctx.cols.tasks.find(filter).limit(limit).toArray();
  const out: TransitionResult[] = [];
  for (const t of stale) {
    const r = await expireLease(ctx, t);
    if (r) out.push(r);
  }
  return out;
}

/**
 * Clears `waitingOn` entries naming dependencies that already succeeded or were skipped (a
 * crash between a succeed and its unblock write, or a reset racing a dependency).
 */
export async function unblockSatisfied(ctx: StoreContext, containerId: ObjectId): Promise<number> {
  const blocked = await ctx.cols.tasks
    .find({ containerId, state: 'pending', 'waitingOn.0': { $exists: true } }, { projection: { waitingOn: 1 } })
    .limit(5000)
    .toArray();
  const names = [...new Set(blocked.flatMap((t) => t.waitingOn))];
  const states = await taskStates(ctx, containerId, names);
  let n = 0;
  for (const name of names) {
    const s = states.get(name);
    if (s && SATISFYING_TASK_STATES.includes(s)) n += await unblockDependents(ctx, containerId, name);
  }
  return n;
}

/**
 * Gives a container its final status when nothing in it can move any more: no task running,
 * none ready or waiting out a retry delay, and the pending ones all wait on a dependency that
 * failed or was cancelled. (Counters alone cannot tell "blocked for good" from "between two
 * claims".) Returns the status change, if any.
 */
export async function finalizeIfBlocked(ctx: StoreContext, containerId: ObjectId): Promise<CounterResult | null> {
  let doc = await ctx.cols.containers.findOne({ _id: containerId });
  if (!doc || doc.counts.running > 0 || doc.counts.pending === 0 || doc.counts.failed + doc.counts.cancelled === 0) return null;
  const movable = await ctx.cols.tasks.findOne(readyFilter({ containerId }), { projection: { _id: 1 } });
  if (movable) return null;
  if ((await unblockSatisfied(ctx, containerId)) > 0) return null;
  doc = await ctx.cols.containers.findOne({ _id: containerId });
  if (!doc || doc.counts.running > 0) return null;
  const r = await settleStatus(ctx, doc, doc.counts.failed > 0 ? 'failed' : 'cancelled');
  return r.statusChange ? r : null;
}

/** The full sweep: expire stale leases, then reconcile and unblock the containers involved. */
export async function sweep(ctx: StoreContext, containerIds: ObjectId[] | null, limit = 1000): Promise<SweepResult> {
  const expired: TransitionResult[] = [];
  if (containerIds) for (const id of containerIds) expired.push(...(await expireStaleLeases(ctx, id, limit)));
  else expired.push(...(await expireStaleLeases(ctx, undefined, limit)));
  const touched = new Map<string, ObjectId>();
  for (const id of containerIds ?? []) touched.set(id.toHexString(), id);
  for (const r of expired) touched.set(r.task.containerId.toHexString(), r.task.containerId);
  const reconciled: ObjectId[] = [];
  const finalized: SweepResult['finalized'] = [];
  let unblocked = 0;
  for (const id of touched.values()) {
    if (await reconcileContainer(ctx, id)) reconciled.push(id);
    unblocked += await unblockSatisfied(ctx, id);
    const f = await finalizeIfBlocked(ctx, id);
    if (f?.container) finalized.push({ name: f.container.name, result: f });
  }
  return { expired, reconciled, unblocked, finalized };
}
