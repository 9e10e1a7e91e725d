/**
 * The recovery sweep's store side: ends attempts past their deadline (deadlines.ts), takes back
 * tasks whose lease expired (their worker is presumed dead), repairs counters left behind by a crash between a task write and its counter
 * write, clears `waitingOn` entries of dependencies that are already satisfied, and gives a
 * container blocked for good its final status. Anyone can run it at any time, from any process.
 * @internal
 */
import type { Filter, ObjectId } from 'mongodb';
import { isCleanup, UNDECIDED } from '../run-when';
import { SATISFYING_TASK_STATES, type TaskState } from '../states';
import type { StoreContext } from './context';
import { reconcileContainer, settleStatus, type CounterResult } from './counters';
import type { TaskDoc } from './documents';
import { readyFilter } from './filters';
import { heldBackParents } from './children';
import { unsyncedPauses } from './holds';
import { taskStates } from './queries';
import { overdueFilter } from './deadlines';
import { findReleasable, readyCleanups, releaseCleanupWaiters, releaseStep } from './run-when';
import { bypassTask, decideUndecided, expireLease, timeoutTask, unblockDependents, type TransitionResult } from './transitions';

export interface SweepResult {
  expired: TransitionResult[];
  /** Containers that got their final status because their pending tasks are blocked for good. */
  finalized: Array<{ name: string; result: CounterResult }>;
  reconciled: ObjectId[];
  unblocked: number;
  /** Cleanup steps the sweep decided to skip (`bypass`, run-when.ts). */
  decided: TransitionResult[];
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
 * Ends every running attempt past its deadline (`timeoutMs`/`stallMs`, deadlines.ts), up to
 * `limit`, optionally within one container — whether or not its heartbeats still arrive.
 */
export async function endOverdueAttempts(ctx: StoreContext, containerId?: ObjectId, limit = 1000): Promise<TransitionResult[]> {
  const filter: Filter<TaskDoc> = overdueFilter(ctx.clock.now());
  if (containerId) filter.containerId = containerId;
  const overdue = await ctx.cols.tasks.find(filter).limit(limit).toArray();
  const out: TransitionResult[] = [];
  for (const t of overdue) {
    const r = await timeoutTask(ctx, t);
    if (r) out.push(r);
  }
  return out;
}

/**
 * Clears `waitingOn` entries naming dependencies that already succeeded or were skipped (a
 * crash between a succeed and its unblock write, or a reset racing a dependency).
 */
export async function unblockSatisfied(ctx: StoreContext, containerId: ObjectId, decided: TransitionResult[] = [], seen: { cleanups?: boolean } = {}): Promise<number> {
  const blocked = await ctx.cols.tasks
    .find({ containerId, state: 'pending', 'waitingOn.0': { $exists: true } }, { projection: { waitingOn: 1, runWhen: 1 } })
    .limit(5000)
    .toArray();
  const names = [...new Set(blocked.flatMap((t) => t.waitingOn))];
  const states = await taskStates(ctx, containerId, names);
  const satisfied = names.filter((name) => SATISFYING_TASK_STATES.includes(states.get(name) ?? 'pending'));
  // A parent whose spawned children are not all done keeps its dependents waiting (children.ts).
  const held = await heldBackParents(ctx, containerId, satisfied);
  let n = 0;
  for (const name of satisfied) if (!held.has(name)) n += await unblockDependents(ctx, containerId, name);
  seen.cleanups = blocked.some((t) => isCleanup(t.runWhen));
  n += await repairCleanups(ctx, containerId, blocked, states, decided);
  return n;
}

/**
 * Cleanup steps (run-when.ts) left waiting by a crash between a dependency's write and theirs:
 * released from dependencies that failed or were cancelled, and `'failed'` steps waiting on
 * nothing but their verdict decided (bypasses go to `decided`). No command unless such steps wait.
 */
async function repairCleanups(
  ctx: StoreContext,
  containerId: ObjectId,
  blocked: Array<Pick<TaskDoc, 'waitingOn' | 'runWhen'>>,
  states: ReadonlyMap<string, TaskState>,
  decided: TransitionResult[],
): Promise<number> {
  const cleanups = blocked.filter((t) => isCleanup(t.runWhen));
  if (cleanups.length === 0) return 0;
  let n = 0;
  for (const name of new Set(cleanups.flatMap((t) => t.waitingOn))) {
    const s = states.get(name);
    if (s === 'failed' || s === 'cancelled') n += await releaseCleanupWaiters(ctx, containerId, name, s);
  }
  if (n > 0 || cleanups.some((t) => t.waitingOn.includes(UNDECIDED))) {
    const d = await decideUndecided(ctx, containerId);
    decided.push(...d);
    n += d.length;
  }
  return n;
}

/**
 * When nothing in the container can move: the cleanup steps whose dependencies are all final or
 * blocked for good (run-when.ts `releasable`) run (their `waitingOn` emptied) or, for a `'failed'`
 * step none of whose dependencies failed or is blocked by a failure, are bypassed. With `halted`
 * (a fail-fast run that stopped claiming) every pending `'succeeded'` step counts as blocked.
 * Returns how many steps it released to run and how many it bypassed.
 */
export async function releaseStuckCleanups(
  ctx: StoreContext,
  containerId: ObjectId,
  halted: boolean,
  decided: TransitionResult[] = [],
): Promise<{ ran: number; bypassed: number }> {
  const n = { ran: 0, bypassed: 0 };
  for (const r of await findReleasable(ctx, containerId, halted)) {
    if (r.verdict === 'run') {
      if (await releaseStep(ctx, r._id, r.waitingOn)) n.ran++;
      continue;
    }
    // A 'failed' step to skip: down to its marker first (conditional on what was read), then the bypass.
    if (!(await releaseStep(ctx, r._id, r.waitingOn, [UNDECIDED]))) continue;
    const b = await bypassTask(ctx, containerId, r);
    if (b) {
      decided.push(b);
      n.bypassed++;
    }
  }
  return n;
}

/**
 * A fail-fast run stopped claiming (runner.ts): releases the cleanup steps that would run if every
 * other pending step were blocked, and lists the cleanup steps now pending and waiting on nothing
 * (the ones the run still claims), with the bypasses it made.
 */
export async function haltedCleanups(ctx: StoreContext, containerId: ObjectId): Promise<{ ready: Array<Pick<TaskDoc, 'name' | 'runAfter'>>; decided: TransitionResult[] }> {
  const decided: TransitionResult[] = [];
  await releaseStuckCleanups(ctx, containerId, true, decided);
  return { ready: await readyCleanups(ctx, containerId), decided };
}

/**
 * Gives a container its final status when nothing in it can move any more: no task running,
 * none ready or waiting out a retry delay, and the pending ones all wait on a dependency that
 * failed or was cancelled. (Counters alone cannot tell "blocked for good" from "between two
 * claims".) Returns the status change, if any.
 */
export async function finalizeIfBlocked(ctx: StoreContext, containerId: ObjectId, out: { unblocked: number; decided: TransitionResult[] } = { unblocked: 0, decided: [] }): Promise<CounterResult | null> {
  let doc = await ctx.cols.containers.findOne({ _id: containerId });
  if (!doc || doc.counts.running > 0 || doc.counts.pending === 0 || doc.counts.failed + doc.counts.cancelled === 0) return null;
  // A task held by a pause is not blocked for good: it moves once the container is resumed.
  const movable = await ctx.cols.tasks.findOne(readyFilter({ containerId, includeHeld: true }), { projection: { _id: 1 } });
  if (movable) return null;
  const seen: { cleanups?: boolean } = {};
  if ((await unblockSatisfied(ctx, containerId, out.decided, seen)) > 0) return null;
  // Cleanup steps behind the blocked ones run before the container gets its final status.
  const released = seen.cleanups ? await releaseStuckCleanups(ctx, containerId, false, out.decided) : { ran: 0, bypassed: 0 };
  out.unblocked += released.ran + released.bypassed;
  if (released.ran > 0) return null;
  // Only bypasses (nothing became ready): look again — each pass skips at least one step.
  if (released.bypassed > 0) return finalizeIfBlocked(ctx, containerId, out);
  doc = await ctx.cols.containers.findOne({ _id: containerId });
  if (!doc || doc.counts.running > 0) return null;
  const r = await settleStatus(ctx, doc, doc.counts.failed > 0 ? 'failed' : 'cancelled');
  return r.statusChange ? r : null;
}

/** The full sweep: end attempts past their deadline, expire stale leases, then reconcile and unblock the containers involved. */
export async function sweep(ctx: StoreContext, containerIds: ObjectId[] | null, limit = 1000): Promise<SweepResult> {
  const expired: TransitionResult[] = [];
  // Deadlines first: an attempt past its deadline whose lease also ran out is a timeout.
  if (containerIds) for (const id of containerIds) expired.push(...(await endOverdueAttempts(ctx, id, limit)));
  else expired.push(...(await endOverdueAttempts(ctx, undefined, limit)));
  if (containerIds) for (const id of containerIds) expired.push(...(await expireStaleLeases(ctx, id, limit)));
  else expired.push(...(await expireStaleLeases(ctx, undefined, limit)));
  const touched = new Map<string, ObjectId>();
  for (const id of containerIds ?? []) touched.set(id.toHexString(), id);
  for (const r of expired) touched.set(r.task.containerId.toHexString(), r.task.containerId);
  // A pause or resume that crashed between its two writes (holds.ts), in a container where nothing runs or expires.
  if (!containerIds) for (const id of await unsyncedPauses(ctx, limit)) touched.set(id.toHexString(), id);
  const reconciled: ObjectId[] = [];
  const finalized: SweepResult['finalized'] = [];
  const decided: TransitionResult[] = [];
  let unblocked = 0;
  for (const id of touched.values()) {
    if (await reconcileContainer(ctx, id)) reconciled.push(id);
    unblocked += await unblockSatisfied(ctx, id, decided);
    const out = { unblocked: 0, decided };
    const f = await finalizeIfBlocked(ctx, id, out);
    unblocked += out.unblocked;
    if (f?.container) finalized.push({ name: f.container.name, result: f });
  }
  return { expired, reconciled, unblocked, finalized, decided };
}
