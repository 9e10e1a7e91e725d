/**
 * Retention policies (docs/http.md#retention; admin scope). Thin: each handler checks access,
 * then calls one public client method. A token limited to a name prefix sees, sets and deletes
 * only the policies whose prefix starts with its own (setting one outside answers 403), and a
 * retention pass it asks for applies only those policies.
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../errors';
import { RETENTION_MAX_LIMIT, type RetentionPolicyOptions } from '../../retention';
import { FINAL_CONTAINER_STATUSES } from '../../states';
import { MAX_NAME_LENGTH } from '../../validation';
import { principalOf, type HttpContext } from '../context';
import { HttpError, HTTP_ERROR_CODES } from '../errors';
import * as S from '../schemas';

const DATE = { type: 'string', format: 'date-time' } as const;
const PREFIX = {
  type: 'string',
  maxLength: MAX_NAME_LENGTH,
  description: "Container name prefix ('' = every container)",
} as const;
const DAYS = { type: 'number', exclusiveMinimum: 0, maximum: 36_500, nullable: true } as const;
const KEEP = { type: 'integer', minimum: 1, maximum: 100_000, nullable: true } as const;

const policySchema = {
  type: 'object',
  additionalProperties: true,
  description: 'A retention policy',
  properties: {
    prefix: { type: 'string' },
    succeededDays: { type: 'number', nullable: true },
    failedDays: { type: 'number', nullable: true },
    cancelledDays: {
      type: 'number',
      nullable: true,
      description: 'null: cancelled containers follow failedDays',
    },
    keepLastRuns: { type: 'integer', nullable: true },
    createdAt: DATE,
    updatedAt: DATE,
  },
  required: [
    'prefix',
    'succeededDays',
    'failedDays',
    'cancelledDays',
    'keepLastRuns',
    'createdAt',
    'updatedAt',
  ],
} as const;

const itemSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    container: { type: 'string' },
    status: { type: 'string', enum: [...FINAL_CONTAINER_STATUSES] },
    endedAt: { type: 'string', format: 'date-time', nullable: true },
    policy: { type: 'string' },
    reason: { type: 'string', enum: ['age', 'keepLastRuns'] },
  },
  required: ['container', 'status', 'endedAt', 'policy', 'reason'],
} as const;

type PolicyBody = RetentionPolicyOptions & { prefix: string };

/** 403 unless the token may manage policies of `prefix` (its own prefix must be a prefix of it). */
function requireWithin(request: FastifyRequest, prefix: string): void {
  const own = principalOf(request).prefix;
  if (!prefix.startsWith(own))
    throw new HttpError(
      403,
      HTTP_ERROR_CODES.FORBIDDEN,
      `this token may only manage retention policies whose prefix starts with ${JSON.stringify(own)}`,
    );
}

export function registerRetentionRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const { client } = ctx;
  const tags = ['retention'];

  app.get(
    '/api/v1/retention/policies',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Retention policies, by prefix (those inside the token's prefix)",
        querystring: S.readQuery,
        response: {
          200: {
            description: 'The policies',
            type: 'object',
            properties: { items: { type: 'array', items: policySchema } },
            required: ['items'],
          },
          ...S.authErrors(403),
        },
      },
    },
    async (request) => {
      const own = principalOf(request).prefix;
      return { items: (await client.listRetentionPolicies()).filter((p) => p.prefix.startsWith(own)) };
    },
  );

  app.put<{ Body: PolicyBody }>(
    '/api/v1/retention/policies',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Create or replace the retention policy of a prefix',
        body: S.body(
          { prefix: PREFIX, succeededDays: DAYS, failedDays: DAYS, cancelledDays: DAYS, keepLastRuns: KEEP },
          ['prefix'],
        ),
        response: { 200: policySchema, ...S.authErrors(403, 413, 415) },
      },
    },
    async (request) => {
      const { prefix, ...rules } = request.body;
      requireWithin(request, prefix);
      return client.setRetentionPolicy(prefix, rules);
    },
  );

  app.delete<{ Querystring: { prefix: string } }>(
    '/api/v1/retention/policies',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Delete the retention policy of a prefix',
        querystring: { ...S.query({ prefix: PREFIX }), required: ['prefix'] },
        response: { 204: S.noContent, ...S.authErrors(403, 404) },
      },
    },
    async (request, reply) => {
      const { prefix } = request.query;
      requireWithin(request, prefix);
      if (!(await client.deleteRetentionPolicy(prefix)))
        throw new NotFoundError(`no retention policy for prefix ${JSON.stringify(prefix)}`, { prefix });
      return reply.code(204).send();
    },
  );

  app.post<{ Body: { dryRun?: boolean; limit?: number } }>(
    '/api/v1/retention/apply',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "One retention pass now (the token's policies only), or with dryRun what it would delete",
        body: S.body({
          dryRun: { type: 'boolean' },
          limit: { type: 'integer', minimum: 1, maximum: RETENTION_MAX_LIMIT },
        }),
        response: {
          200: {
            description: 'What the pass deleted (dry run: would delete)',
            type: 'object',
            additionalProperties: true,
            properties: {
              dryRun: { type: 'boolean' },
              containers: { type: 'array', items: itemSchema },
              kept: {
                type: 'array',
                items: { type: 'string' },
                description: 'Candidates that changed before the delete and were kept',
              },
              tasks: { type: 'integer', minimum: 0 },
            },
            required: ['dryRun', 'containers', 'kept', 'tasks'],
          },
          ...S.authErrors(403, 413, 415),
        },
      },
    },
    async (request) =>
      client.applyRetention({
        dryRun: request.body.dryRun,
        limit: request.body.limit,
        prefix: principalOf(request).prefix,
      }),
  );
}
