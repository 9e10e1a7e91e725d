/**
 * The changes feed (JSON pages) and its Server-Sent Events stream. See lib/changes.ts for the
 * ordering guarantees.
 * @internal
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { changes, decodeChangeCursor, type ChangesQuery } from '../../changes';
import { NotFoundError } from '../../errors';
import type { FeedWhere } from '../feed-hub';
import { principalOf, requireContainer, type HttpContext } from '../context';
import * as S from '../schemas';
import { acquireStream, openStream } from '../sse';

type Q = { since?: string; limit?: number };


function scopeOf(
  request: FastifyRequest,
  container: string | undefined,
): Pick<ChangesQuery, 'container' | 'prefixes'> {
  if (container !== undefined) {
    requireContainer(request, container);
    return { container };
  }
  return { prefixes: [principalOf(request).prefix] };
}

async function stream(
  ctx: HttpContext,
  request: FastifyRequest,
  reply: FastifyReply,
  where: FeedWhere,
  since: string,
): Promise<void> {
  // Validate before switching to a stream, so errors are still plain JSON responses.
  decodeChangeCursor(since);
  const release = acquireStream(ctx, request, reply);
  try {
    if (where.container !== undefined && !(await ctx.client.summary(where.container))) {
      throw new NotFoundError(`no container named ${JSON.stringify(where.container)}`, {
        container: where.container,
      });
    }
  } catch (err) {
    release();
    throw err;
  }
  const res = openStream(request, reply, release);
  if (!res) return;
  // One poller per scope feeds every stream (lib/http/feed-hub.ts); it ends the stream on close().
  await ctx.feed.serve(res, where, since, release);
}

function lastEventId(request: FastifyRequest<{ Querystring: Q }>): string {
  const h = request.headers['last-event-id'];
  if (typeof h === 'string' && h !== '') return h;
  return request.query.since ?? '';
}

export function registerChangesRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const tags = ['changes'];
  const page = (request: FastifyRequest<{ Querystring: Q }>, container?: string) =>
    changes(ctx.client, {
      ...scopeOf(request, container),
      since: request.query.since,
      limit: request.query.limit,
      horizonMs: ctx.horizonMs,
    });

  app.get<{ Querystring: Q }>(
    '/api/v1/changes',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Changes of every visible container and task',
        querystring: S.changesQuery,
        response: { 200: S.changesAnswer, ...S.authErrors() },
      },
    },
    async (request) => page(request),
  );
  app.get<{ Params: { name: string }; Querystring: Q }>(
    '/api/v1/containers/:name/changes',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Changes of one container and its tasks',
        params: S.params('name'),
        querystring: S.changesQuery,
        response: { 200: S.changesAnswer, ...S.authErrors(403, 404) },
      },
    },
    async (request) => page(request, request.params.name),
  );
  app.get<{ Querystring: Q }>(
    '/api/v1/events',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'SSE stream of the global changes feed',
        querystring: S.changesQuery,
        response: { 200: S.eventStream, ...S.authErrors(429) },
      },
    },
    async (request, reply) => stream(ctx, request, reply, scopeOf(request, undefined), lastEventId(request)),
  );
  app.get<{ Params: { name: string }; Querystring: Q }>(
    '/api/v1/containers/:name/events',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'SSE stream of one container',
        params: S.params('name'),
        querystring: S.changesQuery,
        response: { 200: S.eventStream, ...S.authErrors(403, 404, 429) },
      },
    },
    async (request, reply) =>
      stream(ctx, request, reply, scopeOf(request, request.params.name), lastEventId(request)),
  );
}
