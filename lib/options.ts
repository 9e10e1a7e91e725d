/**
 * Client options and their resolution. Defaults are applied once, in {@link resolveClientOptions};
 * nothing downstream re-checks them.
 */
import type { Connection } from 'mongoose';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Clock } from './clock';
import { systemClock } from './clock';
import { ValidationError } from './errors';
import { validateName, validateNonNegativeInt, validatePositiveNumber } from './validation';

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
  /** How often the background sweep recovers expired leases (0 disables the timer). @defaultValue 0 */
  sweepIntervalMs?: number;
  /** @defaultValue `{ w: 1, j: true }` */
  writeConcern?: WriteConcernOptions;
  /** Time source; inject a {@link ManualClock} in tests. @defaultValue the system clock */
  clock?: Clock;
  /** Create the collections' indexes on first use. @defaultValue true */
  autoIndex?: boolean;
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
  sweepIntervalMs: number;
  writeConcern: { w: number | 'majority'; j: boolean; wtimeoutMS?: number };
  clock: Clock;
  autoIndex: boolean;
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
    sweepIntervalMs: opts.sweepIntervalMs === undefined ? 0 : validateNonNegativeInt(opts.sweepIntervalMs, 'sweepIntervalMs'),
    writeConcern: { w, j: wc.j ?? true, ...(wc.wtimeoutMS === undefined ? {} : { wtimeoutMS: wc.wtimeoutMS }) },
    clock: opts.clock ?? systemClock,
    autoIndex: opts.autoIndex ?? true,
  };
}
