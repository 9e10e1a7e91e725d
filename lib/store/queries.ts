/**
 * Reads: container lookups, summaries and paginated listings. Every query here is backed by a
 * documented index (docs/schema.md). Results are plain records.
 * @internal
 */
import type { Filter, ObjectId } from 'mongodb';
import { DatabaseError, ValidationError } from '../errors';
import { allowedContainerActions, emptyCounts, isContainerStatus, isTaskState, TASK_STATES, UNFINISHED_TASK_STATES, type ContainerStatus, type StateCounts, type TaskState } from '../states';
import type { ContainerSummary, ListContainersQuery, ListTasksQuery, Page, TaskRecord } from '../types';
import type { StoreContext } from './context';
import { decodeCursor, encodeCursor } from './cursor';
import { toContainerRecord, toTaskRecord, type ContainerDoc, type TaskDoc } from './documents';
import { CLAIM_ORDER, readyFilter, type ReadyScope } from './filters';
import type { DataRules } from '../validation';
import { hasEta, readEta } from './eta';

export function findContainer(ctx: StoreContext, name: string): Promise<ContainerDoc | null> {
  return ctx.cols.containers.findOne({ name });
}

export function findContainerById(ctx: StoreContext, id: ObjectId): Promise<ContainerDoc | null> {
  return ctx.cols.containers.findOne({ _id: id });
}

/**
 * The container's counters plus the live progress of its running tasks (an index range over
 * `{containerId, state: 'running'}`, bounded by how many run at once — never a scan of all tasks).
 */
export async function summarize(ctx: StoreContext, doc: ContainerDoc): Promise<ContainerSummary> {
  let runningSum = 0;
  // A running pipeline run: one read of its history; with history, its tasks' read replaces the running one (eta.ts).
  const withEta = hasEta(doc) ? await readEta(ctx, doc) : null;
  if (withEta) runningSum = withEta.runningSum;
  else if (doc.counts.running > 0) {
    const running = await ctx.cols.tasks
      .find({ containerId: doc._id, state: 'running' }, { projection: { weight: 1, percentageComplete: 1 } })
      .toArray();
    for (const t of running) runningSum += t.weight * t.percentageComplete;
  }
  const pct = doc.weightTotal > 0 ? (doc.progressSum + runningSum) / doc.weightTotal : 0;
  return {
    ...toContainerRecord(doc),
    percentageComplete: Math.min(100, Math.max(0, Math.round(pct * 1e6) / 1e6)),
    isComplete: doc.status === 'succeeded',
    allowedActions: allowedContainerActions(doc.counts),
    eta: withEta?.eta ?? null,
  };
}

function clampLimit(limit: unknown, def: number): number {
  if (limit === undefined) return def;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new ValidationError('limit must be an integer between 1 and 1000', { path: 'limit' });
  }
  return limit;
}

function statesFilter<T extends string>(value: T | T[] | undefined, check: (v: unknown) => v is T, path: string): T[] | null {
  if (value === undefined) return null;
  const arr = Array.isArray(value) ? value : [value];
  if (arr.length === 0 || !arr.every(check)) throw new ValidationError(`${path} has an unknown value`, { path });
  return arr;
}

export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Containers, newest first, filtered by status and name prefix. */
export async function listContainers(ctx: StoreContext, q: ListContainersQuery = {}): Promise<Page<ContainerSummary>> {
  const limit = clampLimit(q.limit, 50);
  const after = decodeCursor(q.cursor);
  const filter: Filter<ContainerDoc> = {};
  const statuses = statesFilter<ContainerStatus>(q.status, isContainerStatus, 'status');
  // One value as plain equality: the same index use on MongoDB, and FerretDB pushes it down to SQL.
  if (statuses) filter.status = statuses.length === 1 ? statuses[0] : { $in: statuses };
  if (q.namePrefix !== undefined) {
    if (typeof q.namePrefix !== 'string' || q.namePrefix.length > 512) throw new ValidationError('namePrefix must be a string', { path: 'namePrefix' });
    if (q.namePrefix) filter.name = { $regex: `^${escapeRegex(q.namePrefix)}` };
  }
  if (after) filter._id = { $lt: after };
  const docs = await ctx.cols.containers.find(filter).sort({ _id: -1 }).limit(limit + 1).toArray();
  const more = docs.length > limit;
  const page = docs.slice(0, limit);
  const items = await Promise.all(page.map((d) => summarize(ctx, d)));
  return { items, nextCursor: more ? encodeCursor(page[page.length - 1]._id) : null };
}

/** Tasks of a container in insertion order, optionally by state. */
export async function listTasks(ctx: StoreContext, containerId: ObjectId, q: ListTasksQuery = {}): Promise<Page<TaskRecord>> {
  const limit = clampLimit(q.limit, 100);
  const after = decodeCursor(q.cursor);
  const filter: Filter<TaskDoc> = { containerId };
  const states = statesFilter<TaskState>(q.state, isTaskState, 'state');
  // One state as plain equality: the same index use on MongoDB, and FerretDB pushes only
  // equalities down to SQL (a page of failed tasks at 100k: 0.6 s instead of 25 s on FerretDB/PostgreSQL).
  if (states) filter.state = states.length === 1 ? states[0] : { $in: states };
  // Children of one spawning task (index container_parent_id), or only the tasks nobody spawned.
  if (q.parent !== undefined) {
    if (q.parent !== null && (typeof q.parent !== 'string' || q.parent.length > 512)) throw new ValidationError('parent must be a task name or null', { path: 'parent' });
    filter.parent = q.parent === null ? { $exists: false } : q.parent;
  }
  if (after) filter._id = { $gt: after };
  const docs = await ctx.cols.tasks.find(filter).sort({ _id: 1 }).limit(limit + 1).toArray();
  const more = docs.length > limit;
  const page = docs.slice(0, limit);
  return { items: page.map(toTaskRecord), nextCursor: more ? encodeCursor(page[page.length - 1]._id) : null };
}

export function findTask(ctx: StoreContext, containerId: ObjectId, name: string): Promise<TaskDoc | null> {
  return ctx.cols.tasks.findOne({ containerId, name });
}

/** Every task of a container, in insertion order (the original API's `getTasks`). */
export async function allTasks(ctx: StoreContext, containerId: ObjectId): Promise<TaskDoc[]> {
  return ctx.cols.tasks.find({ containerId }).sort({ _id: 1 }).toArray();
}

/** States of the named tasks of a container. */
export async function taskStates(ctx: StoreContext, containerId: ObjectId, names: string[]): Promise<Map<string, TaskState>> {
  if (names.length === 0) return new Map();
  const docs = await ctx.cols.tasks.find({ containerId, name: { $in: names } }, { projection: { name: 1, state: 1 } }).toArray();
  return new Map(docs.map((d) => [d.name, d.state]));
}

/** A `$regex` matching names that start with `prefix`. */
export function prefixRegex(prefix: string): { $regex: string } {
  return { $regex: `^${escapeRegex(prefix)}` };
}

/** A `$regex` matching names that start with any of `prefixes`. */
export function prefixesRegex(prefixes: string[]): { $regex: string } {
  return { $regex: `^(?:${prefixes.map(escapeRegex).join('|')})` };
}

/** Names of the container's tasks that are pending or running (the runner checks it has handlers for them). */
export async function unfinishedTaskNames(ctx: StoreContext, containerId: ObjectId): Promise<string[]> {
  return ctx.cols.tasks.distinct('name', { containerId, state: { $in: [...UNFINISHED_TASK_STATES] } });
}

/** The tasks of `names` that exist in the container, with their state and dependencies (one read). */
export async function existingTasks(
  ctx: StoreContext,
  containerId: ObjectId,
  names: string[],
): Promise<Array<Pick<TaskDoc, 'name' | 'state' | 'dependsOn'>>> {
  if (names.length === 0) return [];
  return ctx.cols.tasks.find({ containerId, name: { $in: names } }, { projection: { _id: 0, name: 1, state: 1, dependsOn: 1 } }).toArray();
}

/** When the soonest lease of a running task of the container expires (null: none running). */
export async function earliestLeaseExpiry(ctx: StoreContext, containerId: ObjectId): Promise<Date | null> {
  const next = await ctx.cols.tasks
    .find({ containerId, state: 'running' }, { projection: { lease: 1 } })
    .sort({ 'lease.expiresAt': 1 })
    .limit(1)
    .toArray();
  return next[0]?.lease?.expiresAt ?? null;
}

/** When the soonest ready task (no dependency left) of the container may be claimed (null: none). */
export async function earliestReadyAt(ctx: StoreContext, containerId: ObjectId): Promise<Date | null> {
  const next = await ctx.cols.tasks.find(readyFilter({ containerId }), { projection: { runAfter: 1 } }).sort({ runAfter: 1 }).limit(1).toArray();
  return next[0]?.runAfter ?? null;
}

/** Running tasks of the container leased to `owner` and claimed since `since` (claims whose reply was lost). */
export async function findOrphans(ctx: StoreContext, containerId: ObjectId, owner: string, since: Date): Promise<TaskDoc[]> {
  return ctx.cols.tasks.find({ containerId, state: 'running', 'lease.owner': owner, lastInvokedAt: { $gte: since } }).toArray();
}

/** The distinct keys of the first ready keyed tasks in scope, in claim order (at most `limit` tasks looked at). */
export async function readyKeys(ctx: StoreContext, scope: Omit<ReadyScope, 'key'>, now: Date, limit = 200): Promise<string[]> {
  const candidates = await ctx.cols.tasks
    .find(readyFilter({ ...scope, key: { $ne: null } }, now), { projection: { key: 1 } })
    .sort(CLAIM_ORDER)
    .limit(limit)
    .toArray();
  return [...new Set(candidates.map((t) => t.key as string))];
}

/** Tasks per state summed over every container (from the counters), and the number of containers. */
export async function totals(ctx: StoreContext): Promise<{ containers: number; tasks: StateCounts }> {
  const rows = await ctx.cols.containers.find({}, { projection: { counts: 1 } }).toArray();
  const tasks = emptyCounts();
  for (const r of rows) for (const s of TASK_STATES) tasks[s] += r.counts?.[s] ?? 0;
  return { containers: rows.length, tasks };
}

/** Names of the containers with these ids. */
export async function containerNames(ctx: StoreContext, ids: ObjectId[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const docs = await ctx.cols.containers.find({ _id: { $in: ids } }, { projection: { name: 1 } }).toArray();
  return docs.map((d) => d.name);
}

/** The server's own clock (`hello.localTime`), or this process's when the server does not say. */
export async function serverTime(ctx: StoreContext): Promise<Date> {
  const db = ctx.db();
  if (!db) throw new DatabaseError('the client is not connected', { op: 'serverTime' }, undefined, true);
  const hello = (await db.admin().command({ hello: 1 })) as { localTime?: unknown };
  return hello.localTime instanceof Date ? hello.localTime : new Date();
}

/** `hello.localTime` of the server, or null when it does not report one (the clock offset, lib/server-clock.ts). */
export async function serverLocalTime(ctx: StoreContext): Promise<Date | null> {
  const db = ctx.db();
  if (!db) throw new DatabaseError('the client is not connected', { op: 'serverLocalTime' }, undefined, true);
  const hello = (await db.admin().command({ hello: 1 })) as { localTime?: unknown };
  return hello.localTime instanceof Date ? hello.localTime : null;
}

/**
 * What the server can store of user data, from `buildInfo`: FerretDB (which reports
 * `ferretdbVersion`) refuses arrays inside arrays; MongoDB stores them.
 */
export async function dataRules(ctx: StoreContext): Promise<DataRules> {
  const db = ctx.db();
  if (!db) throw new DatabaseError('the client is not connected', { op: 'dataRules' }, undefined, true);
  const info = (await db.command({ buildInfo: 1 })) as { ferretdbVersion?: unknown };
  return { nestedArrays: info.ferretdbVersion === undefined };
}

/** Asks the server for a `ping` within `timeoutMs` (readiness checks). */
export async function ping(ctx: StoreContext, timeoutMs: number): Promise<void> {
  const db = ctx.db();
  if (!db) throw new DatabaseError('the client is not connected', { op: 'ping' }, undefined, true);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      db.command({ ping: 1 }, { timeoutMS: timeoutMs }),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new DatabaseError('ping timed out', { op: 'ping' }, undefined, true)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The `metadata` of the container with that name (null: no such container). One read, projected. */
export async function containerMetadata(ctx: StoreContext, name: string): Promise<Record<string, unknown> | null> {
  const doc = await ctx.cols.containers.findOne({ name }, { projection: { metadata: 1 } });
  return doc ? (doc.metadata ?? {}) : null;
}
