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
import type { CounterCarry } from './counters';
import { claimTask, claimTasks, type ClaimQuery, type TransitionResult } from './transitions';

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

function claimQuery(c: ResolvedClaim): ClaimQuery {
  return { containerId: c.containerId, names: c.names, ...(c.parents?.length ? { parents: c.parents } : {}) };
}

/** A keyed claim: the first task of a ready key that has a free slot. */
async function claimKeyed(ctx: StoreContext, q: ClaimQuery, c: ResolvedClaim, recovered: TransitionResult[]): Promise<TransitionResult | null> {
  for (const key of await readyKeys(ctx, q, ctx.clock.now())) {
    const r = await claimWithKey(ctx, q, key, c.owner, c.leaseMs, recovered);
    if (r) return r;
  }
  return null;
}

/**
 * Claims one ready task: unkeyed first, then keyed ones whose key has a free slot. An unkeyed
 * claim adds what `carry` holds to its counter write (counters.ts `CounterCarry`).
 */
export async function claimNext(ctx: StoreContext, c: ResolvedClaim, carry?: CounterCarry): Promise<ClaimOutcome> {
  const q = claimQuery(c);
  const recovered: TransitionResult[] = [];
  if (c.key !== undefined) return healed(ctx, { claimed: await claimWithKey(ctx, q, c.key, c.owner, c.leaseMs, recovered), recovered });
  const r = (await claimTask(ctx, { ...q, key: null }, c.owner, c.leaseMs, undefined, carry)) ?? (await claimKeyed(ctx, q, c, recovered));
  return healed(ctx, { claimed: r, recovered });
}

/** The claims of {@link claimSeveral} (in claim order), and tasks recovered on the way. */
export interface ClaimsOutcome {
  claimed: TransitionResult[];
  recovered: TransitionResult[];
}

/**
 * Claims up to `limit` ready tasks, for a runner with that many free slots. Unkeyed tasks in one
 * batch (`claimTasks`: three commands for any number, each task fenced on its own); with none
 * ready, one keyed task as {@link claimNext} does (a key slot is taken per task). With `limit` 1,
 * or a `key`, exactly {@link claimNext}. Unkeyed claims add what `carry` holds to their counter
 * write (a runner's held-back success deltas, counters.ts `CounterCarry`).
 */
export async function claimSeveral(ctx: StoreContext, c: ResolvedClaim, limit: number, carry?: CounterCarry): Promise<ClaimsOutcome> {
  if (limit <= 1 || c.key !== undefined) {
    const one = await claimNext(ctx, c, carry);
    return { claimed: one.claimed ? [one.claimed] : [], recovered: one.recovered };
  }
  const q = claimQuery(c);
  const recovered: TransitionResult[] = [];
  const batch = await claimTasks(ctx, q, c.owner, c.leaseMs, limit, carry);
  if (batch.length > 0) {
    // One counter write per container: its document tells whether a pause is to be healed.
    const seen = new Set<string>();
    for (const r of batch) {
      const id = r.task.containerId.toHexString();
      if (seen.has(id)) continue;
      seen.add(id);
      await healed(ctx, { claimed: r, recovered });
    }
    return { claimed: batch, recovered };
  }
  const r = await claimKeyed(ctx, q, c, recovered);
  await healed(ctx, { claimed: r, recovered });
  return { claimed: r ? [r] : [], recovered };
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
