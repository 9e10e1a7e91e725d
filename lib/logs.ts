/**
 * Step logs: `ctx.log()` / `lease.log()` lines, validated and cleaned, held in a bounded buffer
 * per attempt and written in batches (store logs.ts), and read back a page at a time
 * (`task.logs()`). A hot loop of `log()` calls never becomes one write per line: the buffer is
 * flushed every `logFlushMs` or once it holds `logMaxLines` lines, one flush in flight at a time;
 * past `logMaxLines` unwritten lines the oldest are dropped and counted. A crash loses at most
 * the lines of the last `logFlushMs` (plus a flush in flight).
 */
import type { Core } from './core';
import { ValidationError } from './errors';
import type { LogLineDoc, StoredLogPage } from './store';
import { ObjectId } from './store/bson';
import { decodeLogCursor, encodeLogCursor } from './store/logs';
import { validateNonNegativeInt } from './validation';

/** The log levels, lowest first. */
export const LOG_LEVELS = Object.freeze(['debug', 'info', 'warn', 'error'] as const);
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Longest stored message (characters); longer ones are cut, saying how much was cut. */
export const MAX_LOG_MESSAGE = 2_000;
/** Largest `fields` object, as JSON (bytes). */
export const MAX_LOG_FIELDS_BYTES = 2_000;
/** Most lines one read returns. */
export const MAX_LOG_PAGE = 1_000;

/** One stored log line. */
export interface LogLine {
  /** Position in the task's log (all attempts), from 0. */
  seq: number;
  /** The attempt that logged it: the task's `invokeCount` when it was claimed. */
  attempt: number;
  level: LogLevel;
  message: string;
  fields: Record<string, unknown> | null;
  /** When it was logged (the client's clock, corrected to the database server's). */
  time: Date;
}

/** What `task.logs()` takes. */
export interface LogsQuery {
  /** Only this attempt's lines (an `invokeCount`). @defaultValue every attempt */
  attempt?: number;
  /** `nextCursor` of an earlier page: only lines logged after it. @defaultValue the oldest line kept */
  cursor?: string;
  /** At most this many lines (1–1000). @defaultValue 200 */
  limit?: number;
}

/** A page of a task's log, oldest line first. */
export interface LogPage {
  lines: LogLine[];
  /** Pass back as `cursor` for the lines after this page (also when it is empty: follow by polling). */
  nextCursor: string;
  /** More lines are stored after this page (read again at once). */
  hasMore: boolean;
  /** Lines logged (of `attempt`, or of every attempt), kept or not. */
  total: number;
  /** Of those, lines not kept: dropped before they were written, or trimmed past the task's bound. */
  dropped: number;
  /** The attempts that logged anything, ascending (for an attempt selector). */
  attempts: number[];
}

/** @internal */
export function validateLevel(level: unknown): LogLevel {
  if (typeof level !== 'string' || !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new ValidationError(`level must be one of ${LOG_LEVELS.join(', ')}`, { path: 'level' });
  }
  return level as LogLevel;
}

/** Text made storable: NUL and lone surrogates replaced, length capped (as failure messages). */
function clean(text: string, max: number): string {
  const t = text.replaceAll('\u0000', '\ufffd').toWellFormed();
  return t.length > max ? `${t.slice(0, max)}… (${t.length - max} more characters)` : t;
}

/** `fields`: a plain JSON object of at most MAX_LOG_FIELDS_BYTES, keys without a leading `$` or dots. */
function validateFields(fields: unknown): Record<string, unknown> | undefined {
  if (fields === undefined || fields === null) return undefined;
  if (typeof fields !== 'object' || Array.isArray(fields)) throw new ValidationError('fields must be an object', { path: 'fields' });
  let json: string | undefined;
  try {
    json = JSON.stringify(fields);
  } catch {
    throw new ValidationError('fields must be JSON-serializable', { path: 'fields' });
  }
  if (json === undefined) throw new ValidationError('fields must be JSON-serializable', { path: 'fields' });
  if (Buffer.byteLength(json) > MAX_LOG_FIELDS_BYTES) {
    throw new ValidationError(`fields must be at most ${MAX_LOG_FIELDS_BYTES} bytes as JSON`, { path: 'fields' });
  }
  const out = JSON.parse(json) as Record<string, unknown>;
  const walk = (v: unknown, p: string): void => {
    if (v === null || typeof v !== 'object') {
      if (typeof v === 'string' && (v.includes('\u0000') || !v.isWellFormed())) throw new ValidationError('fields strings must not hold NUL or lone surrogates', { path: p });
      return;
    }
    for (const [k, x] of Object.entries(v)) {
      if (!Array.isArray(v) && (k.startsWith('$') || k.includes('.') || k.includes('\u0000'))) {
        throw new ValidationError('fields keys must not start with $ or contain dots', { path: `${p}.${k}` });
      }
      walk(x, `${p}.${k}`);
    }
  };
  walk(out, 'fields');
  return Object.keys(out).length ? out : undefined;
}

/**
 * One line from `log(level, message, fields?)`: a bad level or fields is a ValidationError; the
 * message (a string, or anything `String()` accepts) is cleaned and capped.
 * @internal
 */
export function toLogLine(level: unknown, message: unknown, fields: unknown, now: Date): LogLineDoc {
  const l = validateLevel(level);
  if (message === undefined) throw new ValidationError('message is required', { path: 'message' });
  const m = clean(typeof message === 'string' ? message : String(message), MAX_LOG_MESSAGE);
  const f = validateFields(fields);
  return f ? { t: now, l, m, f } : { t: now, l, m };
}

/** The resolved batching of a log buffer. @internal */
export interface LogTiming {
  logFlushMs: number;
  logMaxLines: number;
}

/**
 * The unwritten lines of one attempt. `add()` never waits and never throws on the database; a
 * flush that fails puts its lines back (bounded) and is tried again after `logFlushMs`.
 * @internal
 */
export class LogBuffer {
  private lines: LogLineDoc[] = [];
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;
  private inflight: Promise<void> | null = null;
  private closed = false;
  /** Flushes sent and commands they took (for specs and docs/performance.md). */
  flushes = 0;
  commands = 0;

  constructor(
    private readonly write: (lines: LogLineDoc[], dropped: number) => Promise<{ writes: number }>,
    private readonly timing: LogTiming,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  add(line: LogLineDoc): void {
    // After the outcome was recorded (close) or the request gave up (abandon): not written.
    if (this.closed) return;
    this.lines.push(line);
    // Keep at most 2× the bound in memory; cut back to the bound in one splice (O(1) amortized).
    if (this.lines.length >= 2 * this.timing.logMaxLines) this.trim();
    if (this.inflight) return;
    if (this.lines.length >= this.timing.logMaxLines) void this.send();
    else if (!this.timer && !this.closed) {
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.send();
      }, this.timing.logFlushMs);
      this.timer.unref?.();
    }
  }

  private trim(): void {
    const over = this.lines.length - this.timing.logMaxLines;
    if (over > 0) {
      this.lines.splice(0, over);
      this.dropped += over;
    }
  }

  private send(): Promise<void> {
    if (this.inflight) return this.inflight;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.trim();
    if (this.lines.length === 0 && this.dropped === 0) return Promise.resolve();
    const lines = this.lines;
    const dropped = this.dropped;
    this.lines = [];
    this.dropped = 0;
    this.flushes++;
    this.inflight = this.write(lines, dropped)
      .then((r) => {
        this.commands += r.writes;
      })
      .catch((err: unknown) => {
        // Not written: back in front of what came since (still bounded, drops still counted).
        this.lines = [...lines, ...this.lines];
        this.dropped += dropped;
        this.trim();
        this.onError(err);
        throw err;
      })
      .finally(() => {
        this.inflight = null;
        if (!this.closed && this.lines.length > 0 && !this.timer) {
          this.timer = setTimeout(() => {
            this.timer = null;
            void this.send().catch(() => undefined);
          }, this.timing.logFlushMs);
          this.timer.unref?.();
        }
      });
    const p = this.inflight;
    p.catch(() => undefined);
    return p;
  }

  /** Writes every line logged so far (waits for a flush in flight first). Rejects if the write fails. */
  async flush(): Promise<void> {
    if (this.inflight) await this.inflight.catch(() => undefined);
    if (this.lines.length || this.dropped) await this.send();
  }

  /** Drops what is not written yet and accepts no more lines (an HTTP request whose write failed: its client retries). */
  abandon(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.lines = [];
    this.dropped = 0;
  }

  /** Stops the timer and writes what is left (once; a failure is reported to `onError`, not thrown). */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush().catch(() => undefined);
    this.closed = true;
  }
}

/** @internal */
export function validateLogsQuery(q: LogsQuery | undefined): { attempt: number | null; from: number; limit: number } {
  if (q === undefined || q === null) return { attempt: null, from: 0, limit: 200 };
  if (typeof q !== 'object' || Array.isArray(q)) throw new ValidationError('options must be an object', { path: 'options' });
  const attempt = q.attempt === undefined || q.attempt === null ? null : validateNonNegativeInt(q.attempt, 'attempt');
  const limit = q.limit === undefined ? 200 : Math.max(1, validateNonNegativeInt(q.limit, 'limit', MAX_LOG_PAGE));
  return { attempt, from: decodeLogCursor(q.cursor), limit };
}

/** @internal */
export function toLogPage(p: StoredLogPage): LogPage {
  return {
    lines: p.lines.map((l) => ({ ...l, level: l.level as LogLevel })),
    nextCursor: encodeLogCursor(p.next),
    hasMore: p.more,
    total: p.total,
    dropped: p.dropped,
    attempts: p.attempts,
  };
}

/** Reads one page of a task's log (task `_id`). @internal */
export async function readTaskLogs(core: Core, taskId: string, q?: LogsQuery): Promise<LogPage> {
  const v = validateLogsQuery(q);
  return toLogPage(await core.store.readLogs(new ObjectId(taskId), { ...v, maxLines: core.opts.logMaxLines }));
}
