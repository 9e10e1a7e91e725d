/**
 * Authentication: `Authorization: Bearer <token>` (or `?access_token=` on GET routes, for
 * EventSource and links). Every request is checked against the token store — a revoked token
 * stops working immediately. Scope is checked per route from `config.scope`.
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { HttpError, HTTP_ERROR_CODES } from './errors';
import { TOKEN_SCOPES, type TokenScope } from '../auth';
import { requireScope, type HttpContext, type Principal, type RouteScope } from './context';

const ANONYMOUS: Principal = Object.freeze({ id: 'anonymous', scope: 'admin', prefix: '' });

function tokenOf(request: FastifyRequest): string | null {
  const h = request.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    return m ? m[1] : null;
  }
  if (request.method === 'GET') {
    const q = request.query as Record<string, unknown> | undefined;
    if (q && typeof q.access_token === 'string') return q.access_token;
  }
  return null;
}

export function registerAuth(app: FastifyInstance, ctx: HttpContext): void {
  app.decorateRequest('principal', null);
  // onRequest: before the body is parsed or validated, so an unauthenticated caller learns nothing.
  app.addHook('onRequest', async (request) => {
    if (request.is404) return;
    const configured = request.routeOptions.config?.scope;
    const scope: RouteScope =
      configured === 'none' || (TOKEN_SCOPES as readonly string[]).includes(configured ?? '')
        ? (configured as RouteScope)
        : 'admin';
    if (scope === 'none') return;
    if (!ctx.tokens) {
      request.principal = ANONYMOUS;
      return;
    }
    const token = tokenOf(request);
    if (!token) throw new HttpError(401, HTTP_ERROR_CODES.UNAUTHORIZED, 'missing bearer token');
    const rec = await ctx.tokens.verify(token);
    if (!rec) throw new HttpError(401, HTTP_ERROR_CODES.UNAUTHORIZED, 'invalid or revoked token');
    request.principal = { id: rec.id, scope: rec.scope, prefix: rec.prefix };
    requireScope(request, scope as TokenScope);
  });
}
