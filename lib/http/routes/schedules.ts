/**
 * Schedules, pipelines and their runs (docs/schedules.md, docs/http.md#schedules). Thin: each
 * handler checks access, then calls one public client method. A token limited to a name prefix
 * sees only the schedules whose name and pipeline start with it, and the runs of pipelines that
 * start with it; anything else answers 404 (as if it did not exist).
 *
 * `PUT /api/v1/schedules/:pipeline` stores the schedule whether or not the serving process
 * defines the pipeline (a `pts serve` usually defines none): the schedule fires once a scheduler
 * process that defines the pipeline runs (`client.startScheduler()`, `pts scheduler --module`).
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError, ValidationError } from '../../errors';
import type { OverlapPolicy, ScheduleOptions } from '../../schedule';
import type { ScheduleView } from '../../schedule-view';
import { principalOf, type HttpContext } from '../context';
import * as S from '../schemas';

type PipelineParams = { pipeline: string };

async function emptyBody(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

function visible(request: FastifyRequest, ...names: string[]): boolean {
  const { prefix } = principalOf(request);
  return names.every((n) => n.startsWith(prefix));
}

function noSchedule(name: string): NotFoundError {
  return new NotFoundError(`no schedule named ${JSON.stringify(name)}`, { schedule: name });
}

export function registerScheduleRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const { client } = ctx;
  const tags = ['schedules'];

  /** The schedule, or 404 when it does not exist or is outside the token's prefix. */
  const scheduleOf = async (request: FastifyRequest, name: string): Promise<ScheduleView> => {
    if (!visible(request, name)) throw noSchedule(name);
    const s = await client.describeSchedule(name);
    if (!s || !visible(request, s.name, s.pipeline)) throw noSchedule(name);
    return s;
  };
  const pipelineOf = (request: FastifyRequest, pipeline: string): string => {
    if (!visible(request, pipeline))
      throw new NotFoundError(`no pipeline named ${JSON.stringify(pipeline)}`, { pipeline });
    return pipeline;
  };

  app.get(
    '/api/v1/schedules',
    {
      config: { scope: 'read' },
      schema: { tags, summary: 'List schedules', querystring: S.readQuery, response: { 200: S.scheduleList, ...S.authErrors() } },
    },
    async (request) => ({
      items: (await client.describeSchedules()).filter((s) => visible(request, s.name, s.pipeline)),
    }),
  );

  app.get<{ Params: PipelineParams }>(
    '/api/v1/schedules/:pipeline',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'One schedule, with its next fire times and recent skipped slots',
        params: S.params('pipeline'),
        querystring: S.readQuery,
        response: { 200: S.scheduleAnswer('The schedule'), ...S.authErrors(404) },
      },
    },
    async (request) => scheduleOf(request, request.params.pipeline),
  );

  app.put<{ Params: PipelineParams; Body: ScheduleOptions & { pipeline?: string } }>(
    '/api/v1/schedules/:pipeline',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Create or update a schedule (the pipeline need not be defined in this process)',
        params: S.params('pipeline'),
        body: S.putScheduleBody,
        response: {
          200: S.scheduleAnswer('The schedule was updated (`paused` is kept)'),
          201: S.scheduleAnswer('The schedule was created'),
          ...S.authErrors(403, 404, 413, 415),
        },
      },
    },
    async (request, reply) => {
      const name = request.params.pipeline;
      const { pipeline: given, ...options } = request.body;
      if (!visible(request, name)) throw noSchedule(name);
      const existing = await client.getSchedule(name);
      if (existing && !visible(request, existing.pipeline)) throw noSchedule(name);
      const pipeline = given ?? existing?.pipeline ?? name;
      if (pipeline.includes('@'))
        throw new ValidationError('pipeline must not contain "@"', { path: 'pipeline' });
      pipelineOf(request, pipeline);
      await client.schedule(pipeline, { ...options, name });
      void reply.code(existing ? 200 : 201);
      return scheduleOf(request, name);
    },
  );

  app.delete<{ Params: PipelineParams }>(
    '/api/v1/schedules/:pipeline',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Delete a schedule (its run history and runs are kept)',
        params: S.params('pipeline'),
        response: { 204: S.noContent, ...S.authErrors(403, 404) },
      },
    },
    async (request, reply) => {
      await scheduleOf(request, request.params.pipeline);
      if (!(await client.deleteSchedule(request.params.pipeline))) throw noSchedule(request.params.pipeline);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: PipelineParams; Body: { note?: string } }>(
    '/api/v1/schedules/:pipeline/actions/pause',
    {
      config: { scope: 'admin' },
      preValidation: emptyBody,
      schema: {
        tags,
        summary: 'Pause a schedule (its slots are recorded as skipped, reason `paused`); idempotent',
        params: S.params('pipeline'),
        body: S.pauseScheduleBody,
        response: { 200: S.scheduleAnswer('The schedule, paused'), ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      const name = request.params.pipeline;
      await scheduleOf(request, name);
      await client.pauseSchedule(name, request.body.note ?? null);
      return scheduleOf(request, name);
    },
  );

  app.post<{ Params: PipelineParams }>(
    '/api/v1/schedules/:pipeline/actions/unpause',
    {
      config: { scope: 'admin' },
      preValidation: emptyBody,
      schema: {
        tags,
        summary: 'Unpause a schedule: the slots due while paused stay skipped; the next one after now fires',
        params: S.params('pipeline'),
        body: S.optionalEmptyBody,
        response: { 200: S.scheduleAnswer('The schedule, unpaused'), ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      const name = request.params.pipeline;
      await scheduleOf(request, name);
      await client.unpauseSchedule(name);
      return scheduleOf(request, name);
    },
  );

  app.post<{ Params: PipelineParams }>(
    '/api/v1/schedules/:pipeline/actions/trigger',
    {
      config: { scope: 'admin' },
      preValidation: emptyBody,
      schema: {
        tags,
        summary: "Fire the schedule now (slot: the database clock's time), under its overlap policy",
        params: S.params('pipeline'),
        body: S.optionalEmptyBody,
        response: { 200: S.triggerAnswer, ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      await scheduleOf(request, request.params.pipeline);
      return { run: await client.triggerSchedule(request.params.pipeline) };
    },
  );

  app.post<{ Params: PipelineParams; Body: { from: string; to: string; overlap?: OverlapPolicy } }>(
    '/api/v1/schedules/:pipeline/actions/backfill',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Fire every slot of the schedule in [from, to] that was not decided yet',
        params: S.params('pipeline'),
        body: S.backfillBody,
        response: { 200: S.backfillAnswer, ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      await scheduleOf(request, request.params.pipeline);
      const { from, to, overlap } = request.body;
      const items = await client.backfillSchedule(request.params.pipeline, {
        from: new Date(from),
        to: new Date(to),
        ...(overlap ? { overlap } : {}),
      });
      return { items };
    },
  );

  app.get<{ Params: PipelineParams; Querystring: { limit?: number; cursor?: string } }>(
    '/api/v1/pipelines/:pipeline/runs',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: "A page of the pipeline's run history, newest slot first",
        params: S.params('pipeline'),
        querystring: S.runsQuery,
        response: { 200: S.runPage, ...S.authErrors(404) },
      },
    },
    async (request) =>
      client.listRuns(pipelineOf(request, request.params.pipeline), {
        limit: request.query.limit,
        cursor: request.query.cursor,
      }),
  );

  app.get<{ Params: PipelineParams; Querystring: { limit?: number } }>(
    '/api/v1/pipelines/:pipeline/durations',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: "Each step's durations over the pipeline's newest runs",
        params: S.params('pipeline'),
        querystring: S.durationsQuery,
        response: { 200: S.durationsAnswer, ...S.authErrors(404) },
      },
    },
    async (request) =>
      client.stepDurations(pipelineOf(request, request.params.pipeline), { limit: request.query.limit }),
  );
}
