/**
 * Deletion records for the changes feed (`pts_tombstones`): written before a task or container
 * is deleted, withdrawn when the delete loses a race, pruned by age.
 * @internal
 */
import type { Filter, ObjectId } from 'mongodb';
import type { StoreContext } from './context';
import type { TombstoneDoc } from './models';
import { prefixRegex } from './queries';

/** What a tombstone records (its `_id` is the deleted document's `_id`). */
export interface TombstoneInput {
  _id: ObjectId;
  kind: 'task' | 'container';
  container: string;
  containerId: ObjectId;
  task: string | null;
  /** A guarded container delete (retention.ts) not finished yet: its tasks and logs may remain. */
  purging?: boolean;
}

/** Records a deletion for the changes feed (upsert by the deleted document's `_id`). */
export async function writeTombstone(ctx: StoreContext, t: TombstoneInput): Promise<void> {
  await ctx.cols.tombstones.updateOne(
    { _id: t._id },
    {
      $set: { kind: t.kind, container: t.container, containerId: t.containerId, task: t.task, deletedAt: ctx.clock.now(), ...(t.purging ? { purging: true } : {}) },
      $currentDate: { changedAt: { $type: 'timestamp' } },
    },
    { upsert: true, writeConcern: ctx.writeConcern },
  );
}

/** Withdraws the tombstone of a deletion that did not happen. */
export async function withdrawTombstone(ctx: StoreContext, id: ObjectId): Promise<void> {
  await ctx.cols.tombstones.deleteOne({ _id: id }, { writeConcern: ctx.writeConcern });
}

/** True if a container of that name was deleted (and its tombstone not pruned yet). */
export async function containerWasDeleted(ctx: StoreContext, name: string): Promise<boolean> {
  return (await ctx.cols.tombstones.findOne({ container: name, kind: 'container' }, { projection: { _id: 1 } })) !== null;
}

/** Removes tombstones older than `olderThan`, optionally only of containers whose name starts with `namePrefix`. */
export async function pruneTombstones(ctx: StoreContext, olderThan: Date, namePrefix?: string): Promise<number> {
  const filter: Filter<TombstoneDoc> = { deletedAt: { $lt: olderThan } };
  if (namePrefix) filter.container = prefixRegex(namePrefix);
  const r = await ctx.cols.tombstones.deleteMany(filter, { writeConcern: ctx.writeConcern });
  return r.deletedCount;
}
