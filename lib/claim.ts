/**
 * Claiming the next ready task, honouring per-key concurrency limits.
 * @internal
 */
import type { ObjectId } from 'mongodb';
import type { Core } from './core';
import { TaskLease } from './lease';
import { acquireSlot } from './store/keys';
import { bindSlot, releaseSlot } from './store/slots';
import { claimTask, type ClaimQuery, type TransitionResult } from './store/transitions';

export interface ResolvedClaim {
  containerId?: ObjectId;
  names?: string[];
  key?: string;
  owner: string;
  leaseMs: number;
}

async function claimWithKey(core: Core, q: ClaimQuery, key: string, owner: string, leaseMs: number): Promise<TransitionResult | null> {
  const grant = await acquireSlot(core.ctx, key, leaseMs);
  if (!grant) return null;
  for (const r of grant.recovered) core.emit('expired', r);
  let r: TransitionResult | null = null;
  try {
    r = await claimTask(core.ctx, { ...q, key }, owner, leaseMs, grant);
  } finally {
    if (r) await bindSlot(core.ctx, grant, r.task._id, r.task.fence);
    else await releaseSlot(core.ctx, grant);
  }
  return r;
}

/** Claims one ready task: unkeyed first, then keyed ones whose key has a free slot. */
export async function claimNext(core: Core, c: ResolvedClaim): Promise<TaskLease | null> {
  const q: ClaimQuery = { containerId: c.containerId, names: c.names };
  let r: TransitionResult | null = null;
  if (c.key !== undefined) {
    r = await claimWithKey(core, q, c.key, c.owner, c.leaseMs);
  } else {
    r = await claimTask(core.ctx, { ...q, key: null }, c.owner, c.leaseMs);
    if (!r) {
      const now = core.ctx.clock.now();
      const filter: Record<string, unknown> = { state: 'pending', key: { $ne: null }, 'waitingOn.0': { $exists: false }, runAfter: { $lte: now } };
      if (c.containerId) filter.containerId = c.containerId;
      if (c.names) filter.name = { $in: c.names };
      const candidates = await core.ctx.cols.tasks.find(filter, { projection: { key: 1 } }).sort({ _id: 1 }).limit(200).toArray();
      const keys = [...new Set(candidates.map((t) => t.key as string))];
      for (const key of keys) {
        r = await claimWithKey(core, q, key, c.owner, c.leaseMs);
        if (r) break;
      }
    }
  }
  if (!r) return null;
  core.emit('claimed', r);
  return new TaskLease(core, r.task, r.task, c.leaseMs);
}
