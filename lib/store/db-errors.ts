/**
 * "Is the database down?", answered once. Every driver error that leaves the store is wrapped
 * here into a {@link DatabaseError} whose `transient` flag says whether retrying later can
 * succeed (network, server selection, pool reset, primary step-down, mongoose's buffering
 * timeout). The runner (retry), the HTTP layer (503) and the CLI (exit code 3) read that flag.
 * @internal
 */
import { DatabaseError, PtsError } from '../errors';

/** Driver and mongoose error classes that mean "unreachable right now". */
const TRANSIENT_NAMES =
  /^(Mongo(Network|NetworkTimeout|ServerSelection|ServerClosed|PoolCleared|PoolClosed|NotConnected|TopologyClosed|WaitQueueTimeout|OperationTimeout)Error|MongooseServerSelectionError|PoolClosedError)$/;

/** Error labels the driver attaches to errors a retry may cure. */
const TRANSIENT_LABELS = ['RetryableWriteError', 'ResetPool', 'TransientTransactionError', 'RetryableError'];

/**
 * Server error codes of a node that is stepping down, shutting down or unreachable (the codes the
 * driver itself treats as retryable): HostUnreachable, HostNotFound, NetworkTimeout,
 * ShutdownInProgress, PrimarySteppedDown, SocketException, NotWritablePrimary,
 * InterruptedAtShutdown, InterruptedDueToReplStateChange, NotPrimaryNoSecondaryOk,
 * NotPrimaryOrSecondary, ExceededTimeLimit.
 */
const TRANSIENT_CODES = new Set([6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436]);

function labelled(e: { errorLabelSet?: unknown; hasErrorLabel?: unknown }): boolean {
  if (e.errorLabelSet instanceof Set) return TRANSIENT_LABELS.some((l) => (e.errorLabelSet as Set<string>).has(l));
  if (typeof e.hasErrorLabel === 'function') return TRANSIENT_LABELS.some((l) => (e.hasErrorLabel as (l: string) => boolean)(l));
  return false;
}

/** True for a driver (or mongoose) error that says the database is unreachable, not that we did something wrong. */
export function isTransientDriverError(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 3) return false;
  if (err instanceof DatabaseError) return err.transient;
  if (err instanceof PtsError) return false;
  const e = err as { name?: unknown; message?: unknown; code?: unknown; cause?: unknown };
  const name = typeof e.name === 'string' ? e.name : '';
  if (TRANSIENT_NAMES.test(name)) return true;
  // mongoose queues commands while disconnected and gives up after bufferTimeoutMS
  if (name === 'MongooseError' && /buffering timed out/.test(String(e.message))) return true;
  if (labelled(err as object)) return true;
  if (typeof e.code === 'number' && TRANSIENT_CODES.has(e.code) && /^Mongo/.test(name)) return true;
  return isTransientDriverError(e.cause, depth + 1);
}

/** The server's numeric error code, if any (e.g. 11000 for a duplicate key). */
export function driverCode(err: unknown): number | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'number' ? c : undefined;
}

/**
 * `err` as it leaves the store: our own errors unchanged, anything else a {@link DatabaseError}
 * naming the store operation, the driver's error as `cause`.
 */
export function toDatabaseError(err: unknown, op: string): Error {
  if (err instanceof PtsError) return err;
  const transient = isTransientDriverError(err);
  const e = err as { name?: string; message?: string } | null;
  const reason = e?.message || e?.name || String(err);
  const code = driverCode(err);
  return new DatabaseError(
    transient ? `database unavailable (${op}): ${reason}` : `database error (${op}): ${reason}`,
    { op, ...(code === undefined ? {} : { driverCode: code }), driverError: e?.name ?? null },
    err,
    transient,
  );
}
