/**
 * Step logs (`pts_logs`, `pts_log_counters`): the lines handlers and workers log, kept per task
 * and attempt, bounded per task. A flush appends one chunk: one `$inc` of the task's counter
 * (which hands out the chunk's sequence numbers, so writers in several processes never overlap)
 * and one insert of the chunk; about once per `maxLines` lines a third command deletes the chunks
 * that fell out of the window of the task's last `maxLines` lines. Lines that were dropped (before
 * they reached the database, or trimmed since) stay counted: `total` minus the lines kept.
 * Only `$inc`, `insertOne` and range deletes: the same on MongoDB, replica sets and FerretDB.
 * @internal
 */
import type { Filter, ObjectId } from 'mongodb';
import { ValidationError } from '../errors';
import type { StoreContext } from './context';

/** One stored line (short keys: a task keeps up to `maxLines` of them). */
export interface LogLineDoc {
  /** Time, on the store context's clock. */
  t: Date;
  /** Level. */
  l: string;
  /** Message. */
  m: string;
  /** Fields (small JSON object), absent without. */
  f?: Record<string, unknown>;
}

/** A batch of lines of one attempt, written by one flush. Lines are numbered `seq`…`end - 1`. */
export interface LogChunkDoc {
  _id?: ObjectId;
  taskId: ObjectId;
  containerId: ObjectId;
  attempt: number;
  seq: number;
  end: number;
  lines: LogLineDoc[];
  createdAt: Date;
}

/** Per task: lines counted so far (kept or not), in all and per attempt (`attempts.<n>`). */
export interface LogCounterDoc {
  _id: ObjectId;
  containerId: ObjectId;
  total: number;
  attempts: Record<string, number>;
  updatedAt: Date;
}

/** Whose lines: the task's `_id` and its container's. */
export interface LogTarget {
  taskId: ObjectId;
  containerId: ObjectId;
}

/** What one flush did: the sequence numbers its lines got and the commands it sent. */
export interface AppendResult {
  seq: number;
  total: number;
  writes: number;
}

/**
 * Appends `lines` of `attempt` to a task's log, counting `dropped` more lines that were lost
 * before they reached the database (they precede `lines`). Trims the chunks that fell out of the
 * task's last `maxLines` lines when this flush crossed a multiple of `maxLines`.
 */
export async function appendLogs(
  ctx: StoreContext,
  target: LogTarget,
  attempt: number,
  lines: LogLineDoc[],
  dropped: number,
  maxLines: number,
): Promise<AppendResult> {
  const n = lines.length + dropped;
  if (n === 0) return { seq: 0, total: 0, writes: 0 };
  const now = ctx.clock.now();
  const counter = await ctx.cols.logCounters.findOneAndUpdate(
    { _id: target.taskId },
    { $inc: { total: n, [`attempts.${attempt}`]: n }, $set: { updatedAt: now }, $setOnInsert: { containerId: target.containerId } },
    { upsert: true, returnDocument: 'after', writeConcern: ctx.writeConcern },
  );
  const total = counter?.total ?? n;
  const seq = total - lines.length;
  let writes = 1;
  if (lines.length > 0) {
    await ctx.cols.logs.insertOne(
      { taskId: target.taskId, containerId: target.containerId, attempt, seq, end: total, lines, createdAt: now },
      { writeConcern: ctx.writeConcern },
    );
    writes++;
  }
  if (Math.floor(total / maxLines) !== Math.floor((total - n) / maxLines) && total > maxLines) {
    await ctx.cols.logs.deleteMany({ taskId: target.taskId, end: { $lte: total - maxLines } }, { writeConcern: ctx.writeConcern });
    writes++;
  }
  return { seq, total, writes };
}

/** One line as read. */
export interface StoredLogLine {
  seq: number;
  attempt: number;
  level: string;
  message: string;
  fields: Record<string, unknown> | null;
  time: Date;
}

/** A page of a task's log. */
export interface StoredLogPage {
  lines: StoredLogLine[];
  /** Where the next read starts (after the last line returned; unchanged when none). */
  next: number;
  /** More lines are stored after this page. */
  more: boolean;
  /** Lines counted (of `attempt`, or of all attempts), kept or not. */
  total: number;
  /** Lines counted but not kept (of `attempt`, or of all): dropped in memory or trimmed. */
  dropped: number;
  /** The attempts that logged anything, ascending. */
  attempts: number[];
}

/**
 * Reads a task's log from sequence number `from` (lines before the window of the last
 * `maxLines` are gone), optionally of one attempt, at most `limit` lines. Two commands.
 */
export async function readLogs(
  ctx: StoreContext,
  taskId: ObjectId,
  q: { attempt: number | null; from: number; limit: number; maxLines: number },
): Promise<StoredLogPage> {
  const counter = await ctx.cols.logCounters.findOne({ _id: taskId });
  if (!counter) return { lines: [], next: q.from, more: false, total: 0, dropped: 0, attempts: [] };
  const floor = Math.max(0, counter.total - q.maxLines);
  const filter: Filter<LogChunkDoc> = { taskId, end: { $gt: floor } };
  if (q.attempt !== null) filter.attempt = q.attempt;
  const chunks = await ctx.cols.logs.find(filter).sort({ end: 1 }).toArray();
  const start = Math.max(q.from, floor);
  const lines: StoredLogLine[] = [];
  let kept = 0;
  let more = false;
  for (const c of chunks) {
    kept += c.end - Math.max(c.seq, floor);
    for (let i = Math.max(0, start - c.seq); i < c.lines.length; i++) {
      if (lines.length >= q.limit) {
        more = true;
        break;
      }
      const l = c.lines[i];
      lines.push({ seq: c.seq + i, attempt: c.attempt, level: l.l, message: l.m, fields: l.f ?? null, time: l.t });
    }
  }
  const attempts = Object.keys(counter.attempts ?? {})
    .map(Number)
    .filter((a) => Number.isInteger(a))
    .sort((a, b) => a - b);
  const total = q.attempt === null ? counter.total : (counter.attempts?.[String(q.attempt)] ?? 0);
  const next = lines.length ? lines[lines.length - 1].seq + 1 : start;
  return { lines, next, more, total, dropped: Math.max(0, total - kept), attempts };
}

/** Deletes the logs of one task (by its `_id`) or of every task of a container. */
export async function deleteLogs(ctx: StoreContext, of: { taskId: ObjectId } | { containerId: ObjectId }): Promise<number> {
  const chunks = 'taskId' in of ? { taskId: of.taskId } : { containerId: of.containerId };
  const counters = 'taskId' in of ? { _id: of.taskId } : { containerId: of.containerId };
  const r = await ctx.cols.logs.deleteMany(chunks, { writeConcern: ctx.writeConcern });
  await ctx.cols.logCounters.deleteMany(counters, { writeConcern: ctx.writeConcern });
  return r.deletedCount;
}

/** Opaque log cursors: base64url of `{ v: 1, s: <sequence number> }`. A malformed one is a ValidationError. */
export function encodeLogCursor(seq: number): string {
  return Buffer.from(JSON.stringify({ v: 1, s: seq })).toString('base64url');
}

export function decodeLogCursor(cursor: unknown): number {
  if (cursor === undefined || cursor === null || cursor === '') return 0;
  if (typeof cursor === 'string' && cursor.length <= 200 && /^[A-Za-z0-9_-]+$/.test(cursor)) {
    try {
      const o = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown; s?: unknown };
      if (o.v === 1 && Number.isSafeInteger(o.s) && (o.s as number) >= 0) return o.s as number;
    } catch {
      // fall through
    }
  }
  throw new ValidationError('malformed cursor', { path: 'cursor' });
}
