/**
 * The JSON body parser. Fastify's own answers "Body is not valid JSON" to valid JSON that holds
 * a `__proto__` key and silently turns invalid UTF-8 into U+FFFD; this one reads the raw bytes
 * and says what it refuses: bytes that are not UTF-8, text that is not JSON, and the keys that
 * could poison a prototype (`__proto__`, `constructor.prototype`), named with their path.
 * @internal
 */
import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../errors';
import { HttpError, HTTP_ERROR_CODES } from './errors';

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Replaces fastify's `application/json` parser with {@link parseJsonBody}. */
export function registerJsonParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

/** Decodes strictly as UTF-8, parses, and refuses prototype-poisoning keys. */
export function parseJsonBody(raw: Buffer): unknown {
  if (raw.length === 0) {
    throw new HttpError(
      400,
      HTTP_ERROR_CODES.BAD_REQUEST,
      "the body is empty but content-type is 'application/json'",
    );
  }
  let text: string;
  try {
    text = UTF8.decode(raw);
  } catch {
    throw new HttpError(
      400,
      HTTP_ERROR_CODES.BAD_REQUEST,
      `the body is not valid UTF-8 (at byte ${firstInvalidByte(raw)})`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HttpError(
      400,
      HTTP_ERROR_CODES.BAD_REQUEST,
      `the body is not valid JSON: ${(err as Error).message}`,
    );
  }
  refusePoisonKeys(value);
  return value;
}

/** Walks the parsed body (iteratively: nesting depth is the client's choice) for `__proto__` and `constructor.prototype`. */
function refusePoisonKeys(root: unknown): void {
  const stack: Array<[unknown, string]> = [[root, 'body']];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], `${path}[${i}]`]);
      continue;
    }
    const obj = v as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      const child = obj[key];
      if (key === '__proto__') throw poison('__proto__', path);
      if (
        key === 'constructor' &&
        child !== null &&
        typeof child === 'object' &&
        Object.hasOwn(child, 'prototype')
      ) {
        throw poison('constructor.prototype', path);
      }
      stack.push([child, `${path}.${key}`]);
    }
  }
}

function poison(key: string, path: string): ValidationError {
  return new ValidationError(`key ${key} is not allowed at ${path}`, { path, key });
}

/** The offset of the first byte that does not start or continue a valid UTF-8 sequence. */
function firstInvalidByte(raw: Buffer): number {
  let lo = 0;
  let hi = raw.length;
  // the longest valid prefix, by bisection (decode is strict, so a prefix that decodes is valid
  // up to a possibly cut last sequence; good enough to point at the spot)
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(raw.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}
