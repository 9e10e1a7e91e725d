/**
 * The changes feed's reads: tasks, containers and tombstones after a position in
 * (changedAt, _id) order, below a horizon, optionally narrowed to one container or to name
 * prefixes. Merging and cursors are in changes.ts.
 * @internal
 */
import type { Filter, ObjectId, Timestamp } from 'mongodb';
import type { StoreContext } from './context';
import type { ContainerDoc, TaskDoc } from './documents';
import type { TombstoneDoc } from './models';
import { prefixesRegex } from './queries';
import { containerWasDeleted } from './tombstones';

/** A feed position: the change stamp and the document id. */
export interface FeedPosition {
  ts: Timestamp;
  id: ObjectId;
}

/** Which part of the feed: all of it, one container (by name) or containers whose name starts with one of `prefixes`. */
export type FeedScope = { container: string } | { prefixes: string[] } | Record<string, never>;

/** What one page read found (each list sorted by position, at most `limit` long); `missing`: the container does not exist and never did. */
export interface FeedRead {
  tasks: TaskDoc[];
  containers: ContainerDoc[];
  tombstones: TombstoneDoc[];
  missing: boolean;
}

type Stamped = { _id: ObjectId; changedAt: Timestamp };

function after(p: FeedPosition, horizon: Timestamp): Filter<Stamped> {
  return {
    $and: [{ $or: [{ changedAt: { $gt: p.ts } }, { changedAt: p.ts, _id: { $gt: p.id } }] }, { changedAt: { $lt: horizon } }],
  };
}

function and<T>(extra: Filter<T> | null, range: Filter<Stamped>): Filter<T> {
  return (extra ? { $and: [extra, range] } : range) as Filter<T>;
}

export async function readFeed(ctx: StoreContext, scope: FeedScope, from: FeedPosition, horizon: Timestamp, limit: number): Promise<FeedRead> {
  const range = after(from, horizon);
  let taskScope: Filter<TaskDoc> | null = null;
  let containerScope: Filter<ContainerDoc> | null = null;
  let tombstoneScope: Filter<TombstoneDoc> | null = null;
  let skipLive = false;
  if ('container' in scope) {
    const name = scope.container;
    const c = await ctx.cols.containers.findOne({ name }, { projection: { _id: 1 } });
    // Deletions are matched by name: a follower of a deleted (or deleted and re-created)
    // container sees the deletion instead of a 404.
    tombstoneScope = { container: name };
    if (c) {
      taskScope = { containerId: c._id };
      containerScope = { _id: c._id };
    } else {
      if (!(await containerWasDeleted(ctx, name))) return { tasks: [], containers: [], tombstones: [], missing: true };
      skipLive = true;
    }
  } else if ('prefixes' in scope && !scope.prefixes.includes('')) {
    const re = prefixesRegex(scope.prefixes);
    taskScope = { container: re };
    containerScope = { name: re };
    tombstoneScope = { container: re };
  }
  const sort = { changedAt: 1, _id: 1 } as const;
  const [tasks, containers, tombstones] = await Promise.all([
    skipLive
      ? []
      : ctx.cols.tasks.find(and(taskScope, range), { sort, limit, projection: { taskData: 0, processingData: 0, result: 0, failures: 0 } }).toArray(),
    skipLive ? [] : ctx.cols.containers.find(and(containerScope, range), { sort, limit }).toArray(),
    ctx.cols.tombstones.find(and(tombstoneScope, range), { sort, limit }).toArray(),
  ]);
  return { tasks, containers, tombstones, missing: false };
}
