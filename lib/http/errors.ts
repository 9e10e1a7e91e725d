/**
 * Mapping of errors to HTTP responses `{ error: { code, message } }`. Library errors map by
 * their stable `code`; a transient `DatabaseError` (the flag set once, at the store boundary) is
 * 503; one the server refused because of what the request holds (a document over BSON's 16 MiB,
 * a value the server cannot store) is 413 or 400; any other database error 500.
 * @internal
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { DatabaseError, isTransient, PtsError } from '../errors';
import { isTransientDriverError } from '../store/db-errors';

/** Error codes of the HTTP layer, on top of the library's `PTS_*` codes. */
export const HTTP_ERROR_CODES = Object.freeze({
  UNAUTHORIZED: 'PTS_UNAUTHORIZED',
  FORBIDDEN: 'PTS_FORBIDDEN',
  PAYLOAD_TOO_LARGE: 'PTS_PAYLOAD_TOO_LARGE',
  UNAVAILABLE: 'PTS_UNAVAILABLE',
  BAD_REQUEST: 'PTS_BAD_REQUEST',
  INTERNAL: 'PTS_INTERNAL',
} as const);

/** An error the HTTP layer throws on purpose (auth, scope). */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

const PTS_STATUS: Record<string, number> = {
  PTS_VALIDATION: 400,
  PTS_NOT_FOUND: 404,
  PTS_DUPLICATE: 409,
  PTS_INVALID_TRANSITION: 409,
  PTS_LEASE_LOST: 409,
  // The lease ended at its deadline (timeoutMs / stallMs): a lost lease with the reason.
  PTS_TASK_TIMEOUT: 409,
  PTS_TASK_STALLED: 409,
  // A claim whose task's inputs exceed maxInputsBytes: the task was failed for good.
  PTS_INPUTS_TOO_LARGE: 422,
  // A DatabaseError that is not transient: the server refused the operation.
  PTS_DATABASE: 500,
};

/** Server codes for a document over the BSON size limit: BSONObjectTooLarge, and the update forms. */
const TOO_LARGE_CODES = new Set([10334, 17419, 17420]);

/**
 * A database refusal that is the request's fault, not the service's: the document would be
 * larger than the server takes (the server's codes, or the driver refusing to encode it), or
 * the server cannot store a value (FerretDB's "nested arrays are not supported", code 2
 * BadValue). Null for anything else.
 */
function requestRefusal(err: DatabaseError): { status: number; code: string; message: string } | null {
  const cause = err.cause as { name?: unknown; code?: unknown; message?: unknown } | undefined;
  const text = typeof cause?.message === 'string' ? cause.message : '';
  const code = err.details.driverCode;
  const tooLarge =
    (typeof code === 'number' && TOO_LARGE_CODES.has(code)) ||
    /BSONObjectTooLarge|(document|object) is larger than|larger than the maximum|exceeds maximum/i.test(
      text,
    ) ||
    // the driver's encoder runs out of its 16 MiB (+ margin) buffer
    (cause?.name === 'RangeError' && cause.code === 'ERR_OUT_OF_RANGE');
  if (tooLarge) {
    return {
      status: 413,
      code: HTTP_ERROR_CODES.PAYLOAD_TOO_LARGE,
      message:
        'the document would be larger than the database accepts (BSON documents are limited to 16 MiB)',
    };
  }
  if (code === 2 && /nested arrays are not supported/.test(text)) {
    return {
      status: 400,
      code: 'PTS_VALIDATION',
      message: 'the database server cannot store arrays inside arrays (FerretDB)',
    };
  }
  return null;
}

/**
 * A request-schema failure as one message that names the field: ajv reports an unknown field as
 * "must NOT have additional properties" with the field's name only in `params`.
 */
function schemaMessage(fe: FastifyError): string {
  const first = (fe.validation as Array<{ keyword?: string; params?: { additionalProperty?: string }; instancePath?: string }>)[0];
  const extra = first?.keyword === 'additionalProperties' ? first.params?.additionalProperty : undefined;
  if (extra === undefined) return fe.message;
  const hint = extra === 'taskData' ? ' (the input of a task is `data` when adding; records call it `taskData`)' : '';
  return `${fe.message}: unknown field ${JSON.stringify(extra)}${hint}`;
}

export function toHttpError(err: unknown): { status: number; code: string; message: string } {
  // The one answer to "is the database down?" (store/db-errors.ts): a transient DatabaseError,
  // or a driver error from outside the store (a connection the service opened itself).
  if (isTransient(err) || (!(err instanceof PtsError) && isTransientDriverError(err))) {
    return { status: 503, code: HTTP_ERROR_CODES.UNAVAILABLE, message: 'database unavailable' };
  }
  if (err instanceof DatabaseError) {
    return (
      requestRefusal(err) ?? { status: 500, code: err.code, message: 'the database refused the operation' }
    );
  }
  if (err instanceof PtsError) {
    const status = PTS_STATUS[err.code] ?? 500;
    return { status, code: err.code, message: err.message };
  }
  if (err instanceof HttpError) return { status: err.statusCode, code: err.code, message: err.message };
  const fe = err as FastifyError;
  if (fe && Array.isArray(fe.validation)) {
    return { status: 400, code: 'PTS_VALIDATION', message: schemaMessage(fe) };
  }
  if (fe && fe.statusCode === 413)
    return { status: 413, code: HTTP_ERROR_CODES.PAYLOAD_TOO_LARGE, message: fe.message };
  if (fe && typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return { status: fe.statusCode, code: HTTP_ERROR_CODES.BAD_REQUEST, message: fe.message };
  }
  return { status: 500, code: HTTP_ERROR_CODES.INTERNAL, message: 'internal error' };
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const e = toHttpError(err);
  if (e.status >= 500) request.log.error({ err }, 'request failed');
  void reply.code(e.status).send({ error: { code: e.code, message: e.message } });
}
