/**
 * The filters several store operations share, written once.
 * @internal
 */
import type { Filter, ObjectId } from 'mongodb';
import type { TaskDoc } from './documents';

/** What narrows a claim. `key: null` matches only tasks without a key; `{ $ne: null }` only keyed ones. */
export interface ReadyScope {
  containerId?: ObjectId;
  names?: string[];
  /** With `names`: also the children spawned by these tasks (a runner's `'parent/*'` handlers). */
  parents?: string[];
  key?: string | null | { $ne: null };
  /** Also match tasks held by a container pause (pause.ts): "could move, were it not paused". @defaultValue false */
  includeHeld?: boolean;
}

/**
 * A task that may be claimed now: pending, waiting on no dependency, past its retry delay
 * (`runAfter`), not held by a container pause (`pause`, see pause.ts). Without `now` the delay
 * is ignored (ready once its delay has passed).
 */
export function readyFilter(scope: ReadyScope = {}, now?: Date): Filter<TaskDoc> {
  const f: Filter<TaskDoc> = { state: 'pending', 'waitingOn.0': { $exists: false } };
  if (!scope.includeHeld) f.pause = { $exists: false };
  if (now) f.runAfter = { $lte: now };
  if (scope.containerId) f.containerId = scope.containerId;
  if (scope.names && scope.parents?.length) f.$or = [{ name: { $in: scope.names } }, { parent: { $in: scope.parents } }];
  else if (scope.names) f.name = { $in: scope.names };
  if (scope.key !== undefined) f.key = scope.key;
  return f;
}

/**
 * The order in which ready tasks are claimed: higher `priority` first, then the lower creation
 * number (`seq`, allocated by the database: sequence.ts), then `_id` (which only decides between
 * tasks stored before `seq` existed: they have none, and a missing field sorts first). Served by
 * the `container_state_priority_seq` and `state_key_priority_seq` indexes.
 */
export const CLAIM_ORDER = Object.freeze({ priority: -1, seq: 1, _id: 1 } as const);

/** The fence: a write by the holder of lease `fence` on a task that is still running under it. */
export function heldFilter(held: Pick<TaskDoc, '_id' | 'fence'>): Filter<TaskDoc> {
  return { _id: held._id, state: 'running', fence: held.fence };
}
