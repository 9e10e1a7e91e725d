/**
 * Liveness, readiness (pings the database with a short timeout) and Prometheus metrics.
 * @internal
 */
import type { FastifyInstance } from 'fastify';
import type { HttpContext } from '../context';
import * as S from '../schemas';

const READY_TIMEOUT_MS = 2_000;

export function registerHealthRoutes(
  app: FastifyInstance,
  ctx: HttpContext,
  opts: { metricsAuth: boolean },
): void {
  const tags = ['health'];
  app.get(
    '/healthz',
    {
      config: { scope: 'none' },
      schema: {
        tags,
        summary: 'Liveness',
        security: [],
        response: { 200: S.healthAnswer, ...S.errors(503) },
      },
    },
    async () => ({
      ok: true,
    }),
  );

  app.get(
    '/readyz',
    {
      config: { scope: 'none' },
      schema: {
        tags,
        summary: 'Readiness: the database answers a ping',
        security: [],
        response: { 200: S.readyAnswer, 503: S.notReadyAnswer },
      },
    },
    async (_request, reply) => {
      try {
        await ctx.client.ping(READY_TIMEOUT_MS);
        // Measured once if no operation did yet (then as the client re-measures it).
        return { ok: true, clock: ctx.client.clockOffset() ?? (await ctx.client.syncClock()) };
      } catch (err) {
        return reply.code(503).send({
          ok: false,
          error: { code: 'PTS_UNAVAILABLE', message: `database unavailable: ${(err as Error).message}` },
        });
      }
    },
  );

  app.get(
    '/metrics',
    {
      config: { scope: opts.metricsAuth ? 'read' : 'none' },
      schema: {
        tags,
        summary: 'Prometheus metrics',
        ...(opts.metricsAuth ? {} : { security: [] }),
        response: { 200: S.metricsAnswer, ...(opts.metricsAuth ? S.authErrors() : S.errors(503)) },
      },
    },
    async (_request, reply) => {
      const text = await ctx.metrics.text();
      return reply.type(ctx.metrics.registry.contentType).send(text);
    },
  );
}
