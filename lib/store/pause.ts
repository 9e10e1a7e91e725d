/**
 * Pausing a container: no new claims while it is paused; tasks already running finish and are
 * recorded as usual. The container document says whether it is paused (`paused`, `pausedAt`,
 * `pausedBy`) and counts pauses and resumes (`pauseSeq`); its tasks carry the pause that holds
 * them (`pause`: that pause's `pauseSeq`). The one ready filter (filters.ts) skips held tasks, so
 * every claim path (the runner, `claimNext` with or without a container, keyed claims, HTTP
 * workers) stays one command on the task collection, with no extra read of the container.
 *
 * Without transactions a pause (or resume) is two writes: the container first — the intent, what
 * summaries and the changes feed show — then one `updateMany` over all its tasks (all states: a
 * running task that fails and retries, or a failed one retried, comes back pending still held).
 * A crash in between leaves the tasks disagreeing with the container; `syncPause` (holds.ts), run by
 * the sweep and by `reconcile()`, and calling `pause()`/`resume()` again, make them agree. Resume
 * only releases tasks held by a pause no newer than itself (`pause <= pauseSeq`), so a stale
 * release can never undo a later pause; a hold write is followed by a read of the container, so
 * a stale hold (its pause overtaken by a resume) is lifted by the writer itself (holds.ts).
 * @internal
 */
import { ObjectId } from './bson';
import { deriveContainerStatus } from '../states';
import type { StoreContext } from './context';
import { stamp } from './context';
import { settleStatus, type CounterResult } from './counters';
import type { ContainerDoc } from './documents';
import { applyToTasks } from './holds';

/** What {@link setPaused} did. */
export interface PauseResult {
  /** The container after the call (null: there is no such container). */
  container: ContainerDoc | null;
  /** True if this call changed the container's paused state (false: it already was so). */
  changed: boolean;
  /** Tasks whose hold this call set (pause) or cleared (resume). */
  tasks: number;
  /** The status settle after the container write (whose revision bump a concurrent settle lost to). */
  status: CounterResult | null;
}

/**
 * Pauses (`paused: true`) or resumes a container: one conditional write of the container (only if
 * it is not already so; `pauseSeq` +1), then one write of its tasks. Idempotent: a repeated call
 * changes nothing on the container but re-applies the task write, repairing a call that crashed
 * between the two.
 */
/**
 * The first write of a pause or resume, alone: the container, only if it is not already so
 * (`pauseSeq` +1), with a fresh `pauseUnsynced` marker that the task write clears once done
 * (holds.ts). A crash right after it leaves the marker, by which the sweep finds the container.
 * Returns the container as written, or null if it is already so (or does not exist).
 */
export async function writePauseIntent(
  ctx: StoreContext,
  containerId: ObjectId,
  paused: boolean,
  by: string | null = null,
): Promise<ContainerDoc | null> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const set: Record<string, unknown> = {
    ...st.$set,
    paused,
    pausedAt: paused ? now : null,
    pausedBy: paused ? by : null,
    pauseUnsynced: new ObjectId(),
  };
  return ctx.cols.containers.findOneAndUpdate(
    { _id: containerId, paused: paused ? { $ne: true } : true },
    { $set: set, $inc: { ...st.$inc, pauseSeq: 1 }, $currentDate: st.$currentDate },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
}

export async function setPaused(
  ctx: StoreContext,
  containerId: ObjectId,
  paused: boolean,
  by: string | null = null,
): Promise<PauseResult> {
  const doc = await writePauseIntent(ctx, containerId, paused, by);
  if (!doc) {
    const cur = await ctx.cols.containers.findOne({ _id: containerId });
    if (!cur) return { container: null, changed: false, tasks: 0, status: null };
    if ((cur.paused === true) !== paused) return setPaused(ctx, containerId, paused, by); // it moved between the two reads
    // Already so: re-apply the task write (repairs a call that crashed between its two writes).
    const tasks = cur.pauseSeq
      ? await applyToTasks(ctx, containerId, paused, cur.pauseSeq, cur.pauseUnsynced)
      : 0;
    return { container: cur, changed: false, tasks, status: null };
  }
  const tasks = await applyToTasks(ctx, containerId, paused, doc.pauseSeq ?? 0, doc.pauseUnsynced);
  // This write bumped `rev`: a counter write's settle that read the revision before it lost, so settle here.
  const status = await settleStatus(ctx, doc, deriveContainerStatus(doc.counts, doc.status));
  return { container: status.container ?? doc, changed: true, tasks, status };
}
