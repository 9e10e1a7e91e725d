/**
 * Dynamic fan-out, the store side: a running task adds children under its lease. Each batch is
 * fenced — ONE conditional write on the parent (`heldFilter`: running under the caller's token)
 * sets `spawned: true` and fails with LeaseLostError when the lease is gone — and then goes
 * through the ordinary idempotent insert (inserts.ts) with `parent` set, so counters and events
 * are those of any add. After the batch the fence is read again.
 *
 * What holds when the lease is lost BETWEEN the fenced write and the insert (there is no
 * transaction across the two): the batch's children are still inserted — they are ordinary
 * children of the parent, idempotent by name — and the call rejects with LeaseLostError right
 * after. The next holder of the parent, spawning the same names, creates nothing new; a next
 * holder that already finished the parent may have released its dependents before those late
 * children appeared (they still run; docs/api.md says so). A batch is never started under a
 * lease that is already lost.
 * @internal
 */
import type { ObjectId } from 'mongodb';
import type { ResolvedTaskSpec } from '../validation';
import type { StoreContext } from './context';
import { stamp } from './context';
import { withinDeadline } from './deadlines';
import type { TaskDoc } from './documents';
import { heldFilter } from './filters';
import { addTasks, type AddResult } from './inserts';
import { fencedFailure } from './refusals';
import type { HeldTask } from './transitions';

/** The fence of a spawn: the parent's `_id`, name, container and the caller's token. */
export type SpawningTask = Pick<HeldTask, '_id' | 'containerId' | 'container' | 'name' | 'fence'>;

/**
 * Adds one batch of children of `held` (at most 1000; the caller validated and ordered them,
 * `existing` names the tasks that exist already). Fenced before the insert (a lost lease rejects,
 * nothing written) and checked after: `lost` is the LeaseLostError of a lease lost meanwhile —
 * the children were added all the same, and the caller reports them before it rejects.
 */
export async function spawnBatch(
  ctx: StoreContext,
  held: SpawningTask,
  specs: ResolvedTaskSpec[],
  existing: ReadonlySet<string>,
): Promise<AddResult & { lost: Error | null }> {
  const now = ctx.clock.now();
  const st = stamp(now);
  // The lease, and (a task with timeoutMs/stallMs) its deadline not passed: as for succeed/fail.
  const fenced = await ctx.cols.tasks.updateOne(
    { ...heldFilter(held), ...withinDeadline(now) },
    { $set: { ...st.$set, spawned: true }, $inc: st.$inc, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
  if (fenced.matchedCount === 0) await fencedFailure(ctx, held, 'spawn');
  const r = await addTasks(ctx, { _id: held.containerId, name: held.container }, specs, existing, held.name);
  const still = await ctx.cols.tasks.findOne({ ...heldFilter(held), ...withinDeadline(ctx.clock.now()) }, { projection: { _id: 1 } });
  const lost = still ? null : await fencedFailure(ctx, held, 'spawn').catch((err: Error) => err);
  return { ...r, lost };
}

/** The tasks of `names` that exist, with what a spawn checks: who spawned them and their dependencies. */
export async function spawnCandidates(
  ctx: StoreContext,
  containerId: ObjectId,
  names: string[],
): Promise<Array<Pick<TaskDoc, 'name' | 'state' | 'dependsOn' | 'parent'>>> {
  if (names.length === 0) return [];
  return ctx.cols.tasks.find({ containerId, name: { $in: names } }, { projection: { _id: 0, name: 1, state: 1, dependsOn: 1, parent: 1 } }).toArray();
}
