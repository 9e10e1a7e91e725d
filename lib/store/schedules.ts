/**
 * Schedules and pipeline runs (`pts_schedules`, `pts_runs`). The database decides which process
 * fires a slot: a run record is inserted under the unique index `{pipeline, slot}` by whoever
 * fires it — the one insert that succeeds owns the slot, every other scheduler gets E11000 and
 * reads the winner's record. The schedule's `nextSlot` is then advanced with one conditional
 * write whose filter carries the slot read. A scheduler killed between the two (or between the
 * record and the run's container) leaves a record the next one finds and completes: run
 * containers are created idempotently by name. No in-process lock is involved.
 * @internal
 */
import type { Filter } from 'mongodb';
import { ObjectId } from './bson';
import { ValidationError } from '../errors';
import type { ResolvedSchedule } from '../schedule';
import type { ContainerStatus } from '../states';
import type { StoreContext } from './context';
import { isDuplicateKey } from './inserts';
import type { RunDoc, RunStatus, ScheduleDoc } from './schedule-docs';

export type { RunDoc, RunKind, RunStatus, ScheduleDoc } from './schedule-docs';

export type NewRun = Omit<RunDoc, '_id' | 'decidedAt' | 'updatedAt' | 'startedAt' | 'finishedAt' | 'outcome'>;

/**
 * Creates or updates a schedule by name. `nextSlot` is recomputed (by `next`) only when the cron,
 * time zone or jitter changed; `paused` is kept on an update.
 */
export async function saveSchedule(
  ctx: StoreContext,
  s: ResolvedSchedule,
  next: (from: Date) => { nextSlot: Date | null; nextFireAt: Date | null },
): Promise<{ doc: ScheduleDoc; created: boolean }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const now = ctx.clock.now();
    const cur = await ctx.cols.schedules.findOne({ name: s.name });
    const fields = { ...s, updatedAt: now };
    if (!cur) {
      const doc: ScheduleDoc = {
        _id: new ObjectId(),
        ...fields,
        note: null,
        ...next(now),
        createdAt: now,
        rev: 1,
      };
      try {
        await ctx.cols.schedules.insertOne(doc, { writeConcern: ctx.writeConcern });
        return { doc, created: true };
      } catch (err) {
        if (isDuplicateKey(err)) continue;
        throw err;
      }
    }
    const same =
      cur.cron === s.cron &&
      cur.timezone === s.timezone &&
      cur.jitterMs === s.jitterMs &&
      cur.pipeline === s.pipeline;
    // `paused` applies on creation only: a process restating its schedule at start-up must not
    // unpause one paused by hand or by pauseOnFailure (unpausing goes through unpauseSchedule).
    const { paused: _paused, ...kept } = fields;
    void _paused;
    const set = same ? kept : { ...kept, ...next(now) };
    const doc = await ctx.cols.schedules.findOneAndUpdate(
      { _id: cur._id, rev: cur.rev },
      { $set: set, $inc: { rev: 1 } },
      { returnDocument: 'after', writeConcern: ctx.writeConcern },
    );
    if (doc) return { doc, created: false };
  }
  throw new ValidationError(`schedule ${JSON.stringify(s.name)} is being changed concurrently; try again`, {
    schedule: s.name,
  });
}

export async function findSchedule(ctx: StoreContext, name: string): Promise<ScheduleDoc | null> {
  return ctx.cols.schedules.findOne({ name });
}

/** Every schedule (of these pipelines), by name. */
export async function listSchedules(ctx: StoreContext, pipelines?: string[]): Promise<ScheduleDoc[]> {
  const filter: Filter<ScheduleDoc> = pipelines ? { pipeline: { $in: pipelines } } : {};
  return ctx.cols.schedules.find(filter).sort({ name: 1 }).limit(10_000).toArray();
}

export async function deleteSchedule(ctx: StoreContext, name: string): Promise<boolean> {
  const r = await ctx.cols.schedules.deleteOne({ name }, { writeConcern: ctx.writeConcern });
  return r.deletedCount === 1;
}

/**
 * Pauses (from unpaused) or unpauses (from paused) a schedule; an unpause also moves `nextSlot`
 * to `resume` when the slot read is still the one stored (the caller recorded the slots in
 * between as skipped). Null if the schedule is missing or already in that state / moved on.
 */
export async function setSchedulePaused(
  ctx: StoreContext,
  name: string,
  paused: boolean,
  note: string | null,
  resume?: { from: Date | null; nextSlot: Date | null; nextFireAt: Date | null },
): Promise<ScheduleDoc | null> {
  const filter: Filter<ScheduleDoc> = { name, paused: !paused };
  const set: Partial<ScheduleDoc> = { paused, note, updatedAt: ctx.clock.now() };
  if (resume) {
    filter.nextSlot = resume.from;
    set.nextSlot = resume.nextSlot;
    set.nextFireAt = resume.nextFireAt;
  }
  return ctx.cols.schedules.findOneAndUpdate(
    filter,
    { $set: set, $inc: { rev: 1 } },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
}

/** Moves the schedule past a decided slot: one conditional write on the slot read. False if another process (or an edit) moved it first. */
export async function advanceSchedule(
  ctx: StoreContext,
  id: ObjectId,
  from: Date,
  to: { nextSlot: Date | null; nextFireAt: Date | null },
): Promise<boolean> {
  const r = await ctx.cols.schedules.updateOne(
    { _id: id, nextSlot: from },
    { $set: { ...to, updatedAt: ctx.clock.now() }, $inc: { rev: 1 } },
    { writeConcern: ctx.writeConcern },
  );
  return r.matchedCount === 1;
}

/** Inserts the record of a slot; if the slot was already decided (E11000), returns that record instead with `inserted: false`. */
export async function insertRun(ctx: StoreContext, run: NewRun): Promise<{ run: RunDoc; inserted: boolean }> {
  const now = ctx.clock.now();
  const doc: RunDoc = {
    _id: new ObjectId(),
    ...run,
    outcome: null,
    decidedAt: now,
    startedAt: null,
    finishedAt: null,
    updatedAt: now,
  };
  try {
    await ctx.cols.runs.insertOne(doc, { writeConcern: ctx.writeConcern });
    return { run: doc, inserted: true };
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    const cur = await ctx.cols.runs.findOne({ pipeline: run.pipeline, slot: run.slot });
    if (!cur) throw err;
    return { run: cur, inserted: false };
  }
}

/** Moves a run from `from` to `to` (one conditional write); null if it was not in `from` any more. */
export async function moveRun(
  ctx: StoreContext,
  id: ObjectId,
  from: RunStatus,
  to: RunStatus,
  set: Partial<
    Pick<RunDoc, 'reason' | 'outcome' | 'definitionHash' | 'steps' | 'startedAt' | 'finishedAt' | 'durations'>
  > = {},
): Promise<RunDoc | null> {
  return ctx.cols.runs.findOneAndUpdate(
    { _id: id, status: from },
    { $set: { ...set, status: to, updatedAt: ctx.clock.now() } },
    { returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
}

/** The pipeline's runs that are not over (buffered, starting, started), oldest slot first. */
export async function openRuns(ctx: StoreContext, pipeline: string): Promise<RunDoc[]> {
  return ctx.cols.runs
    .find({ pipeline, status: { $in: ['buffered', 'starting', 'started'] } })
    .sort({ slot: 1 })
    .limit(1000)
    .toArray();
}

/** Status of each named container that exists (one read on the unique name index). */
export async function containerStatuses(
  ctx: StoreContext,
  names: string[],
): Promise<Map<string, ContainerStatus>> {
  if (names.length === 0) return new Map();
  const docs = await ctx.cols.containers
    .find({ name: { $in: names } }, { projection: { name: 1, status: 1 } })
    .toArray();
  return new Map(docs.map((d) => [d.name, d.status]));
}

export interface StepRun {
  name: string;
  state: string;
  durationMs: number | null;
}

/** A page of a pipeline's runs, newest slot first; the cursor is the last slot of the page. */
export async function listRuns(
  ctx: StoreContext,
  pipeline: string,
  q: { cursor?: string | null; limit?: number },
): Promise<{
  items: RunDoc[];
  nextCursor: string | null;
  steps: Map<string, StepRun[]>;
  statuses: Map<string, ContainerStatus>;
}> {
  const limit = q.limit === undefined ? 50 : q.limit;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new ValidationError('limit must be an integer from 1 to 1000', { path: 'limit' });
  const filter: Filter<RunDoc> = { pipeline };
  if (q.cursor !== undefined && q.cursor !== null && q.cursor !== '') {
    if (typeof q.cursor !== 'string' || !/^\d{1,16}$/.test(q.cursor))
      throw new ValidationError('malformed cursor', { path: 'cursor' });
    filter.slot = { $lt: new Date(Number(q.cursor)) };
  }
  // One more than the page, and the run before it: the oldest run of the page is compared with it.
  const docs = await ctx.cols.runs
    .find(filter)
    .sort({ slot: -1 })
    .limit(limit + 1)
    .toArray();
  const more = docs.length > limit;
  const items = docs.slice(0, limit);
  const names = items
    .filter((r) => r.status === 'started' || r.status === 'finished')
    .map((r) => r.container);
  const containers = names.length
    ? await ctx.cols.containers
        .find({ name: { $in: names } }, { projection: { _id: 1, name: 1, status: 1 } })
        .toArray()
    : [];
  const byId = new Map(containers.map((c) => [c._id.toHexString(), c.name]));
  const steps = new Map<string, StepRun[]>();
  if (containers.length) {
    const tasks = await ctx.cols.tasks
      .find(
        { containerId: { $in: containers.map((c) => c._id) } },
        { projection: { containerId: 1, name: 1, state: 1, durationMs: 1 } },
      )
      .toArray();
    for (const t of tasks) {
      const name = byId.get(t.containerId.toHexString())!;
      const list = steps.get(name) ?? [];
      list.push({ name: t.name, state: t.state, durationMs: t.durationMs ?? null });
      steps.set(name, list);
    }
  }
  return {
    items,
    nextCursor: more ? String(items[items.length - 1].slot.getTime()) : null,
    steps,
    statuses: new Map(containers.map((c) => [c.name, c.status])),
  };
}

/** The newest run of the pipeline before `slot` that has a recorded definition (to diff against). */
export async function previousDefinedRun(
  ctx: StoreContext,
  pipeline: string,
  slot: Date,
): Promise<RunDoc | null> {
  return ctx.cols.runs.findOne(
    { pipeline, slot: { $lt: slot }, definitionHash: { $type: 'string' } },
    { sort: { slot: -1 } },
  );
}

/** The newest skipped records (single slots and ranges) of a schedule, newest slot first (index `pipeline_status_slot`). */
export async function recentSkipped(
  ctx: StoreContext,
  pipeline: string,
  schedule: string,
  limit: number,
): Promise<RunDoc[]> {
  return ctx.cols.runs
    .find({ pipeline, status: 'skipped', schedule })
    .sort({ slot: -1 })
    .limit(limit)
    .toArray();
}
