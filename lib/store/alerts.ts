/**
 * Alerting's database operations: rules, the alert lease and feed cursor (one state document),
 * and deliveries. Exactly one process delivers at a time: the lease is taken and renewed by
 * conditional writes on the (server-corrected) clock, and every cursor write carries the lease
 * token in its filter, so a process that lost the lease cannot move the cursor. Deliveries are
 * created (idempotently, under the unique `key`) before the cursor passes their events: a crash
 * in between re-creates nothing twice and loses nothing.
 *
 * Deliveries are fenced by the same token: each carries `fence`, the token of the last holder
 * that wrote it. An attempt starts only under a token at least as new (and stamps it), and its
 * outcome is recorded only under the token that started it; a holder that takes the lease over
 * stamps every pending delivery with its new token first ({@link fenceDeliveries}). So a former
 * holder still in the middle of a pass can neither start nor record an attempt on any of them.
 * @internal
 */
import type { Filter } from 'mongodb';
import { ObjectId, Timestamp } from './bson';
import { DuplicateError, ValidationError } from '../errors';
import type { StoreContext } from './context';
import type { ContainerDoc, TaskDoc } from './documents';
import type { FeedPosition } from './feed';
import { isDuplicateKey } from './inserts';
import { prefixesRegex } from './queries';
import type { RunDoc } from './schedule-docs';
import type {
  AlertDeliveryDoc,
  AlertRuleDoc,
  AlertStateDoc,
  DeliveryAttemptDoc,
  DeliveryStatus,
} from './alert-docs';

export type {
  AlertDeliveryDoc,
  AlertRuleDoc,
  AlertStateDoc,
  DeliveryAttemptDoc,
  DeliveryStatus,
} from './alert-docs';

const STATE_ID = 'alerts';

// ---- rules

export async function insertAlertRule(
  ctx: StoreContext,
  rule: Omit<AlertRuleDoc, '_id' | 'createdAt' | 'updatedAt'>,
): Promise<AlertRuleDoc> {
  const now = ctx.clock.now();
  const doc: AlertRuleDoc = { _id: new ObjectId(), ...rule, createdAt: now, updatedAt: now };
  try {
    await ctx.cols.alertRules.insertOne(doc, { writeConcern: ctx.writeConcern });
  } catch (err) {
    if (isDuplicateKey(err))
      throw new DuplicateError(`an alert rule named ${JSON.stringify(rule.name)} exists`, {
        rule: rule.name,
      });
    throw err;
  }
  return doc;
}

export async function listAlertRules(ctx: StoreContext): Promise<AlertRuleDoc[]> {
  return ctx.cols.alertRules.find({}).sort({ name: 1 }).limit(10_000).toArray();
}

export async function findAlertRule(ctx: StoreContext, name: string): Promise<AlertRuleDoc | null> {
  return ctx.cols.alertRules.findOne({ name });
}

export async function deleteAlertRule(ctx: StoreContext, name: string): Promise<boolean> {
  const r = await ctx.cols.alertRules.deleteOne({ name }, { writeConcern: ctx.writeConcern });
  return r.deletedCount === 1;
}

/** Enables or disables a rule (one write); null if there is none of that name. */
export async function setAlertRuleEnabled(
  ctx: StoreContext,
  name: string,
  enabled: boolean,
): Promise<AlertRuleDoc | null> {
  return ctx.cols.alertRules.findOneAndUpdate(
    { name },
    { $set: { enabled, updatedAt: ctx.clock.now() } },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
}

// ---- the lease and the cursor

/** The state document, created (without a holder) if missing. */
export async function alertState(ctx: StoreContext): Promise<AlertStateDoc> {
  const cur = await ctx.cols.alertState.findOne({ _id: STATE_ID });
  if (cur) return cur;
  const doc: AlertStateDoc = {
    _id: STATE_ID,
    holder: null,
    token: 0,
    expiresAt: new Date(0),
    updatedAt: ctx.clock.now(),
  };
  try {
    await ctx.cols.alertState.insertOne(doc, { writeConcern: ctx.writeConcern });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
  return (await ctx.cols.alertState.findOne({ _id: STATE_ID })) ?? doc;
}

/**
 * Renews the lease `holder` holds under `token`, or else takes it if it expired (a new token).
 * One conditional write each; null if another process holds a live lease.
 */
export async function takeAlertLease(
  ctx: StoreContext,
  holder: string,
  token: number | null,
  leaseMs: number,
): Promise<AlertStateDoc | null> {
  const now = ctx.clock.now();
  const expiresAt = new Date(now.getTime() + leaseMs);
  if (token !== null) {
    const renewed = await ctx.cols.alertState.findOneAndUpdate(
      { _id: STATE_ID, holder, token, expiresAt: { $gt: now } },
      { $set: { expiresAt, updatedAt: now } },
      { returnDocument: 'after', writeConcern: ctx.writeConcern },
    );
    if (renewed) return fenced(ctx, renewed);
  }
  await alertState(ctx);
  const taken = await ctx.cols.alertState.findOneAndUpdate(
    { _id: STATE_ID, expiresAt: { $lte: now } },
    { $set: { holder, expiresAt, updatedAt: now }, $inc: { token: 1 } },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  return taken && (await fenced(ctx, taken));
}

/**
 * The lease, once every pending delivery carries its token (the take-over's first duty, retried
 * by the next renewal if it failed half-way: `fencedToken` records that it was done).
 */
async function fenced(ctx: StoreContext, lease: AlertStateDoc): Promise<AlertStateDoc | null> {
  if (lease.fencedToken === lease.token) return lease;
  await fenceDeliveries(ctx, lease.token);
  const r = await ctx.cols.alertState.findOneAndUpdate(
    { _id: STATE_ID, holder: lease.holder, token: lease.token },
    { $set: { fencedToken: lease.token } },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  return r;
}

/** Gives the lease up (expires it now) if still held under `token`. */
export async function releaseAlertLease(ctx: StoreContext, holder: string, token: number): Promise<boolean> {
  const r = await ctx.cols.alertState.updateOne(
    { _id: STATE_ID, holder, token },
    { $set: { expiresAt: new Date(0), updatedAt: ctx.clock.now() } },
    { writeConcern: ctx.writeConcern },
  );
  return r.matchedCount === 1;
}

/** Moves the cursor, only under the live lease `token` (false: the lease was lost; nothing written). */
export async function advanceAlertCursor(
  ctx: StoreContext,
  holder: string,
  token: number,
  cursor: FeedPosition,
  runsSince: Date | null,
): Promise<boolean> {
  const now = ctx.clock.now();
  const r = await ctx.cols.alertState.updateOne(
    { _id: STATE_ID, holder, token, expiresAt: { $gt: now } },
    { $set: { cursor: { ts: cursor.ts, id: cursor.id }, runsSince, updatedAt: now } },
    { writeConcern: ctx.writeConcern },
  );
  return r.matchedCount === 1;
}

// ---- the sources of events

/** What one read of the sources found. */
export interface AlertSources {
  /** Failed tasks and tasks that failed an attempt (the caller picks deadline failures), feed order. */
  tasks: Array<
    Pick<
      TaskDoc,
      | '_id'
      | 'changedAt'
      | 'container'
      | 'containerId'
      | 'name'
      | 'state'
      | 'failures'
      | 'failureCount'
      | 'updatedAt'
      | 'attempts'
    >
  >;
  /** Failed containers, feed order. */
  containers: Array<
    Pick<ContainerDoc, '_id' | 'changedAt' | 'name' | 'status' | 'endedAt' | 'updatedAt' | 'counts'>
  >;
  /** Missed-slot records decided after `runsSince - lookBackMs`, oldest first. */
  missed: RunDoc[];
}

/**
 * The feed entries alerting cares about after `from` and below `horizon` (each list at most
 * `limit` long, in (changedAt, _id) order), and the missed-slot records since `runsSince`.
 */
export async function readAlertSources(
  ctx: StoreContext,
  from: FeedPosition,
  horizon: Timestamp,
  runsSince: Date | null,
  lookBackMs: number,
  limit: number,
  prefixes: string[],
): Promise<AlertSources> {
  const range = {
    $and: [
      { $or: [{ changedAt: { $gt: from.ts } }, { changedAt: from.ts, _id: { $gt: from.id } }] },
      { changedAt: { $lt: horizon } },
    ],
  };
  const scoped = !prefixes.includes('');
  const re = scoped ? prefixesRegex(prefixes) : null;
  const sort = { changedAt: 1, _id: 1 } as const;
  const taskFilter = {
    $and: [
      range,
      { $or: [{ state: 'failed' }, { failureCount: { $gt: 0 } }] },
      ...(re ? [{ container: re }] : []),
    ],
  } as Filter<TaskDoc>;
  const containerFilter = {
    $and: [range, { status: 'failed' }, ...(re ? [{ name: re }] : [])],
  } as Filter<ContainerDoc>;
  const runFilter: Filter<RunDoc> = { status: 'skipped', reason: 'missed' };
  if (runsSince) runFilter.decidedAt = { $gt: new Date(runsSince.getTime() - lookBackMs) };
  if (re) runFilter.container = re;
  const [tasks, containers, missed] = await Promise.all([
    ctx.cols.tasks
      .find(taskFilter, {
        sort,
        limit,
        projection: {
          _id: 1,
          changedAt: 1,
          container: 1,
          containerId: 1,
          name: 1,
          state: 1,
          failures: 1,
          failureCount: 1,
          updatedAt: 1,
          attempts: 1,
        },
      })
      .toArray(),
    ctx.cols.containers
      .find(containerFilter, {
        sort,
        limit,
        projection: { _id: 1, changedAt: 1, name: 1, status: 1, endedAt: 1, updatedAt: 1, counts: 1 },
      })
      .toArray(),
    ctx.cols.runs.find(runFilter).sort({ decidedAt: 1, _id: 1 }).limit(limit).toArray(),
  ]);
  return { tasks, containers, missed } as AlertSources;
}

/** A feed position no entry precedes. */
export const FEED_START: FeedPosition = {
  ts: new Timestamp({ t: 0, i: 0 }),
  id: new ObjectId('000000000000000000000000'),
};

// ---- deliveries

export type NewDelivery = Omit<
  AlertDeliveryDoc,
  | '_id'
  | 'fence'
  | 'status'
  | 'attempts'
  | 'attemptCount'
  | 'createdAt'
  | 'updatedAt'
  | 'deliveredAt'
  | 'nextAttemptAt'
>;

/** Creates the delivery unless one with its key exists (the key is the idempotency key). True if created. */
export async function insertDelivery(ctx: StoreContext, d: NewDelivery, token: number): Promise<boolean> {
  const now = ctx.clock.now();
  const doc: AlertDeliveryDoc = {
    _id: new ObjectId(),
    ...d,
    fence: token,
    status: 'pending',
    attempts: [],
    attemptCount: 0,
    nextAttemptAt: now,
    createdAt: now,
    updatedAt: now,
    deliveredAt: null,
  };
  try {
    await ctx.cols.alertDeliveries.insertOne(doc, { writeConcern: ctx.writeConcern });
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

/** Pending deliveries due now, soonest first. */
export async function dueDeliveries(ctx: StoreContext, limit: number): Promise<AlertDeliveryDoc[]> {
  return ctx.cols.alertDeliveries
    .find({ status: 'pending', nextAttemptAt: { $lte: ctx.clock.now() } })
    .sort({ nextAttemptAt: 1, _id: 1 })
    .limit(limit)
    .toArray();
}

/**
 * Stamps every pending delivery with the lease `token` just taken over (one write), so the former
 * holder can no longer start or record an attempt on any of them. Returns how many it stamped.
 */
async function fenceDeliveries(ctx: StoreContext, token: number): Promise<number> {
  const r = await ctx.cols.alertDeliveries.updateMany(
    { status: 'pending', fence: { $lt: token } },
    { $set: { fence: token } },
    { writeConcern: ctx.writeConcern },
  );
  return r.modifiedCount;
}

/**
 * Starts attempt `seen + 1` of a due delivery under the lease `token`: one conditional write on
 * its attempt count and fence that also moves `nextAttemptAt` past the attempt's timeout (so a
 * holder that dies mid-request leaves it due again for the next one). Null if another process
 * started it first, or a newer holder fenced it.
 */
export async function startAttempt(
  ctx: StoreContext,
  id: ObjectId,
  seen: number,
  holdMs: number,
  token: number,
): Promise<AlertDeliveryDoc | null> {
  const now = ctx.clock.now();
  return ctx.cols.alertDeliveries.findOneAndUpdate(
    { _id: id, status: 'pending', attemptCount: seen, fence: { $lte: token }, nextAttemptAt: { $lte: now } },
    {
      $set: { fence: token, nextAttemptAt: new Date(now.getTime() + holdMs), updatedAt: now },
      $inc: { attemptCount: 1 },
    },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
}

/**
 * Records the outcome of attempt `attempt.n` (one write, only if no later attempt started and no
 * newer lease holder fenced the delivery since `token` started it).
 */
export async function recordAttempt(
  ctx: StoreContext,
  id: ObjectId,
  attempt: DeliveryAttemptDoc,
  status: DeliveryStatus,
  nextAttemptAt: Date,
  token: number,
): Promise<boolean> {
  const now = ctx.clock.now();
  const r = await ctx.cols.alertDeliveries.updateOne(
    { _id: id, status: 'pending', attemptCount: attempt.n, fence: token },
    {
      $push: { attempts: attempt },
      $set: {
        status,
        nextAttemptAt,
        updatedAt: now,
        ...(status === 'delivered' ? { deliveredAt: now } : {}),
      },
    },
    { writeConcern: ctx.writeConcern },
  );
  return r.matchedCount === 1;
}

/** A page of deliveries, newest first (the cursor is the last `_id` of the page). */
export async function listDeliveries(
  ctx: StoreContext,
  q: { rule?: string; status?: DeliveryStatus; prefix?: string; after?: ObjectId | null; limit: number },
): Promise<AlertDeliveryDoc[]> {
  const filter: Filter<AlertDeliveryDoc> = {};
  if (q.rule !== undefined) filter.ruleName = q.rule;
  if (q.status !== undefined) filter.status = q.status;
  if (q.prefix) filter.container = prefixesRegex([q.prefix]);
  if (q.after) filter._id = { $lt: q.after };
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > 1001)
    throw new ValidationError('limit must be an integer from 1 to 1000', { path: 'limit' });
  return ctx.cols.alertDeliveries.find(filter).sort({ _id: -1 }).limit(q.limit).toArray();
}

/** Deletes delivered and failed deliveries last written before `before`. */
export async function pruneDeliveries(ctx: StoreContext, before: Date): Promise<number> {
  const [a, b] = await Promise.all(
    (['delivered', 'failed'] as const).map((status) =>
      ctx.cols.alertDeliveries.deleteMany(
        { status, updatedAt: { $lt: before } },
        { writeConcern: ctx.writeConcern },
      ),
    ),
  );
  return a.deletedCount + b.deletedCount;
}
