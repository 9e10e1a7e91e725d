/**
 * The worker protocol: long-poll claim, then heartbeat / succeed / fail carrying the lease token.
 * Stateless on the server: each call re-attaches to the lease with `client.lease(...)`, which
 * rejects a stale token with PTS_LEASE_LOST (409) — PTS_TASK_TIMEOUT / PTS_TASK_STALLED when the
 * attempt's deadline ended it (a heartbeat past the deadline is refused by the database).
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TaskLease } from '../../lease';
import type { TaskSpec } from '../../types';
import { HttpError, HTTP_ERROR_CODES } from '../errors';
import { principalOf, requireContainer, type HttpContext } from '../context';
import * as S from '../schemas';
import { getWorkerConfig } from '../worker-config';
import { sleep } from '../../sleep';

type TaskParams = { name: string; task: string };
interface ClaimBody {
  container?: string;
  names?: string[];
  key?: string;
  owner: string;
  leaseMs?: number;
  waitMs?: number;
  includeInputs?: boolean;
}
interface Progress {
  percentageComplete?: number;
  statusText?: string | null;
  processingData?: unknown;
}

function progressOf(b: Progress): Progress | undefined {
  const p: Progress = {};
  if (b.percentageComplete !== undefined) p.percentageComplete = b.percentageComplete;
  if (b.statusText !== undefined) p.statusText = b.statusText;
  if (b.processingData !== undefined) p.processingData = b.processingData;
  return Object.keys(p).length ? p : undefined;
}

/** Releases a lease whose claim reply could not be delivered (its holder never learned of it). */
async function releaseUnseen(lease: TaskLease, request: FastifyRequest): Promise<void> {
  try {
    await lease.release();
    request.log.info({ container: lease.task.container, task: lease.task.name }, 'claim reply not delivered: task released');
  } catch (err) {
    // Already lost (expired and reclaimed) or the database is down: the lease expires as usual.
    request.log.warn({ err, task: lease.task.name }, 'claim reply not delivered; release failed');
  }
}

export function registerWorkerRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const { client } = ctx;
  const tags = ['worker'];

  app.post<{ Body: ClaimBody }>(
    '/api/v1/claim',
    {
      config: { scope: 'worker' },
      schema: {
        tags,
        summary: 'Claim the next ready task (long-poll up to waitMs; 204 when none)',
        body: S.claimBody,
        response: { 200: S.claimAnswer, 204: S.noContent, ...S.authErrors(403, 413, 415, 422) },
      },
    },
    async (request, reply) => {
      const b = request.body;
      const p = principalOf(request);
      if (b.container !== undefined) requireContainer(request, b.container);
      else if (p.prefix !== '')
        throw new HttpError(
          403,
          HTTP_ERROR_CODES.FORBIDDEN,
          'this token is restricted to a container prefix: name the container',
        );
      // Ends the wait when the client goes away or the server shuts down.
      const stop = new AbortController();
      const onClose = (): void => {
        if (!reply.raw.writableFinished) stop.abort();
      };
      reply.raw.on('close', onClose);
      if (request.raw.socket?.destroyed) stop.abort();
      const onShutdown = (): void => stop.abort();
      ctx.shutdown.addEventListener('abort', onShutdown);
      try {
        const deadline = Date.now() + (b.waitMs ?? 0);
        for (;;) {
          const lease: TaskLease | null = await client.claimNext(
            { container: b.container, names: b.names, key: b.key },
            { owner: b.owner, leaseMs: b.leaseMs, includeInputs: b.includeInputs },
          );
          if (lease) {
            // The client went away while the claim ran: nobody will ever see this lease, so give
            // the task back now instead of stranding it until the lease expires.
            const config = await getWorkerConfig(client, lease.task.container).catch(() => null);
            if ((stop.signal.aborted && !ctx.shutdown.aborted) || reply.raw.destroyed) {
              await releaseUnseen(lease, request);
              return reply.code(204).send();
            }
            // A reply that is never fully written (the socket closed first) releases it too.
            // One that reached the socket but not the worker is recovered when the lease expires.
            reply.raw.once('close', () => {
              if (!reply.raw.writableFinished) void releaseUnseen(lease, request);
            });
            return {
              task: lease.task,
              token: lease.token,
              leaseExpiresAt: lease.task.lease?.expiresAt ?? null,
              deadline: lease.deadline,
              config,
              ...(b.includeInputs ? { inputs: lease.inputs ?? {} } : {}),
            };
          }
          const left = deadline - Date.now();
          if (left <= 0 || stop.signal.aborted) return reply.code(204).send();
          await sleep(Math.min(ctx.pollMs, left), stop.signal);
          if (stop.signal.aborted) return reply.code(204).send();
        }
      } finally {
        reply.raw.off('close', onClose);
        ctx.shutdown.removeEventListener('abort', onShutdown);
      }
    },
  );

  const attach = async (
    params: TaskParams,
    token: number,
    request: Parameters<typeof requireContainer>[0],
  ): Promise<TaskLease> => {
    requireContainer(request, params.name);
    return client.lease(params.name, params.task, token);
  };

  app.post<{ Params: TaskParams; Body: Progress & { token: number; leaseMs?: number } }>(
    '/api/v1/containers/:name/tasks/:task/heartbeat',
    {
      config: { scope: 'worker' },
      schema: {
        tags,
        summary: 'Renew the lease and report progress',
        params: S.params('name', 'task'),
        body: S.heartbeatBody,
        response: { 200: S.heartbeatAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const lease = await attach(request.params, request.body.token, request);
      const leaseExpiresAt = await lease.heartbeat(progressOf(request.body), request.body.leaseMs);
      return { leaseExpiresAt, deadline: lease.deadline };
    },
  );

  app.post<{ Params: TaskParams; Body: Progress & { token: number; result?: unknown } }>(
    '/api/v1/containers/:name/tasks/:task/succeed',
    {
      config: { scope: 'worker' },
      schema: {
        tags,
        summary: 'Mark the held task succeeded',
        params: S.params('name', 'task'),
        body: S.succeedBody,
        response: { 200: S.oneTaskAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const lease = await attach(request.params, request.body.token, request);
      return { task: await lease.succeed(request.body.result ?? null, progressOf(request.body)) };
    },
  );

  app.post<{ Params: TaskParams; Body: { token: number; tasks: TaskSpec[] } }>(
    '/api/v1/containers/:name/tasks/:task/spawn',
    {
      config: { scope: 'worker' },
      schema: {
        tags,
        summary: 'Add child tasks under the held task (dynamic fan-out; idempotent by name, fenced by the token)',
        params: S.params('name', 'task'),
        body: S.spawnBody,
        response: { 200: S.spawnAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const lease = await attach(request.params, request.body.token, request);
      return lease.spawn(request.body.tasks);
    },
  );

  app.post<{
    Params: TaskParams;
    Body: Progress & {
      token: number;
      error: { message: string; stack?: string; code?: string };
      retryable?: boolean;
    };
  }>(
    '/api/v1/containers/:name/tasks/:task/fail',
    {
      config: { scope: 'worker' },
      schema: {
        tags,
        summary: 'Record a failed attempt of the held task',
        params: S.params('name', 'task'),
        body: S.failBody,
        response: { 200: S.oneTaskAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const lease = await attach(request.params, request.body.token, request);
      return {
        task: await lease.fail(request.body.error, {
          retryable: request.body.retryable,
          progress: progressOf(request.body),
        }),
      };
    },
  );
}
