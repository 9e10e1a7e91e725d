/**
 * Client options and their resolution. Defaults are applied once, in {@link resolveClientOptions};
 * nothing downstream re-checks them.
 */
import type { Connection } from 'mongoose';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Clock } from './clock';
import { ManualClock, systemClock } from './clock';
import { ValidationError } from './errors';
import { validateDeadlineMs, validateName, validateNonNegativeInt, validatePositiveNumber } from './validation';

/** Write concern used for every write. */
export interface WriteConcernOptions {
  /** @defaultValue 1 */
  w?: number | 'majority';
  /** @defaultValue true */
  j?: boolean;
  /** @defaultValue undefined (no timeout) */
  wtimeoutMS?: number;
}

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** An existing mongoose connection to use (it is not closed by `client.close()`). */
  connection?: Connection;
  /** A MongoDB URI: the client opens (and owns) its own connection. */
  uri?: string;
  /** Prefix of the collection names. @defaultValue 'pts_' */
  collectionPrefix?: string;
  /** Worker id used in leases and failure records. @defaultValue `${hostname}:${pid}:${random}` */
  workerId?: string;
  /** Lease duration of a claimed task. @defaultValue 30_000 */
  leaseMs?: number;
  /** How often a running task's lease is renewed. @defaultValue leaseMs / 3 */
  heartbeatMs?: number;
  /** Minimum time between two progress writes of one task (the last value is always written). @defaultValue 1_000 */
  progressIntervalMs?: number;
  /** How many failures each task keeps in its history. @defaultValue 20 */
  failureHistoryLimit?: number;
  /**
   * Largest a claimed task's inputs (`ctx.inputs`, `lease.inputs`: its dependencies' results)
   * may be, in BSON bytes of the object `{ [dependency]: result }` — an integer from 1 KiB to
   * 256 MiB. A task whose inputs are larger is failed for good with code `PTS_INPUTS_TOO_LARGE`
   * (see {@link InputsTooLargeError}). The default is the MongoDB document limit, so inputs always
   * fit in one BSON document and one HTTP claim reply.
   * @defaultValue 16_777_216 (16 MiB)
   */
  maxInputsBytes?: number;
  /** How often the background sweep recovers expired leases (0 disables the timer). @defaultValue 0 */
  sweepIntervalMs?: number;
  /** @defaultValue `{ w: 1, j: true }` */
  writeConcern?: WriteConcernOptions;
  /** Time source; inject a {@link ManualClock} in tests. @defaultValue the system clock */
  clock?: Clock;
  /**
   * Compute every time (lease expiry, deadlines, retry delays, stored times) on the database
   * server's clock: `clock` plus an offset measured with `hello` before the first operation and
   * re-measured every `clockSyncIntervalMs` and on reconnect (see "Time" in docs/api.md). Off:
   * `clock` is used as is, so processes must keep their clocks in sync themselves.
   * @defaultValue true, except with a {@link ManualClock} (a test's time is used as is)
   */
  serverClock?: boolean;
  /** How often the server clock offset is re-measured (0: only before the first operation and on reconnect). @defaultValue 60_000 */
  clockSyncIntervalMs?: number;
  /** Create the collections' indexes on first use. @defaultValue true */
  autoIndex?: boolean;
  /** `timeoutMs` of tasks whose spec and container set none (ms; `null`: no limit). @defaultValue null */
  taskTimeoutMs?: number | null;
  /** `stallMs` of tasks whose spec and container set none (ms; `null`: no limit). @defaultValue null */
  taskStallMs?: number | null;
  /**
   * Step logs (`ctx.log()`, `lease.log()`): how long lines wait in memory before they are written
   * in one batch (sooner once `logMaxLines` are waiting). A crash loses at most this much. @defaultValue 1_000
   */
  logFlushMs?: number;
  /**
   * Step logs: lines kept per task (all attempts; older ones are trimmed, and counted as dropped).
   * Also the most lines held in memory per attempt. @defaultValue 1_000
   */
  logMaxLines?: number;
}

/** @internal */
export interface ResolvedClientOptions {
  connection: Connection | null;
  uri: string | null;
  collectionPrefix: string;
  workerId: string;
  leaseMs: number;
  heartbeatMs: number;
  progressIntervalMs: number;
  failureHistoryLimit: number;
  maxInputsBytes: number;
  sweepIntervalMs: number;
  writeConcern: { w: number | 'majority'; j: boolean; wtimeoutMS?: number };
  clock: Clock;
  serverClock: boolean;
  clockSyncIntervalMs: number;
  autoIndex: boolean;
  taskTimeoutMs: number | null;
  taskStallMs: number | null;
  logFlushMs: number;
  logMaxLines: number;
}

function bool(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw new ValidationError(`${path} must be a boolean`, { path });
  return value;
}

/** The default of {@link ClientOptions.maxInputsBytes}: 16 MiB, one BSON document. */
export const DEFAULT_MAX_INPUTS_BYTES = 16 * 1024 * 1024;

function validateMaxInputsBytes(v: unknown): number {
  const n = validateNonNegativeInt(v, 'maxInputsBytes', 256 * 1024 * 1024);
  if (n < 1024) throw new ValidationError('maxInputsBytes must be at least 1024', { path: 'maxInputsBytes' });
  return n;
}

export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

export function resolveClientOptions(opts: ClientOptions = {}): ResolvedClientOptions {
  if (opts.connection && opts.uri) throw new ValidationError('give either connection or uri, not both', { path: 'uri' });
  const prefix = opts.collectionPrefix ?? 'pts_';
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,40}$/.test(prefix)) {
    throw new ValidationError('collectionPrefix must be letters, digits and underscores', { path: 'collectionPrefix' });
  }
  const leaseMs = opts.leaseMs === undefined ? 30_000 : validatePositiveNumber(opts.leaseMs, 'leaseMs', 7 * 86_400_000);
  const heartbeatMs =
    opts.heartbeatMs === undefined ? Math.max(1, Math.floor(leaseMs / 3)) : validatePositiveNumber(opts.heartbeatMs, 'heartbeatMs', leaseMs);
  const wc = opts.writeConcern ?? {};
  const w = wc.w ?? 1;
  if (w !== 'majority' && (typeof w !== 'number' || !Number.isInteger(w) || w < 0)) {
    throw new ValidationError("writeConcern.w must be a non-negative integer or 'majority'", { path: 'writeConcern.w' });
  }
  return {
    connection: opts.connection ?? null,
    uri: opts.uri ?? null,
    collectionPrefix: prefix,
    workerId: opts.workerId === undefined ? defaultWorkerId() : validateName(opts.workerId, 'workerId'),
    leaseMs,
    heartbeatMs,
    progressIntervalMs: opts.progressIntervalMs === undefined ? 1_000 : validateNonNegativeInt(opts.progressIntervalMs, 'progressIntervalMs'),
    failureHistoryLimit:
      opts.failureHistoryLimit === undefined ? 20 : Math.max(1, validateNonNegativeInt(opts.failureHistoryLimit, 'failureHistoryLimit', 1000)),
    maxInputsBytes: opts.maxInputsBytes === undefined ? DEFAULT_MAX_INPUTS_BYTES : validateMaxInputsBytes(opts.maxInputsBytes),
    sweepIntervalMs: opts.sweepIntervalMs === undefined ? 0 : validateNonNegativeInt(opts.sweepIntervalMs, 'sweepIntervalMs'),
    writeConcern: { w, j: wc.j ?? true, ...(wc.wtimeoutMS === undefined ? {} : { wtimeoutMS: wc.wtimeoutMS }) },
    clock: opts.clock ?? systemClock,
    serverClock: opts.serverClock === undefined ? !(opts.clock instanceof ManualClock) : bool(opts.serverClock, 'serverClock'),
    clockSyncIntervalMs: opts.clockSyncIntervalMs === undefined ? 60_000 : validateNonNegativeInt(opts.clockSyncIntervalMs, 'clockSyncIntervalMs'),
    autoIndex: opts.autoIndex ?? true,
    taskTimeoutMs: opts.taskTimeoutMs === undefined || opts.taskTimeoutMs === null ? null : validateDeadlineMs(opts.taskTimeoutMs, 'taskTimeoutMs'),
    taskStallMs: opts.taskStallMs === undefined || opts.taskStallMs === null ? null : validateDeadlineMs(opts.taskStallMs, 'taskStallMs'),
    logFlushMs: opts.logFlushMs === undefined ? 1_000 : Math.max(1, validateNonNegativeInt(opts.logFlushMs, 'logFlushMs', 3_600_000)),
    logMaxLines: opts.logMaxLines === undefined ? 1_000 : Math.max(1, validateNonNegativeInt(opts.logMaxLines, 'logMaxLines', 100_000)),
  };
}
