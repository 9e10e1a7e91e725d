/**
 * Why a conditional write matched nothing, as a typed error: the refusal messages of every
 * transition, in one place. Each reads the task once (only after the write was refused) and
 * reports what it found.
 * @internal
 */
import type { ObjectId } from 'mongodb';
import { InvalidTransitionError, LeaseLostError, NotFoundError } from '../errors';
import type { TaskState } from '../states';
import type { StoreContext } from './context';
import { deadlineLost } from './deadlines';
import type { TaskDoc } from './documents';

/** What a fenced refusal needs to know about the caller's lease. */
export type FencedHolder = Pick<TaskDoc, '_id' | 'name' | 'container' | 'fence'>;

/** Why a fenced write matched nothing: the task is gone, or the caller's lease is. */
export async function fencedFailure(ctx: StoreContext, held: FencedHolder, op: string): Promise<never> {
  const cur = await ctx.cols.tasks.findOne({ _id: held._id }, { projection: { state: 1, fence: 1, lease: 1, invokeCount: 1, failures: 1 } });
  if (!cur) throw new NotFoundError(`task ${JSON.stringify(held.name)} no longer exists`, { task: held.name, op });
  throw lostLease(held, op, cur, ctx.clock.now());
}

/**
 * The error for a lease token that is not (or no longer) the task's current one: a
 * `TaskTimeoutError`/`TaskStalledError` when its deadline ended it (deadlines.ts; `now`: the
 * store clock's time of the refusal), else a plain `LeaseLostError`.
 */
export function lostLease(
  held: Pick<TaskDoc, 'name' | 'container' | 'fence'>,
  op: string,
  cur: Pick<TaskDoc, 'state' | 'fence' | 'lease'> & Partial<Pick<TaskDoc, 'failures' | 'invokeCount'>>,
  now?: Date,
): LeaseLostError {
  const byDeadline = now ? deadlineLost(held, op, cur, now) : null;
  if (byDeadline) return byDeadline;
  const holder = cur.state === 'running' && cur.lease ? `; it is running under token ${cur.fence}, held by ${cur.lease.owner}` : `; it is ${cur.state} now`;
  return new LeaseLostError(`lease token ${held.fence} on task ${JSON.stringify(held.name)} is no longer valid${holder}`, {
    task: held.name,
    container: held.container,
    op,
    token: held.fence,
    currentToken: cur.fence,
    state: cur.state,
  });
}

/** Why a write by name matched nothing: no such task, or it is in a state the transition does not start from. */
export async function namedFailure(ctx: StoreContext, containerId: ObjectId, name: string, op: string, allowed: readonly TaskState[]): Promise<never> {
  const cur = await ctx.cols.tasks.findOne({ containerId, name }, { projection: { state: 1, container: 1 } });
  refusal(name, op, allowed, cur);
}

/** The error for a by-name transition refused on what was read (`cur`: the task, or null). */
export function refusal(name: string, op: string, allowed: readonly TaskState[], cur: { state: TaskState } | null): never {
  if (!cur) throw new NotFoundError(`no task named ${JSON.stringify(name)} in this container`, { task: name, op });
  if (allowed.includes(cur.state)) {
    // It changed between the attempt and this read (added, or moved and back): say so rather
    // than "it is pending (allowed from pending)".
    throw new InvalidTransitionError(`cannot ${op} task ${JSON.stringify(name)}: it changed concurrently (now ${cur.state}); retry`, {
      task: name,
      op,
      state: cur.state,
      allowed,
      concurrent: true,
    });
  }
  throw new InvalidTransitionError(`cannot ${op} task ${JSON.stringify(name)}: it is ${cur.state} (allowed from ${allowed.join(', ')})`, {
    task: name,
    op,
    state: cur.state,
    allowed,
  });
}

/** A delete refused because another task depends on this one (the table allows it; the graph does not). */
export function dependentRefusal(name: string, dependent: string): never {
  throw new InvalidTransitionError(`cannot delete task ${JSON.stringify(name)}: ${JSON.stringify(dependent)} depends on it`, {
    task: name,
    op: 'delete',
    dependent,
  });
}
