/**
 * Schedules: their options, resolved once into a {@link ResolvedSchedule}, and the cron
 * arithmetic (next slot after a time, the slots of a range) in a time zone. Cron expressions and
 * time zones go through `croner` (no dependencies, IANA zones via `Intl`, 5 or 6 fields,
 * daylight-saving transitions handled; docs/schedules.md says why this library and which slots
 * fire around a DST change). Nothing here touches the database.
 */
import { Cron } from 'croner';
import { ValidationError } from './errors';
import { validateName, validateNonNegativeInt } from './validation';

/**
 * What the scheduler does with a slot while an earlier run of the pipeline is still unfinished
 * (Temporal's overlap policies):
 * - `'skip'`: the slot is not run (recorded as skipped, reason `overlap`);
 * - `'bufferOne'`: the slot waits and starts when the running run finishes; a further slot while
 *   one is already waiting is skipped;
 * - `'cancelOther'`: the unfinished runs are cancelled and the slot starts;
 * - `'allowAll'`: the slot starts regardless.
 */
export const OVERLAP_POLICIES = Object.freeze(['skip', 'bufferOne', 'cancelOther', 'allowAll'] as const);
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

/** Options of `client.schedule(pipeline, options)`. */
export interface ScheduleOptions {
  /** Cron expression: 5 fields (minute first) or 6 with leading seconds; croner's `@hourly`-style nicknames too. */
  cron: string;
  /** IANA time zone the expression is read in. @defaultValue 'UTC' */
  timezone?: string;
  /** The schedule's name (one pipeline may have several schedules). @defaultValue the pipeline's name */
  name?: string;
  /** See {@link OverlapPolicy}. @defaultValue 'skip' */
  overlap?: OverlapPolicy;
  /**
   * How late (after its slot, plus jitter) a slot may still be fired, e.g. after every scheduler
   * was down. Later slots are recorded as skipped with reason `missed`. At least 1000.
   * @defaultValue 31_536_000_000 (365 days, Temporal's default)
   */
  catchupWindowMs?: number;
  /** A slot fires up to this much after its time (the same delay in every process, derived from the slot). @defaultValue 0 */
  jitterMs?: number;
  /**
   * Create the schedule paused: it fires nothing, its slots are recorded as skipped with reason
   * `paused`. Applies on creation only (an existing schedule keeps its state: use
   * `pauseSchedule`/`unpauseSchedule`). @defaultValue false
   */
  paused?: boolean;
  /** Pause the schedule when one of its runs fails. @defaultValue false */
  pauseOnFailure?: boolean;
}

/** @internal Options after validation, every default applied. */
export interface ResolvedSchedule {
  name: string;
  pipeline: string;
  cron: string;
  timezone: string;
  overlap: OverlapPolicy;
  catchupWindowMs: number;
  jitterMs: number;
  paused: boolean;
  pauseOnFailure: boolean;
}

export const DEFAULT_CATCHUP_WINDOW_MS = 365 * 86_400_000;
const MAX_MS = 10 * 365 * 86_400_000;

function cronOf(expr: string, timezone: string): Cron {
  return new Cron(expr, { timezone, paused: true });
}

/** Throws ValidationError unless `expr` is a 5- or 6-field cron expression (or a nickname) croner accepts. */
export function validateCron(expr: unknown, path = 'cron'): string {
  if (typeof expr !== 'string' || expr.trim() === '')
    throw new ValidationError('cron must be a non-empty string', { path });
  const e = expr.trim();
  const fields = e.split(/\s+/).length;
  if (!e.startsWith('@') && fields !== 5 && fields !== 6) {
    throw new ValidationError(`cron must have 5 fields (or 6 with leading seconds), got ${fields}`, {
      path,
      cron: e,
    });
  }
  try {
    cronOf(e, 'UTC');
  } catch (err) {
    throw new ValidationError(`invalid cron expression ${JSON.stringify(e)}: ${(err as Error).message}`, {
      path,
      cron: e,
    });
  }
  return e;
}

/** Throws ValidationError unless `tz` is an IANA time zone this runtime knows. */
export function validateTimezone(tz: unknown, path = 'timezone'): string {
  if (typeof tz !== 'string' || tz === '')
    throw new ValidationError('timezone must be a non-empty string', { path });
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new ValidationError(`unknown time zone ${JSON.stringify(tz)}`, { path, timezone: tz });
  }
  return tz;
}

function bool(v: unknown, path: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new ValidationError(`${path} must be a boolean`, { path });
  return v;
}

/** @internal Validates the options of `schedule()` (nothing is written on a ValidationError). */
export function resolveSchedule(pipeline: string, o: ScheduleOptions): ResolvedSchedule {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new ValidationError('schedule options must be an object', { path: 'options' });
  const allowed = new Set([
    'cron',
    'timezone',
    'name',
    'overlap',
    'catchupWindowMs',
    'jitterMs',
    'paused',
    'pauseOnFailure',
  ]);
  for (const k of Object.keys(o))
    if (!allowed.has(k))
      throw new ValidationError(`unknown schedule option ${JSON.stringify(k)}`, { path: k });
  const overlap = o.overlap ?? 'skip';
  if (!OVERLAP_POLICIES.includes(overlap))
    throw new ValidationError(`overlap must be one of ${OVERLAP_POLICIES.join(', ')}`, { path: 'overlap' });
  const catchupWindowMs =
    o.catchupWindowMs === undefined
      ? DEFAULT_CATCHUP_WINDOW_MS
      : validateNonNegativeInt(o.catchupWindowMs, 'catchupWindowMs', MAX_MS);
  if (catchupWindowMs < 1000)
    throw new ValidationError('catchupWindowMs must be at least 1000', { path: 'catchupWindowMs' });
  const timezone = validateTimezone(o.timezone ?? 'UTC');
  const cron = validateCron(o.cron);
  return {
    name: validateName(o.name ?? pipeline, 'name'),
    pipeline: validateName(pipeline, 'pipeline'),
    cron,
    timezone,
    overlap,
    catchupWindowMs,
    jitterMs: o.jitterMs === undefined ? 0 : validateNonNegativeInt(o.jitterMs, 'jitterMs', 86_400_000),
    paused: bool(o.paused, 'paused', false),
    pauseOnFailure: bool(o.pauseOnFailure, 'pauseOnFailure', false),
  };
}

/** The first slot strictly after `after` (null if the expression never fires again). */
export function nextSlot(cron: string, timezone: string, after: Date): Date | null {
  return cronOf(cron, timezone).nextRun(after);
}

/** The slots in `[from, to]` (both inclusive), oldest first, at most `limit`. */
export function slotsBetween(cron: string, timezone: string, from: Date, to: Date, limit: number): Date[] {
  const c = cronOf(cron, timezone);
  const out: Date[] = [];
  let t = c.nextRun(new Date(from.getTime() - 1));
  while (t && t.getTime() <= to.getTime() && out.length < limit) {
    out.push(t);
    t = c.nextRun(t);
  }
  return out;
}

/**
 * The jitter of a slot: a delay in `[0, jitterMs)` derived from the schedule's name and the slot
 * (FNV-1a), so every scheduler process computes the same fire time without coordination.
 */
export function jitterOf(name: string, slot: Date, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  let h = 0x811c9dc5;
  for (const ch of `${name}@${slot.getTime()}`) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % jitterMs;
}
