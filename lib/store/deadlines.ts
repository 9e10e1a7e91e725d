/**
 * Deadlines of an attempt: a task's `timeoutMs` (bounds one attempt) and `stallMs` (bounds the
 * time without progress, status or checkpoint). They live with the lease — `lease.timeoutAt`,
 * `lease.stallAt` and their minimum `lease.deadline` — so the database enforces them, not only
 * the process: a holder's write past `lease.deadline` is refused in the same command (the filter
 * below), and any process's sweep ends a running attempt past it (`timeoutTask` in
 * transitions.ts), even while a wedged process's heartbeat timer still fires.
 *
 * Times are the store clock's (`ctx.clock`), never `Date.now()`.
 * @internal
 */
import type { Filter } from 'mongodb';
import { LeaseLostError, TaskStalledError, TaskTimeoutError } from '../errors';
import type { FailureRecord } from '../types';
import type { StoreContext } from './context';
import { stamp } from './context';
import type { FailureDoc, LeaseDoc, TaskDoc } from './documents';

/** Why a deadline ended an attempt. */
export type DeadlineKind = 'timeout' | 'stalled';

/** The failure codes of an attempt ended by its deadline (FailureRecord.code). */
export const DEADLINE_FAILURE_CODES: Readonly<Record<DeadlineKind, string>> = Object.freeze({ timeout: 'TASK_TIMEOUT', stalled: 'TASK_STALLED' });

/** The lease fields of the deadline. */
export type LeaseDeadline = Pick<LeaseDoc, 'timeoutAt' | 'stallAt' | 'deadline' | 'stallMs'>;

/**
 * The filter part every holder's write carries: the lease's deadline has not passed at `now`
 * (absent: no deadline). `$not` matches a missing field, so tasks without limits are unaffected.
 */
export function withinDeadline(now: Date): Filter<TaskDoc> {
  return { 'lease.deadline': { $not: { $lte: now } } };
}

/** A running task past its deadline at `now` (the sweep's query). */
export function overdueFilter(now: Date): Filter<TaskDoc> {
  return { state: 'running', 'lease.deadline': { $lte: now } };
}

function sooner(a: Date | undefined, b: Date | undefined): Date | undefined {
  if (!a) return b;
  if (!b) return a;
  return a.getTime() <= b.getTime() ? a : b;
}

/** The deadline of an attempt claimed at `now`, or null for a task with neither limit. */
export function claimDeadline(t: Pick<TaskDoc, 'timeoutMs' | 'stallMs'>, now: Date): LeaseDeadline | null {
  if (t.timeoutMs === undefined && t.stallMs === undefined) return null;
  const d: LeaseDeadline = {};
  if (t.timeoutMs !== undefined) d.timeoutAt = new Date(now.getTime() + t.timeoutMs);
  if (t.stallMs !== undefined) {
    d.stallAt = new Date(now.getTime() + t.stallMs);
    d.stallMs = t.stallMs;
  }
  d.deadline = sooner(d.timeoutAt, d.stallAt);
  return d;
}

function leaseSet(d: LeaseDeadline): Record<string, Date | number> {
  const set: Record<string, Date | number> = {};
  for (const [k, v] of Object.entries(d)) if (v !== undefined) set[`lease.${k}`] = v;
  return set;
}

/**
 * Arms the deadline of a task just claimed (`claimTask`), for tasks with a limit only: a second
 * write, fenced by the claim's token (a claim cannot compute a per-task time in its own update
 * without an update pipeline, which FerretDB lacks). A crash between the two leaves a lease
 * without a deadline, which expires as any other. Returns the task as written.
 */
export async function armDeadline(ctx: StoreContext, task: TaskDoc, now: Date): Promise<TaskDoc> {
  const d = claimDeadline(task, now);
  if (!d || !task.lease) return task;
  const st = stamp(now);
  const after = await ctx.cols.tasks.findOneAndUpdate(
    { _id: task._id, state: 'running', fence: task.fence },
    { $set: { ...st.$set, ...leaseSet(d) }, $inc: st.$inc, $currentDate: st.$currentDate },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  // Cancelled (or taken) in between: the holder learns it on its first write.
  return after ?? task;
}

/** True when a heartbeat's patch reports something (progress, status text or checkpoint). */
export function reportsProgress(patch: { percentageComplete?: unknown; statusText?: unknown; processingData?: unknown }): boolean {
  return patch.percentageComplete !== undefined || patch.statusText !== undefined || patch.processingData !== undefined;
}

/**
 * What a heartbeat adds to its one command: the filter part refusing it past the deadline and,
 * when it carries progress/status/checkpoint and the task has `stallMs`, the stall deadline moved
 * to `now + stallMs` (a bare heartbeat leaves it). `lease`: the new values, for the holder to
 * keep once the write succeeded ({@link keepDeadline}).
 */
export function beatDeadline(
  held: { lease: LeaseDoc | null },
  patch: Parameters<typeof reportsProgress>[0],
  now: Date,
): { filter: Filter<TaskDoc>; set: Record<string, Date | number>; lease: LeaseDeadline } {
  const filter = withinDeadline(now);
  const stallMs = held.lease?.stallMs;
  if (stallMs === undefined || !reportsProgress(patch)) return { filter, set: {}, lease: {} };
  const stallAt = new Date(now.getTime() + stallMs);
  const lease: LeaseDeadline = { stallAt, deadline: sooner(held.lease?.timeoutAt, stallAt) };
  return { filter, set: leaseSet(lease), lease };
}

/** After a heartbeat succeeded: the holder's copy of its lease gets the deadline it wrote. */
export function keepDeadline(held: { lease: LeaseDoc | null }, lease: LeaseDeadline): void {
  if (held.lease) Object.assign(held.lease, lease);
}

/** Which limit a lease ran into at `now` (the timeout if both), or null while within both. */
export function overdueKind(lease: LeaseDoc | null | undefined, now: Date): DeadlineKind | null {
  if (!lease?.deadline || lease.deadline.getTime() > now.getTime()) return null;
  if (lease.timeoutAt && lease.timeoutAt.getTime() <= now.getTime()) return 'timeout';
  return lease.stallAt ? 'stalled' : 'timeout';
}

/** The failure record of an attempt ended by its deadline. */
export function deadlineFailure(seen: Pick<TaskDoc, 'invokeCount' | 'timeoutMs' | 'stallMs'> & { lease: LeaseDoc | null }, kind: DeadlineKind, now: Date): FailureDoc {
  const lease = seen.lease;
  const message =
    kind === 'timeout'
      ? `attempt ${seen.invokeCount} ran past its timeout of ${seen.timeoutMs ?? '?'} ms (deadline ${lease?.timeoutAt?.toISOString() ?? '?'})`
      : `attempt ${seen.invokeCount} reported no progress for ${lease?.stallMs ?? seen.stallMs ?? '?'} ms (deadline ${lease?.stallAt?.toISOString() ?? '?'})`;
  return { attempt: seen.invokeCount, at: now, message, stack: null, code: DEADLINE_FAILURE_CODES[kind], workerId: lease?.owner ?? null, kind };
}

/** The typed error telling a holder its attempt ended by `kind`. */
export function deadlineError(kind: DeadlineKind, message: string, details: Record<string, unknown>): LeaseLostError {
  return kind === 'timeout' ? new TaskTimeoutError(message, details) : new TaskStalledError(message, details);
}

function newestFailure(failures: TaskDoc['failures'] | undefined): FailureRecord | undefined {
  const slots = Array.isArray(failures) ? failures : Object.values(failures ?? {});
  let newest: FailureRecord | undefined;
  for (const f of slots) if (f && (!newest || f.attempt > newest.attempt || (f.attempt === newest.attempt && f.at > newest.at))) newest = f;
  return newest;
}

/**
 * Why a holder's write was refused, when its deadline is the reason: the task still runs under
 * its token past the deadline (not swept yet), or its attempt was ended by the deadline (nothing
 * claimed it since: same token, and the newest failure, of this attempt, a timeout/stall). Null otherwise.
 */
export function deadlineLost(
  held: Pick<TaskDoc, 'name' | 'container' | 'fence'>,
  op: string,
  cur: Pick<TaskDoc, 'state' | 'fence' | 'lease'> & { failures?: TaskDoc['failures']; invokeCount?: number },
  now: Date,
): LeaseLostError | null {
  if (cur.fence !== held.fence) return null;
  const details = { task: held.name, container: held.container, op, token: held.fence, currentToken: cur.fence, state: cur.state };
  if (cur.state === 'running') {
    const kind = overdueKind(cur.lease, now);
    if (!kind) return null;
    const at = (kind === 'timeout' ? cur.lease?.timeoutAt : cur.lease?.stallAt) ?? cur.lease?.deadline;
    const what = kind === 'timeout' ? 'ran past its timeout' : 'stalled (no progress)';
    return deadlineError(kind, `task ${JSON.stringify(held.name)} ${what} at ${at?.toISOString() ?? '?'}: lease token ${held.fence} is no longer valid`, {
      ...details,
      kind,
      deadline: at ?? null,
    });
  }
  const f = newestFailure(cur.failures);
  if (!f || (f.kind !== 'timeout' && f.kind !== 'stalled') || f.attempt !== cur.invokeCount) return null;
  return deadlineError(f.kind, `task ${JSON.stringify(held.name)} was ended by its deadline: ${f.message}; lease token ${held.fence} is no longer valid (it is ${cur.state} now)`, {
    ...details,
    kind: f.kind,
  });
}
