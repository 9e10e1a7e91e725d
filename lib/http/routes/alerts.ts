/**
 * Alert rules (admin scope; a prefixed token manages the rules whose own container prefix starts
 * with its prefix; secrets are never returned) and the deliveries with their attempts (read scope,
 * narrowed to the token's container prefix). Thin: each handler checks access and calls one
 * client method.
 * @internal
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ALERT_EVENTS, ALERT_TEMPLATES, DELIVERY_STATUSES, type AlertRule, type AlertRuleOptions, type DeliveryStatus } from '../../alerts';
import type { Client } from '../../client';
import { NotFoundError } from '../../errors';
import { MAX_NAME_LENGTH } from '../../validation';
import { effectivePrefix, principalOf, type HttpContext } from '../context';
import { HttpError, HTTP_ERROR_CODES } from '../errors';
import * as S from '../schemas';

type NameParams = { name: string };

const DATE = { type: 'string', format: 'date-time' } as const;
const NULLABLE_DATE = { type: 'string', format: 'date-time', nullable: true } as const;
const EVENTS = { type: 'array', items: { type: 'string', enum: [...ALERT_EVENTS] }, minItems: 1, maxItems: ALERT_EVENTS.length } as const;

const ruleSchema = {
  type: 'object',
  additionalProperties: true,
  description: 'An alert rule (its secret is never returned)',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    events: EVENTS,
    url: { type: 'string' },
    prefix: { type: 'string' },
    template: { type: 'string', enum: [...ALERT_TEMPLATES] },
    enabled: { type: 'boolean' },
    createdAt: DATE,
    updatedAt: DATE,
  },
  required: ['id', 'name', 'events', 'url', 'prefix', 'template', 'enabled', 'createdAt', 'updatedAt'],
} as const;

const attemptSchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    n: { type: 'integer' },
    at: DATE,
    statusCode: { type: 'integer', nullable: true },
    error: { type: 'string', nullable: true },
    durationMs: { type: 'integer' },
    by: { type: 'string' },
  },
  required: ['n', 'at', 'statusCode', 'error', 'durationMs', 'by'],
} as const;

const deliverySchema = {
  type: 'object',
  additionalProperties: true,
  properties: {
    id: { type: 'string' },
    key: { type: 'string', description: 'The idempotency key (X-PTS-Idempotency-Key)' },
    rule: { type: 'string' },
    event: { type: 'string', enum: [...ALERT_EVENTS] },
    container: { type: 'string' },
    task: { type: 'string', nullable: true },
    eventAt: DATE,
    status: { type: 'string', enum: [...DELIVERY_STATUSES] },
    attemptCount: { type: 'integer' },
    attempts: { type: 'array', items: attemptSchema },
    nextAttemptAt: NULLABLE_DATE,
    createdAt: DATE,
    updatedAt: DATE,
    deliveredAt: NULLABLE_DATE,
    body: { type: 'string' },
  },
  required: ['id', 'key', 'rule', 'event', 'container', 'task', 'eventAt', 'status', 'attemptCount', 'attempts', 'nextAttemptAt', 'createdAt', 'updatedAt', 'deliveredAt', 'body'],
} as const;

const ruleBody = S.body(
  {
    name: S.NAME,
    events: EVENTS,
    url: { type: 'string', minLength: 1, maxLength: 2048, description: 'The webhook: an http: or https: URL' },
    secret: { type: 'string', minLength: 1, maxLength: 1024, description: 'HMAC-SHA256 key of X-PTS-Signature' },
    prefix: { type: 'string', maxLength: MAX_NAME_LENGTH, description: "Container name prefix (default '': all)" },
    template: { type: 'string', enum: [...ALERT_TEMPLATES], description: "'json' (default) or 'slack' (a Slack-compatible { text })" },
    enabled: { type: 'boolean' },
  },
  ['name', 'events', 'url', 'secret'],
);

/**
 * A rule watches the containers whose name starts with its `prefix`. A token with a prefix may see
 * and manage the rules inside it (the rule's prefix starts with the token's); the others are
 * invisible to it: 404, as if they did not exist (rule names are not container names, and a 403
 * would tell that another team has a rule of that name).
 */
function visible(request: FastifyRequest, rule: Pick<AlertRule, 'prefix'>): boolean {
  return rule.prefix.startsWith(principalOf(request).prefix);
}

/** The rule named `name` if the token may see it, else `PTS_NOT_FOUND`. */
async function ruleFor(client: Client, request: FastifyRequest, name: string): Promise<void> {
  if (principalOf(request).prefix === '') return; // every rule is visible: the client call says if it exists
  const rule = (await client.listAlertRules()).find((r) => r.name === name);
  if (!rule || !visible(request, rule)) throw new NotFoundError(`no alert rule named ${JSON.stringify(name)}`, { rule: name });
}

export function registerAlertRoutes(app: FastifyInstance, ctx: HttpContext): void {
  const { client } = ctx;
  const tags = ['alerts'];

  app.get(
    '/api/v1/alerts/rules',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Alert rules, by name (without secrets; those inside the token's prefix)",
        querystring: S.readQuery,
        response: { 200: { description: 'The rules', type: 'object', properties: { items: { type: 'array', items: ruleSchema } }, required: ['items'] }, ...S.authErrors(403) },
      },
    },
    async (request) => ({ items: (await client.listAlertRules()).filter((r) => visible(request, r)) }),
  );

  app.post<{ Body: AlertRuleOptions }>(
    '/api/v1/alerts/rules',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Add an alert rule (a prefixed token: its prefix must start with the token's, and defaults to it)",
        body: ruleBody,
        response: { 201: ruleSchema, ...S.authErrors(403, 409, 413, 415) },
      },
    },
    async (request, reply) => {
      const own = principalOf(request).prefix;
      const prefix = request.body.prefix ?? own;
      if (!prefix.startsWith(own))
        throw new HttpError(403, HTTP_ERROR_CODES.FORBIDDEN, `this token may only add alert rules whose prefix starts with ${JSON.stringify(own)}`);
      return reply.code(201).send(await client.addAlertRule({ ...request.body, prefix }));
    },
  );

  app.patch<{ Params: NameParams; Body: { enabled: boolean } }>(
    '/api/v1/alerts/rules/:name',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: 'Enable or disable an alert rule',
        params: S.params('name'),
        body: S.body({ enabled: { type: 'boolean' } }, ['enabled']),
        response: { 200: ruleSchema, ...S.authErrors(403, 404, 413, 415) },
      },
    },
    async (request) => {
      await ruleFor(client, request, request.params.name);
      return client.setAlertRuleEnabled(request.params.name, request.body.enabled);
    },
  );

  app.delete<{ Params: NameParams }>(
    '/api/v1/alerts/rules/:name',
    {
      config: { scope: 'admin' },
      schema: { tags, summary: 'Delete an alert rule', params: S.params('name'), response: { 204: S.noContent, ...S.authErrors(403, 404) } },
    },
    async (request, reply) => {
      await ruleFor(client, request, request.params.name);
      if (!(await client.deleteAlertRule(request.params.name)))
        throw new NotFoundError(`no alert rule named ${JSON.stringify(request.params.name)}`, { rule: request.params.name });
      return reply.code(204).send();
    },
  );

  app.post<{ Params: NameParams }>(
    '/api/v1/alerts/rules/:name/test',
    {
      config: { scope: 'admin' },
      schema: {
        tags,
        summary: "Send a signed test body to the rule's webhook now (nothing stored)",
        params: S.params('name'),
        response: {
          200: {
            description: 'How the webhook answered',
            type: 'object',
            properties: { statusCode: { type: 'integer', nullable: true }, error: { type: 'string', nullable: true }, body: { type: 'string' } },
            required: ['statusCode', 'error', 'body'],
          },
          ...S.authErrors(403, 404),
        },
      },
    },
    async (request) => {
      await ruleFor(client, request, request.params.name);
      return client.testAlertRule(request.params.name);
    },
  );

  app.get<{ Querystring: { rule?: string; status?: DeliveryStatus; prefix?: string; cursor?: string; limit?: number } }>(
    '/api/v1/alerts/deliveries',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        summary: "Alert deliveries, newest first, with every attempt (narrowed to the token's prefix)",
        querystring: S.query({
          rule: S.NAME,
          status: { type: 'string', enum: [...DELIVERY_STATUSES] },
          prefix: { type: 'string', maxLength: MAX_NAME_LENGTH },
          cursor: { type: 'string', maxLength: 200 },
          limit: { type: 'integer', minimum: 1, maximum: 1000 },
        }),
        response: {
          200: {
            description: 'A page of deliveries',
            type: 'object',
            properties: { items: { type: 'array', items: deliverySchema }, nextCursor: { type: 'string', nullable: true } },
            required: ['items', 'nextCursor'],
          },
          ...S.authErrors(403),
        },
      },
    },
    async (request) => {
      const q = request.query;
      const prefix = effectivePrefix(principalOf(request), q.prefix);
      if (prefix === null) return { items: [], nextCursor: null };
      return client.listDeliveries({ rule: q.rule, status: q.status, prefix: prefix || undefined, cursor: q.cursor, limit: q.limit });
    },
  );
}
