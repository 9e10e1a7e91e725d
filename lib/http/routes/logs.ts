/**
 * Step logs over HTTP: a worker appends lines under its lease token (checked when the request
 * arrives: 409 once the lease is lost), readers page through a task's log by cursor, and an SSE
 * stream follows it (it polls the log by cursor every `pollMs`; one stream counts against the
 * token's `sseMaxStreamsPerToken` like the changes streams).
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../errors';
import { toLogLine, type LogLevel, type LogPage, type LogsQuery } from '../../logs';
import type { Task } from '../../task';
import { requireContainer, type HttpContext } from '../context';
import * as S from '../schemas';
import { containerOf } from './containers';
import { acquireStream, openStream } from '../sse';
import { sleep } from '../../sleep';

type TaskParams = { name: string; task: string };
type Q = { attempt?: number; cursor?: string; limit?: number };

async function taskOf(ctx: HttpContext, request: FastifyRequest, p: TaskParams): Promise<Task> {
  const c = await containerOf(ctx, request, p.name);
  const t = await c.getTask(p.task);
  if (!t) throw new NotFoundError(`no task named ${JSON.stringify(p.task)}`, { task: p.task });
  return t;
}

function queryOf(q: Q, cursor?: string): LogsQuery {
  return { attempt: q.attempt, cursor: cursor ?? q.cursor, limit: q.limit };
}

export function registerLogRoutes(app: FastifyInstance, ctx: HttpContext): void {
  app.post<{ Params: TaskParams; Body: { token: number; lines: Array<{ level: LogLevel; message: string; fields?: Record<string, unknown> }> } }>(
    '/api/v1/containers/:name/tasks/:task/log',
    {
      config: { scope: 'worker' },
      schema: {
        tags: ['worker'],
        summary: 'Append step-log lines of the held task (one batch; refused once the lease is lost)',
        params: S.params('name', 'task'),
        body: S.logBody,
        response: { 200: S.logAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      requireContainer(request, request.params.name);
      const lease = await ctx.client.lease(request.params.name, request.params.task, request.body.token);
      // Validate every line before keeping any: a bad one rejects the request with nothing written.
      const now = new Date();
      for (const l of request.body.lines) toLogLine(l.level, l.message, l.fields, now);
      for (const l of request.body.lines) lease.log(l.level, l.message, l.fields);
      try {
        await lease.flushLogs();
      } finally {
        // A failed write is not retried in the background: the worker retries the request.
        lease.logs?.abandon();
      }
      return { accepted: request.body.lines.length };
    },
  );

  app.get<{ Params: TaskParams; Querystring: Q }>(
    '/api/v1/containers/:name/tasks/:task/logs',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['containers'],
        summary: 'A page of the task’s step logs (all attempts or one), oldest first',
        params: S.params('name', 'task'),
        querystring: S.logsQuery,
        response: { 200: S.logPage, ...S.authErrors(403, 404) },
      },
    },
    async (request) => (await taskOf(ctx, request, request.params)).logs(queryOf(request.query)),
  );

  app.get<{ Params: TaskParams; Querystring: Q }>(
    '/api/v1/containers/:name/tasks/:task/logs/stream',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['containers'],
        summary: 'SSE stream following the task’s step logs from `cursor` (or `Last-Event-ID`)',
        params: S.params('name', 'task'),
        querystring: S.logsQuery,
        response: { 200: S.logStream, ...S.authErrors(403, 404, 429) },
      },
    },
    async (request, reply) => {
      const task = await taskOf(ctx, request, request.params);
      const h = request.headers['last-event-id'];
      let cursor = typeof h === 'string' && h !== '' ? h : request.query.cursor;
      // The first page is read before switching to a stream: a bad cursor is still a JSON 400.
      let page: LogPage = await task.logs(queryOf(request.query, cursor));
      const release = acquireStream(ctx, request, reply);
      const res = openStream(request, reply, release);
      if (!res) return;
      const stop = new AbortController();
      const end = (): void => stop.abort();
      res.on('close', end);
      ctx.shutdown.addEventListener('abort', end);
      let idle = 0;
      try {
        while (!stop.signal.aborted) {
          if (page.lines.length) {
            res.write(`id: ${page.nextCursor}\nevent: logs\ndata: ${JSON.stringify(page)}\n\n`);
            idle = 0;
          } else if (++idle * ctx.pollMs >= 15_000) {
            res.write(': ping\n\n');
            idle = 0;
          }
          cursor = page.nextCursor;
          if (!page.hasMore) await sleep(ctx.pollMs, stop.signal);
          if (stop.signal.aborted) break;
          try {
            page = await task.logs(queryOf(request.query, cursor));
          } catch (err) {
            res.write(`event: error\ndata: ${JSON.stringify({ message: (err as Error).message })}\n\n`);
            page = { ...page, lines: [], hasMore: false };
          }
        }
      } finally {
        res.off('close', end);
        ctx.shutdown.removeEventListener('abort', end);
        release();
        res.end();
      }
    },
  );
}
