/**
 * Reads about spawned children (spawn.ts adds them): whether a parent still has a child that is
 * not done — the gate on its dependents — and the per-state counts behind "N of M done". Nothing
 * here is a counter: every answer is read from the children themselves (index
 * `container_parent_state`), so a crash anywhere in a spawn or a child's transition leaves nothing
 * to repair.
 * @internal
 */
import type { ObjectId } from 'mongodb';
import { emptyCounts, SATISFYING_TASK_STATES, TASK_STATES, type TaskState } from '../states';
import type { ChildrenSummary } from '../types';
import type { StoreContext } from './context';

/** The states in which a child holds back its parent's dependents (not succeeded, not skipped). */
const OPEN_STATES: TaskState[] = TASK_STATES.filter((s) => !SATISFYING_TASK_STATES.includes(s));

/** True if the task `parent` has a spawned child that has not succeeded or been skipped. One indexed read. */
export async function hasOpenChildren(ctx: StoreContext, containerId: ObjectId, parent: string): Promise<boolean> {
  const open = await ctx.cols.tasks.findOne({ containerId, parent, state: { $in: OPEN_STATES } }, { projection: { _id: 1 } });
  return open !== null;
}

/**
 * Of `names`, the tasks that spawned children not all done yet: their dependents must keep
 * waiting even though the task itself is satisfied. One read, plus one per spawning parent.
 */
export async function heldBackParents(ctx: StoreContext, containerId: ObjectId, names: string[]): Promise<Set<string>> {
  const out = new Set<string>();
  if (names.length === 0) return out;
  const parents = await ctx.cols.tasks.find({ containerId, name: { $in: names }, spawned: true }, { projection: { name: 1 } }).toArray();
  for (const p of parents) if (await hasOpenChildren(ctx, containerId, p.name)) out.add(p.name);
  return out;
}

/** Per-state counts of the children of each of `parents` (one `$group`); parents without children get zeros. */
export async function childCounts(ctx: StoreContext, containerId: ObjectId, parents: string[]): Promise<ChildrenSummary[]> {
  if (parents.length === 0) return [];
  const rows = await ctx.cols.tasks
    .aggregate<{ _id: { p: string; s: TaskState }; n: number }>([
      { $match: { containerId, parent: { $in: parents } } },
      { $group: { _id: { p: '$parent', s: '$state' }, n: { $sum: 1 } } },
    ])
    .toArray();
  const byParent = new Map(parents.map((p) => [p, emptyCounts()]));
  for (const r of rows) {
    const c = byParent.get(r._id.p);
    if (c && r._id.s in c) c[r._id.s] += r.n;
  }
  return parents.map((parent) => {
    const counts = byParent.get(parent)!;
    const total = TASK_STATES.reduce((n, s) => n + counts[s], 0);
    const done = SATISFYING_TASK_STATES.reduce((n, s) => n + counts[s], 0);
    return { parent, counts, total, done };
  });
}
