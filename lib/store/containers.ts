/**
 * Container transitions: get-or-create, finalize, bulk cancel/reset, delete. Each is one
 * conditional write; bulk ones are followed by a counter rebuild from the tasks.
 * @internal
 */
import { ObjectId, type AnyBulkWriteOperation } from 'mongodb';
import { emptyCounts, type ContainerStatus } from '../states';
import type { FailurePolicy } from '../types';
import type { StoreContext } from './context';
import { stamp } from './context';
import { reconcileContainer, settleStatus, type CounterResult } from './counters';
import type { ContainerDoc, TaskDoc } from './documents';
import { resetFields, writeTombstone } from './transitions';

function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: number })?.code === 11000;
}

/** Atomic get-or-create by name (an upsert on the unique name index). */
export async function getOrCreateContainer(
  ctx: StoreContext,
  name: string,
  init: { failurePolicy: FailurePolicy; metadata: Record<string, unknown> },
): Promise<{ doc: ContainerDoc; created: boolean }> {
  const now = ctx.clock.now();
  const st = stamp(now);
  // startedAt/endedAt are left out, not null: a claim sets startedAt with $min, and null sorts
  // below every date.
  const insert: Omit<ContainerDoc, '_id' | 'changedAt' | 'name' | 'startedAt' | 'endedAt'> = {
    status: 'pending',
    failurePolicy: init.failurePolicy,
    metadata: init.metadata,
    counts: emptyCounts(),
    weights: emptyCounts(),
    total: 0,
    weightTotal: 0,
    progressSum: 0,
    createdAt: now,
    updatedAt: now,
    rev: 1,
  };
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await ctx.cols.containers.findOneAndUpdate(
        { name },
        { $setOnInsert: { ...insert, _id: new ObjectId() }, $currentDate: st.$currentDate },
        { upsert: true, returnDocument: 'after', includeResultMetadata: true, writeConcern: ctx.writeConcern },
      );
      return { doc: res.value!, created: res.lastErrorObject?.updatedExisting === false };
    } catch (err) {
      // Two upserts racing on a unique index: the loser gets E11000 and retries as a plain match.
      if (isDuplicateKey(err) && attempt < 3) continue;
      throw err;
    }
  }
}

/**
 * Sets a container's final status when the runner has found its pending tasks blocked for good
 * (by failed or cancelled dependencies) or a fail-fast policy tripped. Conditional on the
 * counters it was decided from.
 */
export async function finalizeContainer(ctx: StoreContext, doc: ContainerDoc, to: ContainerStatus): Promise<CounterResult> {
  return settleStatus(ctx, doc, to);
}

/** Cancels every pending or running task (their holders lose their leases), then rebuilds the counters. */
export async function cancelAll(ctx: StoreContext, containerId: ObjectId): Promise<number> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const r = await ctx.cols.tasks.updateMany(
    { containerId, state: { $in: ['pending', 'running'] } },
    { $set: { ...st.$set, state: 'cancelled', lease: null, endedAt: now }, $inc: { ...st.$inc, fence: 1 }, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
  await reconcileContainer(ctx, containerId);
  const doc = await ctx.cols.containers.findOne({ _id: containerId });
  if (doc && doc.counts.pending === 0 && doc.counts.running === 0 && doc.status !== 'cancelled' && r.modifiedCount > 0) {
    await settleStatus(ctx, doc, 'cancelled');
  }
  return r.modifiedCount;
}

/** Moves every failed or cancelled task back to pending with a fresh retry budget, then rebuilds the counters. */
export async function retryAll(ctx: StoreContext, containerId: ObjectId): Promise<number> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const r = await ctx.cols.tasks.updateMany(
    { containerId, state: { $in: ['failed', 'cancelled'] } },
    { $set: { ...st.$set, state: 'pending', attempts: 0, runAfter: now, endedAt: null, durationMs: null, lease: null }, $inc: st.$inc, $currentDate: st.$currentDate },
    { writeConcern: ctx.writeConcern },
  );
  await reconcileContainer(ctx, containerId);
  return r.modifiedCount;
}

/** Resets every task that is not running to pending as if just added, then rebuilds the counters. */
export async function resetAll(ctx: StoreContext, containerId: ObjectId): Promise<number> {
  const now = ctx.clock.now();
  const st = stamp(now);
  const filter = { containerId, state: { $ne: 'running' as const } };
  let modified = 0;
  // waitingOn must become dependsOn for each task: one pass per distinct dependsOn list would
  // need a pipeline update; instead copy it task by task in batches of bulk writes.
  const cursor = ctx.cols.tasks.find(filter, { projection: { _id: 1, dependsOn: 1, rev: 1 } });
  let batch: AnyBulkWriteOperation<TaskDoc>[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const r = await ctx.cols.tasks.bulkWrite(batch, { ordered: false, writeConcern: ctx.writeConcern });
    modified += r.modifiedCount;
    batch = [];
  };
  for await (const t of cursor) {
    batch.push({
      updateOne: {
        filter: { _id: t._id, state: { $ne: 'running' } },
        update: {
          $set: { ...st.$set, ...resetFields(now, t.dependsOn ?? []), state: 'pending' },
          $inc: st.$inc,
          $currentDate: st.$currentDate,
        },
      },
    });
    if (batch.length >= 1000) await flush();
  }
  await flush();
  await reconcileContainer(ctx, containerId);
  return modified;
}

/** Deletes a container and its tasks (tasks first: a crash in between leaves an empty container, not orphans). */
export async function deleteContainer(ctx: StoreContext, doc: ContainerDoc): Promise<number> {
  // Tombstone first (it stands for the tasks too): the changes feed never misses the deletion.
  await writeTombstone(ctx, { _id: doc._id, kind: 'container', container: doc.name, containerId: doc._id, task: null });
  const r = await ctx.cols.tasks.deleteMany({ containerId: doc._id }, { writeConcern: ctx.writeConcern });
  await ctx.cols.containers.deleteOne({ _id: doc._id }, { writeConcern: ctx.writeConcern });
  return r.deletedCount;
}
