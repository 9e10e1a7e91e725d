/**
 * Per-key concurrency limits across processes. A key with limit N has N slot documents
 * (`<key>#0` … `<key>#N-1`); a keyed task may only be claimed by a worker that first took a
 * slot with one conditional upsert. A slot expires with the lease of the task holding it, and
 * whoever takes over an expired slot first recovers that task, so the number of running tasks
 * with a key never exceeds its limit. No in-process lock is involved.
 * @internal
 */
import { ObjectId } from './bson';
import type { StoreContext } from './context';
import type { SlotGrant } from './slots';
import { expireLease, type TransitionResult } from './transitions';

/** Limit of a key without a configured one. */
export const DEFAULT_KEY_LIMIT = 1;

export async function setKeyLimit(ctx: StoreContext, key: string, limit: number): Promise<void> {
  await ctx.cols.keyLimits.updateOne(
    { _id: key },
    { $set: { limit, updatedAt: ctx.clock.now() } },
    { upsert: true, writeConcern: ctx.writeConcern },
  );
}

export async function getKeyLimit(ctx: StoreContext, key: string): Promise<number> {
  const doc = await ctx.cols.keyLimits.findOne({ _id: key });
  return doc?.limit ?? DEFAULT_KEY_LIMIT;
}

export interface AcquiredSlot extends SlotGrant {
  /** Tasks recovered because their expired slot was taken over. */
  recovered: TransitionResult[];
}

/** Takes a free (or expired) slot of `key`, or returns null when all `limit` slots are held. */
export async function acquireSlot(ctx: StoreContext, key: string, leaseMs: number): Promise<AcquiredSlot | null> {
  const limit = await getKeyLimit(ctx, key);
  const recovered: TransitionResult[] = [];
  for (let i = 0; i < limit; i++) {
    const slot = `${key}#${i}`;
    const claim = new ObjectId();
    const now = ctx.clock.now();
    let before;
    try {
      before = await ctx.cols.keySlots.findOneAndUpdate(
        { _id: slot, $or: [{ holder: null }, { expiresAt: { $lte: now } }] },
        { $set: { key, holder: claim, token: null, task: null, expiresAt: new Date(now.getTime() + leaseMs) } },
        { upsert: true, returnDocument: 'before', writeConcern: ctx.writeConcern },
      );
    } catch (err) {
      if ((err as { code?: number }).code === 11000) continue; // held and not expired
      throw err;
    }
    if (before?.task && before.holder) {
      // Taking over an expired slot: its task must not keep running under the old lease.
      const t = await ctx.cols.tasks.findOne({ _id: before.task });
      if (t && t.state === 'running' && t.fence === before.token && t.lease) {
        if (t.lease.expiresAt > now) {
          // The holder renewed its task lease after the slot's expiry was read: give the slot back.
          await ctx.cols.keySlots.updateOne(
            { _id: slot, holder: claim },
            { $set: { holder: before.holder, token: before.token, task: before.task, expiresAt: t.lease.expiresAt } },
            { writeConcern: ctx.writeConcern },
          );
          continue;
        }
        const r = await expireLease(ctx, t);
        if (r) recovered.push(r);
      }
    }
    return { slot, claim, recovered };
  }
  return null;
}
