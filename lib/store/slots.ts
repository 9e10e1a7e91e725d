/**
 * Key slot bookkeeping shared by the claim path and the transitions (see keys.ts).
 * @internal
 */
import type { ObjectId } from 'mongodb';
import type { StoreContext } from './context';
import type { LeaseDoc } from './documents';

/** A slot taken by {@link acquireSlot}, to be bound to the task claimed with it. */
export interface SlotGrant {
  slot: string;
  claim: ObjectId;
}

/** Records which task holds the slot (after a successful claim). */
export async function bindSlot(ctx: StoreContext, grant: SlotGrant, taskId: ObjectId, token: number): Promise<void> {
  await ctx.cols.keySlots.updateOne(
    { _id: grant.slot, holder: grant.claim },
    { $set: { task: taskId, token } },
    { writeConcern: ctx.writeConcern },
  );
}

/** Frees the slot held under `lease` (no-op for tasks without a key, or if it was taken over). */
export async function releaseSlot(ctx: StoreContext, lease: Pick<LeaseDoc, 'slot' | 'claim'> | null | undefined): Promise<void> {
  if (!lease?.slot || !lease.claim) return;
  await ctx.cols.keySlots.updateOne(
    { _id: lease.slot, holder: lease.claim },
    { $set: { holder: null, task: null, token: null, expiresAt: null } },
    { writeConcern: ctx.writeConcern },
  );
}

/** Extends the slot with the task's lease (keyed tasks only: one extra command per heartbeat). */
export async function renewSlot(ctx: StoreContext, lease: Pick<LeaseDoc, 'slot' | 'claim'> | null | undefined, expiresAt: Date): Promise<void> {
  if (!lease?.slot || !lease.claim) return;
  await ctx.cols.keySlots.updateOne({ _id: lease.slot, holder: lease.claim }, { $set: { expiresAt } }, { writeConcern: ctx.writeConcern });
}
