/**
 * The error hierarchy. Every error the library throws on purpose is a {@link PtsError} with a
 * stable `code` that callers (and the HTTP API) can switch on.
 */

export const ERROR_CODES = Object.freeze({
  VALIDATION: 'PTS_VALIDATION',
  NOT_FOUND: 'PTS_NOT_FOUND',
  DUPLICATE: 'PTS_DUPLICATE',
  INVALID_TRANSITION: 'PTS_INVALID_TRANSITION',
  LEASE_LOST: 'PTS_LEASE_LOST',
  TASK_TIMEOUT: 'PTS_TASK_TIMEOUT',
  TASK_STALLED: 'PTS_TASK_STALLED',
  INPUTS_TOO_LARGE: 'PTS_INPUTS_TOO_LARGE',
  DATABASE: 'PTS_DATABASE',
} as const);
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/** Base class of every error thrown by persistent-task-status. */
export class PtsError extends Error {
  readonly code: ErrorCode;
  /** Extra machine-readable detail (field path, current state, …). */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }

  toJSON(): { name: string; code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/** Input was rejected before anything was written. `details.path` names the offending field. */
export class ValidationError extends PtsError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ERROR_CODES.VALIDATION, message, details);
  }
}

/** The named container or task does not exist. */
export class NotFoundError extends PtsError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ERROR_CODES.NOT_FOUND, message, details);
  }
}

/** A task with that name already exists in the container (with different definition). */
export class DuplicateError extends PtsError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ERROR_CODES.DUPLICATE, message, details);
  }
}

/** The task is not in a state that allows this transition. `details.state` is its current state. */
export class InvalidTransitionError extends PtsError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ERROR_CODES.INVALID_TRANSITION, message, details);
  }
}

/**
 * The caller no longer holds the task's lease (it expired and was recovered or taken over by
 * another worker). Nothing was written; the caller must stop working on the task.
 */
export class LeaseLostError extends PtsError {
  constructor(message: string, details: Record<string, unknown> = {}, code: ErrorCode = ERROR_CODES.LEASE_LOST) {
    super(code, message, details);
  }
}

/**
 * The attempt ran past its `timeoutMs` (code `PTS_TASK_TIMEOUT`): the lease is over. It is the
 * abort reason of the handler's `ctx.signal`, and what a heartbeat, succeed or fail after the
 * deadline rejects with (HTTP 409). The failure is recorded with `kind: 'timeout'`, code `TASK_TIMEOUT`.
 */
export class TaskTimeoutError extends LeaseLostError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message, details, ERROR_CODES.TASK_TIMEOUT);
  }
}

/**
 * The attempt reported no progress, status or checkpoint for `stallMs` (code `PTS_TASK_STALLED`):
 * the lease is over. Like {@link TaskTimeoutError}; the failure has `kind: 'stalled'`, code `TASK_STALLED`.
 */
export class TaskStalledError extends LeaseLostError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message, details, ERROR_CODES.TASK_STALLED);
  }
}

/**
 * A claimed task's inputs (its dependencies' results, `ctx.inputs`) are larger than the
 * client's `maxInputsBytes` (BSON bytes). The task has been failed for good with a failure of
 * code `PTS_INPUTS_TOO_LARGE` (no retry: the same results would not fit again), so no lease is
 * left held. `details`: `container`, `task`, `bytes` (measured so far), `limit`, `dependency`
 * (the one that crossed the limit).
 */
export class InputsTooLargeError extends PtsError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(ERROR_CODES.INPUTS_TOO_LARGE, message, details);
  }
}

/**
 * The database could not be reached, or refused the operation for a reason outside our rules.
 * Every driver error leaves the library as one of these (the driver's error is the `cause`).
 */
export class DatabaseError extends PtsError {
  /**
   * True when the database is unreachable right now (network, server selection, pool reset,
   * primary step-down, mongoose's buffering timeout): the same call may succeed later. The runner
   * retries these, the HTTP API answers 503, the CLI exits with code 3.
   */
  readonly transient: boolean;

  constructor(message: string, details: Record<string, unknown> = {}, cause?: unknown, transient = false) {
    super(ERROR_CODES.DATABASE, message, { ...details, transient }, { cause });
    this.transient = transient;
  }
}

/** True for a {@link DatabaseError} that says the database is unreachable right now (retry later). */
export function isTransient(err: unknown): boolean {
  return err instanceof DatabaseError && err.transient;
}
