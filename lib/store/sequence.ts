/**
 * The claim order's creation sequence: one counter document (`pts_sequences`, `_id: 'tasks'`)
 * from which every add reserves a range with ONE `$inc` per batch. The numbers come from the
 * database, not from a clock or an ObjectId generator, so a batch whose reservation ran after
 * another's gets higher numbers whatever process, host or server made either (ObjectIds from
 * different generators in the same second do not sort by creation time). Numbers of a batch
 * whose tasks already existed, or of a crash between the reservation and the insert, are
 * skipped: gaps, never duplicates.
 *
 * Also the one-time upgrade of tasks stored before priorities existed (`priority` absent): the
 * claim sort reads a missing field as lower than every number, so they get `priority: 0`.
 * @internal
 */
import type { Timestamp } from './bson';
import type { StoreContext } from './context';

/** The sequence document's id for task creation numbers. */
const TASKS = 'tasks';

/** A reservation: the first number, and the server's change stamp of the reservation write. */
export interface Reservation {
  first: number;
  /** `$currentDate` (`$type: 'timestamp'`) of the reservation: a server stamp, for inserts.ts. */
  at: Timestamp | null;
}

/**
 * Reserves `n` consecutive creation numbers; returns the first and the server's stamp of the
 * reservation (stored as `at`). One `findAndModify` (an upsert the first time). Throws for `n < 1`.
 */
export async function reserveSequence(ctx: StoreContext, n: number): Promise<Reservation> {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`cannot reserve ${n} sequence numbers`);
  const doc = await ctx.cols.sequences.findOneAndUpdate(
    { _id: TASKS },
    { $inc: { next: n }, $currentDate: { at: { $type: 'timestamp' } } },
    { upsert: true, returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  const at = doc?.at;
  return { first: doc!.next - n + 1, at: at && at._bsontype === 'Timestamp' && at.t > 0 ? at : null };
}

/**
 * Gives `priority: 0` to tasks stored without one (before 2.0.0-alpha.2), once per database: the
 * sequence document records that it ran (`priorityBackfilled`). Costs one `find` by `_id` on
 * every later call; the first call also runs one `updateMany` over the tasks (a collection scan,
 * once). Returns how many tasks it changed. Tasks an older client adds after that keep no
 * `priority` (they sort below every priority, see docs/schema.md) until `backfillPriority(ctx, true)`.
 */
export async function backfillPriority(ctx: StoreContext, force = false): Promise<number> {
  if (!force) {
    const seq = await ctx.cols.sequences.findOne({ _id: TASKS }, { projection: { priorityBackfilled: 1 } });
    if (seq?.priorityBackfilled === true) return 0;
  }
  const r = await ctx.cols.tasks.updateMany({ priority: { $exists: false } }, { $set: { priority: 0 } }, { writeConcern: ctx.writeConcern });
  await ctx.cols.sequences.updateOne({ _id: TASKS }, { $set: { priorityBackfilled: true }, $setOnInsert: { next: 0 } }, { upsert: true, writeConcern: ctx.writeConcern });
  return r.modifiedCount;
}
