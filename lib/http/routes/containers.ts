/**
 * Container and task administration and reads. Thin: each handler checks access, then calls one
 * public client/container method.
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../errors';
import type { TaskContainer } from '../../container';
import { CONTAINER_ACTIONS, type ContainerStatus, type TaskState } from '../../states';
import type { TaskSpec } from '../../types';
import { effectivePrefix, principalOf, requireContainer, type HttpContext } from '../context';
import * as S from '../schemas';
import { getWorkerConfig, setWorkerConfig, type WorkerConfig } from '../worker-config';

type NameParams = { name: string };

/** Lets body-optional POSTs be sent without a body (`curl -X POST`). */
async function emptyBody(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}
type TaskParams = { name: string; task: string };

export async function containerOf(
  ctx: HttpContext,
  request: FastifyRequest,
  name: string,
): Promise<TaskContainer> {
  requireContainer(request, name);
  const c = await ctx.client.getTaskContainer(name);
  if (!c) throw new NotFoundError(`no container named ${JSON.stringify(name)}`, { container: name });
  return c;
}

export function registerContainerRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const { client } = ctx;
  const tags = ['containers'];

  app.get<{
    Querystring: {
      status?: ContainerStatus | ContainerStatus[];
      prefix?: string;
      limit?: number;
      cursor?: string;
    };
  }>(
    '/api/v1/containers',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'List containers, newest first',
        querystring: S.listContainersQuery,
        response: { 200: S.containerPage, ...S.authErrors() },
      },
    },
    async (request) => {
      const q = request.query;
      const prefix = effectivePrefix(principalOf(request), q.prefix);
      if (prefix === null) return { items: [], nextCursor: null };
      return client.listContainers({
        status: q.status,
        namePrefix: prefix,
        limit: q.limit,
        cursor: q.cursor,
      });
    },
  );

  app.put<{
    Params: NameParams;
    Body: { failurePolicy?: 'continue' | 'fail-fast'; metadata?: Record<string, unknown>; taskTimeoutMs?: number; taskStallMs?: number };
  }>(
    '/api/v1/containers/:name',
    {
      config: { scope: 'admin' },
      preValidation: emptyBody,
      schema: {
        tags,
        summary: 'Get or create a container',
        params: S.params('name'),
        body: S.putContainerBody,
        response: {
          200: S.putContainerAnswer('The container existed (its options are unchanged)'),
          201: S.putContainerAnswer('The container was created'),
          ...S.authErrors(403, 413, 415),
        },
      },
    },
    async (request, reply) => {
      requireContainer(request, request.params.name);
      const c = await client.getOrCreateTaskContainer(request.params.name, request.body);
      void reply.code(c.isNew ? 201 : 200);
      return { container: await c.summary(), created: c.isNew };
    },
  );

  app.get<{ Params: NameParams }>(
    '/api/v1/containers/:name',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Container summary',
        params: S.params('name'),
        querystring: S.readQuery,
        response: { 200: S.containerAnswer, ...S.authErrors(403, 404) },
      },
    },
    async (request) => (await containerOf(ctx, request, request.params.name)).summary(),
  );

  app.delete<{ Params: NameParams }>(
    '/api/v1/containers/:name',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Delete a container and its tasks',
        params: S.params('name'),
        response: { 204: S.noContent, ...S.authErrors(403, 404) },
      },
    },
    async (request, reply) => {
      requireContainer(request, request.params.name);
      if (!(await client.deleteTaskContainer(request.params.name)))
        throw new NotFoundError(`no container named ${JSON.stringify(request.params.name)}`);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: NameParams; Body: { tasks: TaskSpec[] } }>(
    '/api/v1/containers/:name/tasks',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Add tasks (idempotent by name)',
        params: S.params('name'),
        body: S.addTasksBody,
        response: { 200: S.tasksAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      const tasks = await c.addTasks(request.body.tasks);
      return { tasks: tasks.map((t) => t.toJSON()) };
    },
  );

  app.get<{
    Params: NameParams;
    Querystring: { state?: TaskState | TaskState[]; limit?: number; cursor?: string; parent?: string; topLevel?: boolean };
  }>(
    '/api/v1/containers/:name/tasks',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'List tasks in insertion order',
        params: S.params('name'),
        querystring: S.listTasksQuery,
        response: { 200: S.taskPage, ...S.authErrors(403, 404) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      const q = request.query;
      const parent = q.topLevel ? null : q.parent;
      return c.listTasks({ state: q.state, limit: q.limit, cursor: q.cursor, ...(parent === undefined ? {} : { parent }) });
    },
  );

  app.get<{ Params: TaskParams }>(
    '/api/v1/containers/:name/tasks/:task',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'One task',
        params: S.params('name', 'task'),
        querystring: S.readQuery,
        response: { 200: S.taskAnswer, ...S.authErrors(403, 404) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      const t = await c.getTask(request.params.task);
      if (!t)
        throw new NotFoundError(`no task named ${JSON.stringify(request.params.task)}`, {
          task: request.params.task,
        });
      return t.toJSON();
    },
  );

  app.get<{ Params: TaskParams }>(
    '/api/v1/containers/:name/tasks/:task/children',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Counts per state of the children the task spawned ("N of M done"); list them with GET …/tasks?parent=',
        params: S.params('name', 'task'),
        querystring: S.readQuery,
        response: { 200: S.childrenAnswer, ...S.authErrors(403, 404) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      if (!(await c.getTask(request.params.task)))
        throw new NotFoundError(`no task named ${JSON.stringify(request.params.task)}`, { task: request.params.task });
      return c.children(request.params.task);
    },
  );

  // The container-wide actions of the transition table; each also takes one task by name.
  for (const action of CONTAINER_ACTIONS) {
    app.post<{ Params: NameParams; Body: { task?: string } | undefined }>(
      `/api/v1/containers/:name/actions/${action}`,
      {
        config: { scope: 'admin' },
        preValidation: emptyBody,
        schema: {
          tags,
          summary: `${action} one task (or all)`,
          params: S.params('name'),
          body: S.actionBody,
          response: { 200: S.affectedAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
        },
      },
      async (request) => {
        const c = await containerOf(ctx, request, request.params.name);
        return { affected: await c[action](request.body?.task) };
      },
    );
  }

  app.post<{ Params: NameParams; Body: { task: string; downstream?: boolean; dryRun?: boolean } }>(
    '/api/v1/containers/:name/actions/rerun',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Re-run from a step: reset it and (downstream) every task that depends on it; dryRun: only the plan',
        params: S.params('name'),
        body: S.rerunBody,
        response: { 200: S.rerunAnswer, ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      const { task, downstream, dryRun } = request.body;
      return c.rerun(task, { downstream, dryRun });
    },
  );

  app.post<{ Params: NameParams; Body: undefined }>(
    '/api/v1/containers/:name/actions/resume',
    {
      config: { scope: 'admin' },
      preValidation: emptyBody,
      schema: {
        tags,
        summary: 'Recover tasks whose worker died (expired leases), repair counters, unblock dependents',
        params: S.params('name'),
        response: { 200: S.resumeAnswer, ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      const report = await client.recoverStale({ container: c.name() });
      return { affected: report.recovered.length, reconciled: report.reconciled.length > 0, unblocked: report.unblocked };
    },
  );

  // Pause and unpause (not `resume`: that name is the recovery sweep's, above).
  for (const [action, paused] of [
    ['pause', true],
    ['unpause', false],
  ] as const) {
    app.post<{ Params: NameParams; Body: undefined }>(
      `/api/v1/containers/:name/actions/${action}`,
      {
        config: { scope: 'admin' },
        preValidation: emptyBody,
        schema: {
          tags,
          summary: paused
            ? 'Pause the container: no new claims until unpaused; running tasks finish (idempotent)'
            : 'Unpause a paused container: its tasks may be claimed again (idempotent)',
          params: S.params('name'),
          response: { 200: S.containerAnswer, ...S.authErrors(403, 404, 413, 415) },
        },
      },
      async (request) => {
        const c = await containerOf(ctx, request, request.params.name);
        return paused ? c.pause({ by: principalOf(request).id }) : c.resume();
      },
    );
  }

  app.get(
    '/api/v1/whoami',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'The scope and container-name prefix of the calling token',
        querystring: S.readQuery,
        response: { 200: S.whoamiAnswer, ...S.authErrors() },
      },
    },
    async (request) => {
      const p = principalOf(request);
      return { id: p.id, scope: p.scope, prefix: p.prefix };
    },
  );

  app.post<{ Params: TaskParams }>(
    '/api/v1/containers/:name/tasks/:task/skip',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Skip a task',
        params: S.params('name', 'task'),
        response: { 200: S.oneTaskAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      return { task: (await c.skip(request.params.task)).toJSON() };
    },
  );

  app.post<{ Params: TaskParams; Body: { result?: unknown } }>(
    '/api/v1/containers/:name/tasks/:task/mark-succeeded',
    {
      config: { scope: 'admin' },
      preValidation: emptyBody,
      schema: {
        tags,
        summary: 'Mark a pending, failed, cancelled or skipped task succeeded with a result (a step fixed by hand)',
        params: S.params('name', 'task'),
        body: S.markSucceededBody,
        response: { 200: S.oneTaskAnswer, ...S.authErrors(403, 404, 409, 413, 415) },
      },
    },
    async (request) => {
      const c = await containerOf(ctx, request, request.params.name);
      return { task: (await c.markSucceeded(request.params.task, request.body?.result)).toJSON() };
    },
  );

  app.delete<{ Params: TaskParams }>(
    '/api/v1/containers/:name/tasks/:task',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Delete a task that is not running and that no other task depends on',
        params: S.params('name', 'task'),
        response: { 204: S.noContent, ...S.authErrors(403, 404, 409) },
      },
    },
    async (request, reply) => {
      const c = await containerOf(ctx, request, request.params.name);
      // The library resolves null for a missing name (the original API); over HTTP that is a 404.
      if ((await c.deleteTask(request.params.task)) === null)
        throw new NotFoundError(`no task named ${JSON.stringify(request.params.task)}`, {
          task: request.params.task,
        });
      return reply.code(204).send();
    },
  );

  app.get<{ Params: NameParams }>(
    '/api/v1/containers/:name/worker-config',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: 'Worker configuration',
        params: S.params('name'),
        querystring: S.readQuery,
        response: { 200: S.workerConfigAnswer, ...S.authErrors(403, 404) },
      },
    },
    async (request) => {
      requireContainer(request, request.params.name);
      return getWorkerConfig(client, request.params.name);
    },
  );

  app.put<{ Params: NameParams; Body: Partial<WorkerConfig> }>(
    '/api/v1/containers/:name/worker-config',
    {
      config: { scope: 'admin' },
      preValidation: emptyBody,
      schema: {
        tags,
        summary: 'Set worker configuration',
        params: S.params('name'),
        body: S.workerConfigBody,
        response: { 200: S.workerConfigAnswer, ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      requireContainer(request, request.params.name);
      return setWorkerConfig(client, request.params.name, request.body);
    },
  );
}
