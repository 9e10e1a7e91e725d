/**
 * Claiming the next ready task, honouring per-key concurrency limits: unkeyed tasks first, then
 * keyed ones whose key has a free slot (keys.ts).
 * @internal
 */
import type { ObjectId } from 'mongodb';
import type { StoreContext } from './context';
import { syncPause } from './holds';
import { acquireSlot } from './keys';
import { readyKeys } from './queries';
import { bindSlot, releaseSlot } from './slots';
import { claimTask, type ClaimQuery, type TransitionResult } from './transitions';

/** What to claim, resolved (validated names, key, owner and lease length). */
export interface ResolvedClaim {
  containerId?: ObjectId;
  names?: string[];
  /** With `names`: also children spawned by these tasks (the runner's `'parent/*'` handlers). */
  parents?: string[];
  key?: string;
  owner: string;
  leaseMs: number;
}

/** The claim (or null), and tasks recovered on the way (an expired key slot taken over ends its task's lease). */
export interface ClaimOutcome {
  claimed: TransitionResult | null;
  recovered: TransitionResult[];
}

async function claimWithKey(ctx: StoreContext, q: ClaimQuery, key: string, owner: string, leaseMs: number, recovered: TransitionResult[]): Promise<TransitionResult | null> {
  const grant = await acquireSlot(ctx, key, leaseMs);
  if (!grant) return null;
  recovered.push(...grant.recovered);
  let r: TransitionResult | null = null;
  try {
    r = await claimTask(ctx, { ...q, key }, owner, leaseMs, grant);
  } finally {
    if (r) await bindSlot(ctx, grant, r.task._id, r.task.fence);
    else await releaseSlot(ctx, grant);
  }
  return r;
}

/** Claims one ready task: unkeyed first, then keyed ones whose key has a free slot. */
export async function claimNext(ctx: StoreContext, c: ResolvedClaim): Promise<ClaimOutcome> {
  const q: ClaimQuery = { containerId: c.containerId, names: c.names, ...(c.parents?.length ? { parents: c.parents } : {}) };
  const recovered: TransitionResult[] = [];
  if (c.key !== undefined) return healed(ctx, { claimed: await claimWithKey(ctx, q, c.key, c.owner, c.leaseMs, recovered), recovered });
  let r = await claimTask(ctx, { ...q, key: null }, c.owner, c.leaseMs);
  if (!r) {
    for (const key of await readyKeys(ctx, q, ctx.clock.now())) {
      r = await claimWithKey(ctx, q, key, c.owner, c.leaseMs, recovered);
      if (r) break;
    }
  }
  return healed(ctx, { claimed: r, recovered });
}

/**
 * A claim whose counter write found its container paused took a task the pause had not held
 * yet — a pause in progress, or one that crashed between its two writes (pause.ts): hold the
 * container's other tasks now. The claimed task runs (it was claimed before the hold). No
 * command unless the container is paused.
 */
async function healed(ctx: StoreContext, o: ClaimOutcome): Promise<ClaimOutcome> {
  const doc = o.claimed?.container.container;
  if (doc?.paused) await syncPause(ctx, doc);
  return o;
}
