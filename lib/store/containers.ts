/**
 * Container operations: finalize, the bulk retry/cancel/reset, metadata, delete. A bulk action
 * runs the single-task transition of the same operation on every task whose state the
 * transition table allows (each one conditional, as when done by name), and applies the sum
 * of their counter changes in one write.
 * @internal
 */
import { initialWaitingOn, type RunWhen } from '../run-when';
import type { Filter, ObjectId } from 'mongodb';
import { InvalidTransitionError } from '../errors';
import { TRANSITIONS, type ContainerAction, type ContainerStatus } from '../states';
import type { StoreContext } from './context';
import { stamp } from './context';
import { addDeltas, applyCounters, isNoop, moveDelta, settleStatus, type CounterResult } from './counters';
import type { ContainerDoc } from './documents';
import { deleteLogs } from './logs';
import { withdrawTombstone, writeTombstone } from './tombstones';
import { cancelTask, resetTask, retryTask, type NamedResult } from './transitions';

/**
 * Sets a container's final status when the runner has found its pending tasks blocked for good
 * (by failed or cancelled dependencies) or a fail-fast policy tripped. Conditional on the
 * counters it was decided from.
 */
export async function finalizeContainer(ctx: StoreContext, doc: ContainerDoc, to: ContainerStatus): Promise<CounterResult> {
  return settleStatus(ctx, doc, to);
}

/** What a bulk action did: one result per task it moved, and the one counter write. */
export interface BulkResult {
  action: ContainerAction;
  results: NamedResult[];
  container: CounterResult;
}

const BATCH = 500;

/**
 * Applies `action` to every task of the container whose state the table allows. A task that
 * moved meanwhile (so the transition refuses it) is left alone.
 */
export async function bulkAction(ctx: StoreContext, containerId: ObjectId, action: ContainerAction): Promise<BulkResult> {
  const allowed = [...TRANSITIONS[action].from];
  const results: NamedResult[] = [];
  let delta = moveDelta(null, null, 0, 0, 0);
  let after: ObjectId | null = null;
  for (;;) {
    const page: Array<{ _id: ObjectId; name: string; dependsOn?: string[]; runWhen?: RunWhen }> = await ctx.cols.tasks
      .find({ containerId, state: { $in: allowed }, ...(after ? { _id: { $gt: after } } : {}) }, { projection: { _id: 1, name: 1, dependsOn: 1, runWhen: 1 } })
      .sort({ _id: 1 })
      .limit(BATCH)
      .toArray();
    for (const t of page) {
      const named = { containerId, name: t.name, _id: t._id };
      try {
        const r =
          action === 'retry'
            ? await retryTask(ctx, named, { deferCounters: true })
            : action === 'cancel'
              ? await cancelTask(ctx, named, { deferCounters: true })
              : // Every task that is not running is reset too, so each waits on all its dependencies.
                await resetTask(ctx, named, initialWaitingOn(t.runWhen ?? 'succeeded', t.dependsOn ?? []), { deferCounters: true });
        results.push(r);
        if (r.delta) delta = addDeltas(delta, r.delta);
      } catch (err) {
        if (!(err instanceof InvalidTransitionError) && (err as { code?: string }).code !== 'PTS_NOT_FOUND') throw err;
      }
    }
    if (page.length < BATCH) break;
    after = page[page.length - 1]._id;
  }
  let container: CounterResult = isNoop(delta) ? { container: null, statusChange: null } : await applyCounters(ctx, containerId, delta);
  if (action === 'cancel' && results.length > 0 && container.container) {
    const doc = container.container;
    if (doc.counts.pending === 0 && doc.counts.running === 0 && doc.status !== 'cancelled') {
      const s = await settleStatus(ctx, doc, 'cancelled');
      if (s.statusChange) container = { container: s.container, statusChange: { from: container.statusChange?.from ?? s.statusChange.from, to: 'cancelled' } };
    }
  }
  return { action, results, container };
}

/** Sets top-level keys of a container's `metadata` (others are kept). Null if there is no such container. */
export async function setContainerMetadata(ctx: StoreContext, name: string, patch: Record<string, unknown>): Promise<ContainerDoc | null> {
  const st = stamp(ctx.clock.now());
  const set: Record<string, unknown> = { ...st.$set };
  for (const [k, v] of Object.entries(patch)) set[`metadata.${k}`] = v;
  return ctx.cols.containers.findOneAndUpdate({ name }, { $set: set, $inc: st.$inc, $currentDate: st.$currentDate }, { returnDocument: 'after', writeConcern: ctx.writeConcern });
}

/**
 * Deletes a container and its tasks (tasks first: a crash in between leaves an empty container, not orphans).
 * With a `guard` (retention.ts) the container goes first, in one `deleteOne` whose filter adds the
 * guard, so a container that changed since it was read is left alone (resolves to null, the
 * tombstone withdrawn); its tombstone is marked `purging` until the tasks and logs are gone too
 * (a crash in between is finished by the next sweep, retention.ts `finishPurges`).
 */
export async function deleteContainer(ctx: StoreContext, doc: ContainerDoc): Promise<number> {
  return (await removeContainer(ctx, doc)) ?? 0;
}

/** {@link deleteContainer} under a guard: null (nothing deleted) when the container no longer matches it. */
export async function deleteContainerIf(ctx: StoreContext, doc: Pick<ContainerDoc, '_id' | 'name'>, guard: Filter<ContainerDoc>): Promise<number | null> {
  return removeContainer(ctx, doc, guard);
}

async function removeContainer(ctx: StoreContext, doc: Pick<ContainerDoc, '_id' | 'name'>, guard?: Filter<ContainerDoc>): Promise<number | null> {
  // Tombstone first (it stands for the tasks too): the changes feed never misses the deletion.
  await writeTombstone(ctx, { _id: doc._id, kind: 'container', container: doc.name, containerId: doc._id, task: null, ...(guard ? { purging: true } : {}) });
  if (guard) {
    const gone = await ctx.cols.containers.deleteOne({ ...guard, _id: doc._id }, { writeConcern: ctx.writeConcern });
    if (gone.deletedCount === 0) {
      await withdrawTombstone(ctx, doc._id);
      return null;
    }
  }
  const r = await ctx.cols.tasks.deleteMany({ containerId: doc._id }, { writeConcern: ctx.writeConcern });
  // The tasks' step logs go with them (logs.ts).
  await deleteLogs(ctx, { containerId: doc._id });
  if (guard) await ctx.cols.tombstones.updateOne({ _id: doc._id }, { $unset: { purging: '' } } as never, { writeConcern: ctx.writeConcern });
  else await ctx.cols.containers.deleteOne({ _id: doc._id }, { writeConcern: ctx.writeConcern });
  return r.deletedCount;
}
