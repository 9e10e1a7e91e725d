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
  key?: string | null | { $ne: null };
}

/**
 * A task that may be claimed now: pending, waiting on no dependency, past its retry delay
 * (`runAfter`). Without `now` the delay is ignored (ready once its delay has passed).
 */
export function readyFilter(scope: ReadyScope = {}, now?: Date): Filter<TaskDoc> {
  const f: Filter<TaskDoc> = { state: 'pending', 'waitingOn.0': { $exists: false } };
  if (now) f.runAfter = { $lte: now };
  if (scope.containerId) f.containerId = scope.containerId;
  if (scope.names) f.name = { $in: scope.names };
  if (scope.key !== undefined) f.key = scope.key;
  return f;
}

/** The fence: a write by the holder of lease `fence` on a task that is still running under it. */
export function heldFilter(held: Pick<TaskDoc, '_id' | 'fence'>): Filter<TaskDoc> {
  return { _id: held._id, state: 'running', fence: held.fence };
}
