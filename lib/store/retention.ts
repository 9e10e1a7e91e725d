/**
 * Retention (`pts_retention`; docs/schema.md, docs/api.md#retention): the stored policies, the
 * read that finds what they let go, and the guarded delete. A container is only ever deleted by
 * one `deleteOne` whose filter says it is still finished, still past its policy's cutoff and not
 * written since it was read (`rev`): a container re-opened (tasks added, a retry) between the read
 * and the delete survives. The delete itself is `deleteContainer` (containers.ts) with that guard.
 * @internal
 */
import type { Filter } from 'mongodb';
import { FINAL_CONTAINER_STATUSES, type ContainerStatus } from '../states';
import type { ObjectId } from './bson';
import type { StoreContext } from './context';
import { deleteContainerIf } from './containers';
import type { ContainerDoc } from './documents';
import { deleteLogs } from './logs';
import { prefixRegex } from './queries';
import type { RetentionPolicyDoc, RetentionRules } from './retention-docs';
import type { RunDoc } from './schedule-docs';

/** Creates or replaces the policy of `prefix`. */
export async function saveRetentionPolicy(
  ctx: StoreContext,
  prefix: string,
  rules: RetentionRules,
): Promise<RetentionPolicyDoc> {
  const now = ctx.clock.now();
  const doc = await ctx.cols.retention.findOneAndUpdate(
    { prefix },
    { $set: { ...rules, updatedAt: now }, $setOnInsert: { prefix, createdAt: now } },
    { upsert: true, returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  return doc as RetentionPolicyDoc;
}

/** Every policy, by prefix. */
export async function listRetentionPolicies(ctx: StoreContext): Promise<RetentionPolicyDoc[]> {
  return ctx.cols.retention.find({}).sort({ prefix: 1 }).limit(10_000).toArray();
}

export async function deleteRetentionPolicy(ctx: StoreContext, prefix: string): Promise<boolean> {
  const r = await ctx.cols.retention.deleteOne({ prefix }, { writeConcern: ctx.writeConcern });
  return r.deletedCount === 1;
}

/** A container a policy lets go, as read (the delete re-checks all of it). */
export interface RetentionCandidate {
  _id: ObjectId;
  name: string;
  status: ContainerStatus;
  endedAt: Date | null;
  rev: number;
  /** The governing policy's prefix. */
  policy: string;
  /** `age`: finished longer ago than its status's days; `keepLastRuns`: an older run of its pipeline than the newest K. */
  reason: 'age' | 'keepLastRuns';
  /** `age`: the cutoff its `endedAt` must still be at or before when deleted. */
  cutoff: Date | null;
  /** `keepLastRuns`: the run record. */
  runId: ObjectId | null;
}

const DAY_MS = 86_400_000;
const PROJECTION = { _id: 1, name: 1, status: 1, endedAt: 1, rev: 1 } as const;
type Projected = Pick<ContainerDoc, '_id' | 'name' | 'status' | 'endedAt' | 'rev'>;

/** Names under `p.prefix` that no longer prefix governs (the longest matching prefix wins). */
function governedBy(p: RetentionPolicyDoc, all: RetentionPolicyDoc[], field: string): Filter<unknown> {
  const longer = all.filter((q) => q.prefix.length > p.prefix.length && q.prefix.startsWith(p.prefix));
  const and: Array<Record<string, unknown>> = [];
  if (p.prefix) and.push({ [field]: prefixRegex(p.prefix) });
  for (const q of longer) and.push({ [field]: { $not: new RegExp(prefixRegex(q.prefix).$regex) } });
  return and.length ? { $and: and } : {};
}

/** The day count of `status` under a policy (`cancelled` falls back to `failedDays`). */
export function daysFor(p: RetentionRules, status: ContainerStatus): number | null {
  if (status === 'succeeded') return p.succeededDays;
  if (status === 'failed') return p.failedDays;
  if (status === 'cancelled') return p.cancelledDays ?? p.failedDays;
  return null;
}

/**
 * The containers the policies let go now (database time), at most `limit`, oldest finish first
 * per policy and status, then the runs beyond each pipeline's newest `keepLastRuns`. Only reads;
 * also lists the run records whose container is already gone (`goneRuns`, marked by the caller).
 */
export async function retentionCandidates(
  ctx: StoreContext,
  policies: RetentionPolicyDoc[],
  all: RetentionPolicyDoc[],
  limit: number,
): Promise<{ candidates: RetentionCandidate[]; goneRuns: ObjectId[] }> {
  const now = ctx.clock.now().getTime();
  const out = new Map<string, RetentionCandidate>();
  const goneRuns: ObjectId[] = [];
  for (const p of policies) {
    for (const status of FINAL_CONTAINER_STATUSES) {
      const days = daysFor(p, status);
      if (days === null || out.size >= limit) continue;
      const cutoff = new Date(now - days * DAY_MS);
      const docs = (await ctx.cols.containers
        .find(
          { ...(governedBy(p, all, 'name') as Filter<ContainerDoc>), status, endedAt: { $lte: cutoff } },
          { projection: PROJECTION },
        )
        .sort({ endedAt: 1, _id: 1 })
        .limit(limit - out.size)
        .toArray()) as Projected[];
      for (const d of docs)
        if (!out.has(d.name))
          out.set(d.name, { ...pick(d), policy: p.prefix, reason: 'age', cutoff, runId: null });
    }
  }
  for (const p of policies) {
    if (p.keepLastRuns === null || out.size >= limit) continue;
    const scope = governedBy(p, all, 'container');
    const pipelines = (await ctx.cols.runs.distinct('pipeline', {
      ...scope,
      status: { $in: ['started', 'finished'] },
    })) as string[];
    for (const pipeline of pipelines.sort()) {
      if (out.size >= limit) break;
      const runs = await ctx.cols.runs
        .find(
          { ...scope, pipeline, status: { $in: ['started', 'finished'] }, prunedAt: null } as Filter<RunDoc>,
          { projection: { _id: 1, container: 1 } },
        )
        .sort({ slot: -1 })
        .skip(p.keepLastRuns)
        .limit(limit - out.size)
        .toArray();
      if (runs.length === 0) continue;
      const docs = (await ctx.cols.containers
        .find({ name: { $in: runs.map((r) => r.container) } }, { projection: PROJECTION })
        .toArray()) as Projected[];
      const byName = new Map(docs.map((d) => [d.name, d]));
      for (const r of runs) {
        const d = byName.get(r.container);
        if (!d) goneRuns.push(r._id);
        else if (FINAL_CONTAINER_STATUSES.includes(d.status) && !out.has(d.name))
          out.set(d.name, {
            ...pick(d),
            policy: p.prefix,
            reason: 'keepLastRuns',
            cutoff: null,
            runId: r._id,
          });
      }
    }
  }
  return { candidates: [...out.values()].slice(0, limit), goneRuns };
}

function pick(d: Projected): Pick<RetentionCandidate, '_id' | 'name' | 'status' | 'endedAt' | 'rev'> {
  return { _id: d._id, name: d.name, status: d.status, endedAt: d.endedAt ?? null, rev: d.rev };
}

/**
 * Deletes a candidate if it is, in the same `deleteOne`, still finished with the status read,
 * unwritten since (`rev`), and (`age`) still finished at or before the cutoff. Returns the number
 * of tasks deleted with it, or null when the guard refused (the container stays, tombstone withdrawn).
 */
export async function purgeContainer(ctx: StoreContext, c: RetentionCandidate): Promise<number | null> {
  const guard: Filter<ContainerDoc> = { status: { $in: [...FINAL_CONTAINER_STATUSES] }, rev: c.rev };
  if (c.cutoff) guard.endedAt = { $lte: c.cutoff };
  const tasks = await deleteContainerIf(ctx, c, guard);
  if (tasks !== null && c.runId) await markRunsPruned(ctx, [c.runId]);
  return tasks;
}

/** Marks run records whose container retention deleted (or found gone): `keepLastRuns` counts the others. */
export async function markRunsPruned(ctx: StoreContext, ids: ObjectId[]): Promise<void> {
  if (ids.length === 0) return;
  await ctx.cols.runs.updateMany({ _id: { $in: ids } }, { $set: { prunedAt: ctx.clock.now() } } as never, {
    writeConcern: ctx.writeConcern,
  });
}

/**
 * Finishes guarded deletes a crash interrupted after the container went (its tombstone still
 * `purging`): deletes the tasks and step logs left behind. At most `limit` per call.
 */
export async function finishPurges(ctx: StoreContext, limit = 20): Promise<number> {
  const open = await ctx.cols.tombstones
    .find({ purging: true } as never, { projection: { _id: 1, containerId: 1 } })
    .sort({ deletedAt: 1 })
    .limit(limit)
    .toArray();
  const stale = new Date(ctx.clock.now().getTime() - 60_000);
  for (const t of open) {
    if (await ctx.cols.containers.findOne({ _id: t.containerId }, { projection: { _id: 1 } })) {
      // The container is still there: a crash between the tombstone and the guarded delete (or one in flight).
      await ctx.cols.tombstones.deleteOne({ _id: t._id, purging: true, deletedAt: { $lt: stale } } as never, {
        writeConcern: ctx.writeConcern,
      });
      continue;
    }
    await ctx.cols.tasks.deleteMany({ containerId: t.containerId }, { writeConcern: ctx.writeConcern });
    await deleteLogs(ctx, { containerId: t.containerId });
    await ctx.cols.tombstones.updateOne({ _id: t._id }, { $unset: { purging: '' } } as never, {
      writeConcern: ctx.writeConcern,
    });
  }
  return open.length;
}
