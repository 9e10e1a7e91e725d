/**
 * The changes feed: every task and container in the order of their last write, CouchDB-style —
 * an entry is the document's *latest* state, so folding the feed by key yields the final state.
 *
 * Order is (changedAt, _id), where `changedAt` is the BSON Timestamp the server assigns on every
 * write (`$currentDate: { $type: 'timestamp' }`). Entries are returned only once they are older
 * than a safety horizon behind the server's own clock, so a write that already got its timestamp
 * but is not visible yet cannot be skipped by a reader that has moved past it.
 */
import { ObjectId, Timestamp } from './store/bson';
import type { Client } from './client';
import type { Core } from './core';
import { NotFoundError, ValidationError } from './errors';
import type { ContainerStatus, TaskState } from './states';
import type { ContainerDoc, FeedPosition, FeedScope, TaskDoc, TombstoneDoc } from './store';
import { validateName } from './validation';

/**
 * One entry of the feed: the latest state of a task or a container, or its deletion
 * (`deleted: true`; a deleted container's tasks are gone with it, without entries of their own).
 */
export interface Change {
  kind: 'task' | 'container';
  container: string;
  /** Task name (`kind: 'task'` only). */
  task?: string;
  /** True on a deletion entry, which has no state, progress or rev. */
  deleted?: true;
  state?: TaskState;
  status?: ContainerStatus;
  /** Absent on deletion entries. */
  percentageComplete?: number;
  statusText?: string | null;
  /** Absent on deletion entries. */
  rev?: number;
  /** Wall-clock time of the write (`updatedAt`, or the deletion time). */
  at: Date;
  /** Cursor positioned right after this entry. */
  cursor: string;
  /** Container counters (`kind: 'container'` only). */
  counts?: Record<string, number>;
  /** Whether the container is paused (`kind: 'container'` only; a pause or resume is a container entry). */
  paused?: boolean;
  total?: number;
  attempts?: number;
  failureCount?: number;
}

/** Options of {@link changes}. */
export interface ChangesQuery {
  /** Only this container (its tasks and itself). */
  container?: string;
  /** Only containers whose name starts with one of these (ignored with `container`). */
  prefixes?: string[];
  /** Cursor from a previous call's `next` (or an entry's `cursor`); omit to start from the beginning. */
  since?: string | null;
  /** @defaultValue 100 (at most 1000) */
  limit?: number;
  /** How far behind the server clock entries must be. @defaultValue 250 */
  horizonMs?: number;
}

export interface ChangesPage {
  changes: Change[];
  /** Cursor to pass as `since` next time (unchanged when nothing new). */
  next: string;
}

type Position = FeedPosition;

const ZERO: Position = { ts: new Timestamp({ t: 0, i: 0 }), id: new ObjectId('000000000000000000000000') };

export function encodeChangeCursor(p: Position): string {
  return `${p.ts.high.toString(36)}.${p.ts.low.toString(36)}.${p.id.toHexString()}`;
}

/** Parses a feed cursor; anything malformed is a ValidationError. */
export function decodeChangeCursor(cursor: unknown): Position {
  if (cursor === undefined || cursor === null || cursor === '' || cursor === '0') return ZERO;
  const m =
    typeof cursor === 'string' && cursor.length <= 64
      ? /^([0-9a-z]{1,7})\.([0-9a-z]{1,7})\.([0-9a-f]{24})$/.exec(cursor)
      : null;
  if (!m) throw new ValidationError('malformed cursor', { path: 'since' });
  const t = parseInt(m[1], 36);
  const i = parseInt(m[2], 36);
  if (t > 0xffffffff || i > 0xffffffff) throw new ValidationError('malformed cursor', { path: 'since' });
  return { ts: new Timestamp({ t, i }), id: new ObjectId(m[3]) };
}

function compare(a: Position, b: Position): number {
  const c = a.ts.compare(b.ts);
  return c !== 0
    ? c
    : a.id.toHexString() < b.id.toHexString()
      ? -1
      : a.id.toHexString() > b.id.toHexString()
        ? 1
        : 0;
}

/**
 * The newest Timestamp that is safe to return: every write stamped before it is visible. Server
 * Timestamps have one-second resolution, so this is the start of the second that was current
 * `horizonMs` ago on the server's clock (entries show up 0.25–1.25 s after their write).
 */
async function safeHorizon(core: Core, horizonMs = 250): Promise<Timestamp> {
  const now = (await core.store.serverTime()).getTime();
  return new Timestamp({ t: Math.floor((now - horizonMs) / 1000), i: 0 });
}

function taskChange(d: TaskDoc): Omit<Change, 'cursor'> {
  return {
    kind: 'task',
    container: d.container,
    task: d.name,
    state: d.state,
    percentageComplete: d.percentageComplete,
    statusText: d.statusText ?? null,
    attempts: d.attempts,
    failureCount: d.failureCount,
    rev: d.rev,
    at: d.updatedAt,
  };
}

function containerChange(d: ContainerDoc): Omit<Change, 'cursor'> {
  const total = d.weightTotal > 0 ? d.progressSum / d.weightTotal : 0;
  return {
    kind: 'container',
    container: d.name,
    status: d.status,
    // Weighted progress of the tasks that are not running (running tasks appear as task entries).
    percentageComplete: Math.min(100, Math.max(0, Math.round(total * 1e6) / 1e6)),
    counts: { ...d.counts },
    total: d.total,
    paused: d.paused === true,
    rev: d.rev,
    at: d.updatedAt,
  };
}

function deletionChange(d: TombstoneDoc): Omit<Change, 'cursor'> {
  return {
    kind: d.kind,
    container: d.container,
    ...(d.kind === 'task' && d.task !== null ? { task: d.task } : {}),
    deleted: true,
    at: d.deletedAt,
  };
}

/**
 * A page of changes after `since`. Pass `next` back as `since` to follow the feed; `next` stays
 * put when there is nothing new. (The same as `client.changes(q)`.)
 */
export function changes(client: Client | Core, q: ChangesQuery = {}): Promise<ChangesPage> {
  return 'store' in client ? readChanges(client, q) : client.changes(q);
}

async function readChanges(core: Core, q: ChangesQuery): Promise<ChangesPage> {
  const limit = q.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new ValidationError('limit must be an integer between 1 and 1000', { path: 'limit' });
  const from = decodeChangeCursor(q.since);
  let scope: FeedScope = {};
  if (q.container !== undefined) scope = { container: validateName(q.container, 'container') };
  else if (q.prefixes !== undefined) {
    const prefixes = q.prefixes.filter((p) => typeof p === 'string');
    if (prefixes.length === 0) return { changes: [], next: encodeChangeCursor(from) };
    scope = { prefixes };
  }
  await core.createIndexes();
  const horizon = await safeHorizon(core, q.horizonMs);
  const read = await core.store.readFeed(scope, from, horizon, limit);
  if (read.missing) throw new NotFoundError(`no container named ${JSON.stringify(q.container)}`, { container: q.container });
  const merged: Array<{ pos: Position; change: Omit<Change, 'cursor'> }> = [
    ...read.tasks.map((d) => ({ pos: { ts: d.changedAt, id: d._id }, change: taskChange(d) })),
    ...read.containers.map((d) => ({ pos: { ts: d.changedAt, id: d._id }, change: containerChange(d) })),
    ...read.tombstones.map((d) => ({ pos: { ts: d.changedAt, id: d._id }, change: deletionChange(d) })),
  ];
  merged.sort((a, b) => compare(a.pos, b.pos));
  const page = merged.slice(0, limit);
  const out = page.map((e) => ({ ...e.change, cursor: encodeChangeCursor(e.pos) }));
  return { changes: out, next: page.length ? out[out.length - 1].cursor : encodeChangeCursor(from) };
}
