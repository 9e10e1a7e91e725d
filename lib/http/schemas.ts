/**
 * JSON Schemas of the routes. Bodies are `additionalProperties: false` (unknown fields are 400);
 * query parameters are typed scalars, so `?state[$gt]=x` or `{ "$ne": … }` never reach a query.
 * @internal
 */
import { CONTAINER_STATUSES, TASK_STATES } from '../states';

export const NAME = { type: 'string', minLength: 1, maxLength: 512 } as const;
const LIMIT = { type: 'integer', minimum: 1, maximum: 1000 } as const;
const CURSOR = { type: 'string', maxLength: 200 } as const;
const ACCESS_TOKEN = { type: 'string', maxLength: 200 } as const;

export const errorSchema = {
  type: 'object',
  properties: {
    error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
  },
} as const;

export function query(properties: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    properties: { ...properties, access_token: ACCESS_TOKEN },
  };
}

export function body(properties: Record<string, unknown>, required: string[] = []): Record<string, unknown> {
  return { type: 'object', additionalProperties: false, properties, required };
}

export function params(...names: string[]): Record<string, unknown> {
  return { type: 'object', properties: Object.fromEntries(names.map((n) => [n, NAME])), required: names };
}

export const listContainersQuery = query({
  status: {
    anyOf: [
      { type: 'string', enum: CONTAINER_STATUSES },
      { type: 'array', items: { type: 'string', enum: CONTAINER_STATUSES }, maxItems: 10 },
    ],
  },
  prefix: { type: 'string', maxLength: 512 },
  limit: LIMIT,
  cursor: CURSOR,
});

export const listTasksQuery = query({
  state: {
    anyOf: [
      { type: 'string', enum: TASK_STATES },
      { type: 'array', items: { type: 'string', enum: TASK_STATES }, maxItems: 10 },
    ],
  },
  limit: LIMIT,
  cursor: CURSOR,
});

export const changesQuery = query({ since: CURSOR, limit: LIMIT });
export const readQuery = query({});

export const putContainerBody = body({
  failurePolicy: { type: 'string', enum: ['continue', 'fail-fast'] },
  metadata: { type: 'object' },
});

const taskSpec = body(
  {
    name: NAME,
    data: {},
    dependsOn: { type: 'array', items: NAME },
    weight: { type: 'number', exclusiveMinimum: 0 },
    maxRetries: { type: 'integer', minimum: 0 },
    retryDelayMs: { type: 'integer', minimum: 0 },
    backoff: { type: 'string', enum: ['fixed', 'exponential'] },
    maxRetryDelayMs: { type: 'integer', minimum: 0 },
    key: { anyOf: [NAME, { type: 'null' }] },
  },
  ['name'],
);

export const addTasksBody = body({ tasks: { type: 'array', items: taskSpec, maxItems: 100_000 } }, ['tasks']);
export const actionBody = body({ task: NAME });

export const claimBody = body(
  {
    container: NAME,
    names: { type: 'array', items: NAME, maxItems: 1000 },
    key: NAME,
    owner: NAME,
    leaseMs: { type: 'integer', minimum: 1, maximum: 604_800_000 },
    waitMs: { type: 'integer', minimum: 0, maximum: 30_000 },
  },
  ['owner'],
);

const TOKEN = { type: 'integer', minimum: 0 } as const;
const progressFields = {
  percentageComplete: { type: 'number', minimum: 0, maximum: 100 },
  statusText: { anyOf: [{ type: 'string', maxLength: 4096 }, { type: 'null' }] },
  processingData: {},
};
export const heartbeatBody = body(
  { token: TOKEN, ...progressFields, leaseMs: { type: 'integer', minimum: 1, maximum: 604_800_000 } },
  ['token'],
);
export const succeedBody = body({ token: TOKEN, result: {}, ...progressFields }, ['token']);
export const failBody = body(
  {
    token: TOKEN,
    error: body(
      {
        message: { type: 'string', maxLength: 10_000 },
        stack: { type: 'string', maxLength: 100_000 },
        code: { type: 'string', maxLength: 200 },
      },
      ['message'],
    ),
    retryable: { type: 'boolean' },
    ...progressFields,
  },
  ['token', 'error'],
);

export const workerConfigBody = body({
  pollIntervalMs: { type: 'integer', minimum: 50, maximum: 3_600_000 },
  custom: { type: 'object' },
});
