/**
 * Recovery as the client offers it (`client.recoverStale()`, the sweeper timer): runs the
 * store's sweep (store/sweep.ts) and reports what it did, as events and as a report.
 * @internal
 */
import type { Core } from './core';
import { ValidationError } from './errors';
import { toTaskRecord } from './store/documents';
import type { SweepResult } from './store';
import { applyRetention, RETENTION_BATCH } from './retention';
import type { RecoveryReport } from './types';
import { validateName, validateNonNegativeInt } from './validation';

/** Options of `client.recoverStale()`. */
export interface RecoverOptions {
  /** Only this container. */
  container?: string;
  /** At most this many expired leases per call. @defaultValue 1000 */
  limit?: number;
  /** At most this many containers deleted by the retention policies (docs/api.md#retention); 0: none. Not applied with `container`. @defaultValue 100 */
  retentionLimit?: number;
}

/** Emits the events of a sweep: the expiries and the containers it finalized. */
export function notifySweep(core: Core, s: SweepResult): void {
  for (const r of s.expired) core.notify.transition(r);
  for (const r of s.decided ?? []) core.notify.transition(r);
  for (const f of s.finalized) core.notify.containerChange(f.name, f.result);
}

export async function recoverStale(core: Core, options: RecoverOptions): Promise<RecoveryReport> {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ValidationError('options must be an object', { path: 'options' });
  }
  const limit = options.limit === undefined ? 1000 : Math.max(1, validateNonNegativeInt(options.limit, 'limit', 100_000));
  const retentionLimit = options.retentionLimit === undefined ? RETENTION_BATCH : validateNonNegativeInt(options.retentionLimit, 'retentionLimit', 10_000);
  await core.ready();
  let ids = null;
  if (options.container !== undefined) {
    const doc = await core.store.findContainer(validateName(options.container, 'container'));
    if (!doc) return { recovered: [], reconciled: [], unblocked: 0 };
    ids = [doc._id];
  }
  const s = await core.store.sweep(ids, limit);
  notifySweep(core, s);
  // Retention after recovery, in a bounded batch (finished containers only: the sweep may just have finalized some).
  const pruned = ids === null && retentionLimit > 0 ? (await applyRetention(core, { limit: retentionLimit })).containers.map((c) => c.container) : [];
  return {
    recovered: s.expired.map((r) => ({ container: r.task.container, task: r.task.name, owner: toTaskRecord(r.task).failures.at(-1)?.workerId ?? 'unknown', state: r.task.state })),
    reconciled: await core.store.containerNames(s.reconciled),
    unblocked: s.unblocked,
    pruned,
  };
}
