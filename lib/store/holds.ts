/**
 * The task side of a container pause (pause.ts): the `pause` hold on task documents that the one
 * ready filter skips. Apart from pause.ts so that the counters' reconcile can repair holds
 * without an import cycle.
 * @internal
 */
import type { ObjectId } from 'mongodb';
import type { StoreContext } from './context';
import type { ContainerDoc, TaskDoc } from './documents';

/** One hold write (for pause `seq`) or release write (of the holds of pauses up to `seq`) over the container's tasks. */
async function writeHolds(
  ctx: StoreContext,
  containerId: ObjectId,
  paused: boolean,
  seq: number,
): Promise<number> {
  const r = paused
    ? await ctx.cols.tasks.updateMany(
        { containerId, pause: { $exists: false } },
        { $set: { pause: seq } },
        { writeConcern: ctx.writeConcern },
      )
    : await ctx.cols.tasks.updateMany(
        { containerId, pause: { $lte: seq } },
        { $unset: { pause: '' } },
        { writeConcern: ctx.writeConcern },
      );
  return r.modifiedCount;
}

/**
 * After a hold write for pause `seq`: one read of the container. A resume that landed before the
 * hold write (its release came first, so it missed these holds) shows as a newer `pauseSeq`:
 * sync to what the container says now. A resume after this read releases the holds itself (its
 * release comes after its container write, which comes after this read). A release needs no such
 * check: it only lifts holds of pauses no newer than the resume it serves.
 */
async function checkHolds(
  ctx: StoreContext,
  containerId: ObjectId,
  seq: number,
  marker?: ObjectId,
): Promise<number> {
  let n = 0;
  for (let i = 0; i < 5; i++) {
    const projection = { paused: 1, pauseSeq: 1 };
    // With the writer's `pauseUnsynced` marker the read also clears it (same command): it still
    // being there means no pause or resume wrote the container since, so the holds now agree.
    const cleared =
      i === 0 && marker
        ? await ctx.cols.containers.findOneAndUpdate(
            { _id: containerId, pauseUnsynced: marker },
            { $unset: { pauseUnsynced: '' } },
            { returnDocument: 'after', writeConcern: ctx.writeConcern },
          )
        : null;
    const cur = cleared ?? (await ctx.cols.containers.findOne({ _id: containerId }, { projection }));
    if (!cur) return n;
    const now = cur.pauseSeq ?? 0;
    if (cur.paused === true && now === seq) return n;
    n += await writeHolds(ctx, containerId, cur.paused === true, now);
    if (cur.paused !== true) return n;
    seq = now;
  }
  return n;
}

/**
 * The task write of a pause or resume: holds every task of the container (then checks the
 * container did not move on meanwhile, see {@link checkHolds}), or releases the holds of pauses
 * up to `seq`. With `marker` (the container's `pauseUnsynced` as the caller wrote or read it) the
 * marker is cleared once the tasks agree — by the pause's check read, or one conditional write
 * after a release — unless a newer pause or resume replaced it. Returns how many tasks it changed.
 */
export async function applyToTasks(
  ctx: StoreContext,
  containerId: ObjectId,
  paused: boolean,
  seq: number,
  marker?: ObjectId,
): Promise<number> {
  const n = await writeHolds(ctx, containerId, paused, seq);
  if (paused) return n + (await checkHolds(ctx, containerId, seq, marker));
  if (marker) await clearUnsynced(ctx, containerId, marker);
  return n;
}

/** Removes the container's `pauseUnsynced` marker if it is still `marker` (one conditional write). */
async function clearUnsynced(ctx: StoreContext, containerId: ObjectId, marker: ObjectId): Promise<void> {
  await ctx.cols.containers.updateOne(
    { _id: containerId, pauseUnsynced: marker },
    { $unset: { pauseUnsynced: '' } },
    { writeConcern: ctx.writeConcern },
  );
}

/**
 * Containers whose last pause or resume has not finished its task write (`pauseUnsynced` set:
 * it crashed between its two writes, or is between them right now), up to `limit`: the sweep
 * repairs them (one query on the sparse `pauseUnsynced` index, which holds only those).
 */
export async function unsyncedPauses(ctx: StoreContext, limit: number): Promise<ObjectId[]> {
  const docs = await ctx.cols.containers
    .find({ pauseUnsynced: { $exists: true } }, { projection: { _id: 1 } })
    .limit(limit)
    .toArray();
  return docs.map((d) => d._id);
}

/**
 * Makes the container's tasks agree with its paused state (after a crash between a pause's or
 * resume's two writes, or an add by a handle that had not seen the pause). No command for a
 * container never paused. Returns how many tasks it changed.
 */
export async function syncPause(
  ctx: StoreContext,
  doc: Pick<ContainerDoc, '_id' | 'paused' | 'pauseSeq' | 'pauseUnsynced'>,
): Promise<number> {
  if (!doc.pauseSeq) return 0;
  return applyToTasks(ctx, doc._id, doc.paused === true, doc.pauseSeq, doc.pauseUnsynced);
}

/**
 * After an add: the counter write returned the container as it is now. Tasks this add created
 * that disagree with it (inserted held by a handle that had not seen a resume, or not held by
 * one that had not seen a pause) are put right — one command, only when there is such a task.
 */
export async function alignAdded(
  ctx: StoreContext,
  doc: ContainerDoc | null,
  created: Array<Pick<TaskDoc, '_id' | 'pause'>>,
): Promise<number> {
  if (!doc || created.length === 0) return 0;
  const paused = doc.paused === true;
  const wrong = created.filter((t) => (t.pause !== undefined) !== paused);
  if (wrong.length === 0) return 0;
  const ids = wrong.map((t) => t._id);
  const seq = doc.pauseSeq ?? 0;
  const r = paused
    ? await ctx.cols.tasks.updateMany(
        { _id: { $in: ids }, pause: { $exists: false } },
        { $set: { pause: seq } },
        { writeConcern: ctx.writeConcern },
      )
    : await ctx.cols.tasks.updateMany(
        { _id: { $in: ids }, pause: { $lte: seq } },
        { $unset: { pause: '' } },
        { writeConcern: ctx.writeConcern },
      );
  for (const t of wrong) {
    if (paused) t.pause = seq;
    else delete t.pause;
  }
  return r.modifiedCount + (paused ? await checkHolds(ctx, doc._id, seq) : 0);
}
