/**
 * What the route modules share: the client, the auth mode, shutdown signal, and the request's
 * principal (who is calling, with which scope and container prefix).
 * @internal
 */
import type { FastifyRequest } from 'fastify';
import type { Client } from '../client';
import { scopeAllows, type TokenScope, type TokenStore } from '../auth';
import type { Metrics } from '../metrics';
import type { FeedHub } from './feed-hub';
import { HttpError, HTTP_ERROR_CODES } from './errors';

export interface Principal {
  /** Token id, or 'anonymous' when auth is disabled. */
  id: string;
  scope: TokenScope;
  prefix: string;
}

/** Route-level config: the scope a route needs (`none` = public). */
export type RouteScope = TokenScope | 'none';

export interface HttpContext {
  client: Client;
  tokens: TokenStore | null;
  metrics: Metrics;
  /** Aborted when the server starts closing: long-polls and SSE streams end. */
  shutdown: AbortSignal;
  /** Poll interval of long-poll claims and SSE streams. */
  pollMs: number;
  /** SSE heartbeat comment interval. */
  sseHeartbeatMs: number;
  /** Changes-feed safety horizon. */
  horizonMs: number;
  /** The SSE streams' shared pollers (one per feed scope). */
  feed: FeedHub;
  /** Concurrent SSE streams per token (beyond: 429). */
  sseMaxStreamsPerToken: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** {@link RouteScope} the route needs; anything else (or nothing) means `admin` (fail closed). */
    scope?: string;
  }
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new HttpError(401, HTTP_ERROR_CODES.UNAUTHORIZED, 'missing or invalid token');
  return request.principal;
}

/** Throws 403 unless the caller's scope includes `scope`. */
export function requireScope(request: FastifyRequest, scope: TokenScope): Principal {
  const p = principalOf(request);
  if (!scopeAllows(p.scope, scope))
    throw new HttpError(403, HTTP_ERROR_CODES.FORBIDDEN, `this route needs the ${scope} scope`);
  return p;
}

/** Throws 403 unless the caller may access the container `name`. */
export function requireContainer(request: FastifyRequest, name: string): Principal {
  const p = principalOf(request);
  if (!name.startsWith(p.prefix))
    throw new HttpError(403, HTTP_ERROR_CODES.FORBIDDEN, "container is outside this token's prefix");
  return p;
}

/**
 * The name prefix a listing may use for a requested prefix under the caller's restriction, or
 * null when the two cannot overlap (the listing is empty).
 */
export function effectivePrefix(p: Principal, requested: string | undefined): string | null {
  const r = requested ?? '';
  if (r.startsWith(p.prefix)) return r;
  if (p.prefix.startsWith(r)) return p.prefix;
  return null;
}
