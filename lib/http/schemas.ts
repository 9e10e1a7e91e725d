/**
 * JSON Schemas of the routes: what a request may carry and what each status answers. Bodies are
 * `additionalProperties: false` (unknown fields are 400); query parameters are typed scalars, so
 * `?state[$gt]=x` or `{ "$ne": … }` never reach a query. The limits the library enforces
 * (lib/validation.ts) are stated here too, so that a body valid against the OpenAPI document is
 * accepted; what JSON Schema cannot say (keys of free-form data, a task depending on itself) is in
 * the descriptions and answers 400.
 *
 * Response schemas are also the serializers (fast-json-stringify drops properties a schema does
 * not list): records therefore keep `additionalProperties: true`, and free-form parts (`taskData`,
 * `result`, `metadata`, …) are open schemas.
 * @internal
 */
import { RUN_WHEN } from '../run-when';
import { LOG_LEVELS } from '../logs';
import { OVERLAP_POLICIES } from '../schedule';
import { CONTAINER_ACTIONS, CONTAINER_STATUSES, TASK_ACTIONS, TASK_STATES } from '../states';
import { MAX_LEASE_MS, MAX_NAME_LENGTH, MAX_STATUS_TEXT_LENGTH } from '../validation';

const YEAR_MS = 365 * 86_400_000;
/** A `timeoutMs`/`stallMs` (lib/store/deadlines.ts). */
const DEADLINE_MS = { type: 'integer', minimum: 1, maximum: YEAR_MS } as const;
/**
 * A name (validateName): no control character (U+0000–U+001F, U+007F) and at least one character
 * that `String.prototype.trim` keeps.
 */
const NAME_PATTERN =
  '^[^\\u0000-\\u001f\\u007f]*' +
  '[^\\u0000-\\u0020\\u007f\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff]' +
  '[^\\u0000-\\u001f\\u007f]*$';
const NO_NUL = '^[^\\u0000]*$';

export const NAME = {
  type: 'string',
  minLength: 1,
  maxLength: MAX_NAME_LENGTH,
  pattern: NAME_PATTERN,
  description: `A container or task name: not blank, no control characters, at most ${MAX_NAME_LENGTH} UTF-16 code units.`,
} as const;
const LIMIT = { type: 'integer', minimum: 1, maximum: 1000 } as const;
const CURSOR = {
  type: 'string',
  maxLength: 200,
  description: 'An opaque cursor from a previous answer.',
} as const;
const ACCESS_TOKEN = {
  type: 'string',
  maxLength: 200,
  description: 'The API token, for clients that cannot send `Authorization` (GET only).',
} as const;
const DATA = {
  description:
    'Free-form JSON: object keys must not start with `$`, contain `.` or NUL, or be `__proto__`; at most 64 levels deep and 15 MiB.',
} as const;
const DATE = { type: 'string', format: 'date-time' } as const;
const NULLABLE_DATE = { type: 'string', format: 'date-time', nullable: true } as const;
const COUNT = { type: 'integer', minimum: 0 } as const;

// --- requests -----------------------------------------------------------------------------------

export function query(properties: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'object',
    additionalProperties: false,
    properties: { ...properties, access_token: ACCESS_TOKEN },
  };
}

export function body(properties: Record<string, unknown>, required: string[] = []): Record<string, unknown> {
  // OpenAPI 3.0 forbids an empty `required`.
  return {
    type: 'object',
    additionalProperties: false,
    properties,
    ...(required.length ? { required } : {}),
  };
}

/** Example values of path parameters (scripts/schemathesis-target.mjs creates them). */
const PARAM_EXAMPLES: Record<string, string> = { name: 'nightly', task: 'resize/1', pipeline: 'nightly' };

/**
 * Marks a body the route may be sent without (`preValidation: emptyBody` makes it `{}`): the
 * document then says `requestBody.required: false` (toOpenApi30) instead of @fastify/swagger's `true`.
 */
function optionalBody(schema: Record<string, unknown>): Record<string, unknown> {
  return { ...schema, [OPTIONAL_BODY]: true };
}
const OPTIONAL_BODY = 'x-optional-body';

export function params(...names: string[]): Record<string, unknown> {
  const schemaOf = (n: string) => (PARAM_EXAMPLES[n] ? { ...NAME, examples: [PARAM_EXAMPLES[n]] } : NAME);
  return {
    type: 'object',
    properties: Object.fromEntries(names.map((n) => [n, schemaOf(n)])),
    required: names,
  };
}

export const listContainersQuery = query({
  status: {
    anyOf: [
      { type: 'string', enum: CONTAINER_STATUSES },
      { type: 'array', items: { type: 'string', enum: CONTAINER_STATUSES }, maxItems: 10 },
    ],
  },
  prefix: { type: 'string', maxLength: MAX_NAME_LENGTH },
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
  parent: { ...NAME, description: 'Only the children spawned by this task.' },
  topLevel: { type: 'boolean', description: 'Only the tasks nobody spawned (wins over `parent`).' },
});

export const changesQuery = query({ since: CURSOR, limit: LIMIT });
export const readQuery = query({});

export const putContainerBody = optionalBody(
  body({
    failurePolicy: { type: 'string', enum: ['continue', 'fail-fast'] },
    metadata: { type: 'object', additionalProperties: true, ...DATA },
    taskTimeoutMs: { ...DEADLINE_MS, description: '`timeoutMs` of its tasks that set none (stored when the container is created).' },
    taskStallMs: { ...DEADLINE_MS, description: '`stallMs` of its tasks that set none (stored when the container is created).' },
  }),
);

const taskSpec = body(
  {
    name: NAME,
    data: DATA,
    dependsOn: {
      type: 'array',
      items: NAME,
      uniqueItems: true,
      description:
        'Names of tasks of the same container (in this batch or already added); not the task itself.',
    },
    // A numeric exclusiveMinimum is draft-07 (what Ajv checks); the OpenAPI 3.0 document gets
    // `minimum: 0, exclusiveMinimum: true` (toOpenApi30).
    weight: { type: 'number', exclusiveMinimum: 0, maximum: 1e6 },
    priority: {
      type: 'integer',
      minimum: -1000,
      maximum: 1000,
      description: 'Claim priority (default 0): among ready tasks, higher first, then the task added first.',
    },
    maxRetries: { type: 'integer', minimum: 0, maximum: 1000 },
    retryDelayMs: { type: 'integer', minimum: 0, maximum: YEAR_MS },
    backoff: { type: 'string', enum: ['fixed', 'exponential'] },
    maxRetryDelayMs: { type: 'integer', minimum: 0, maximum: YEAR_MS },
    key: { ...NAME, nullable: true },
    timeoutMs: {
      ...DEADLINE_MS,
      nullable: true,
      description: 'Longest one attempt may run; then it fails with kind `timeout` (null: none, whatever the defaults).',
    },
    stallMs: {
      ...DEADLINE_MS,
      nullable: true,
      description: 'Longest an attempt may go without progress, status or checkpoint; then it fails with kind `stalled`.',
    },
    runWhen: {
      type: 'string',
      enum: RUN_WHEN,
      description:
        "When the task runs (default 'succeeded': every dependency succeeded or was skipped). Cleanup steps: 'always' once every dependency is final, 'failed' once every dependency is final and one failed (else it is skipped). 'always'/'failed' need dependsOn.",
    },
  },
  ['name'],
);

export const addTasksBody = body({ tasks: { type: 'array', items: taskSpec, maxItems: 100_000 } }, ['tasks']);
export const spawnBody = body(
  {
    token: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'The lease token of the spawning task' },
    tasks: {
      type: 'array',
      items: taskSpec,
      maxItems: 100_000,
      description: 'The children: idempotent by name; `dependsOn` may name only other children of the same parent.',
    },
  },
  ['token', 'tasks'],
);
export const actionBody = optionalBody(body({ task: NAME }));
export const rerunBody = body(
  {
    task: { ...NAME, description: 'The step to re-run from.' },
    downstream: { type: 'boolean', description: 'Also reset every task that depends on the step, transitively (default true).' },
    dryRun: { type: 'boolean', description: 'Only compute the plan; write nothing (default false).' },
  },
  ['task'],
);
export const markSucceededBody = optionalBody(body({ result: { ...DATA, description: `The result to store (default null). ${DATA.description}` } }));

const LEASE_MS = { type: 'integer', minimum: 1, maximum: MAX_LEASE_MS } as const;
export const claimBody = body(
  {
    container: NAME,
    names: { type: 'array', items: NAME, maxItems: 1000 },
    key: NAME,
    owner: NAME,
    leaseMs: LEASE_MS,
    waitMs: { type: 'integer', minimum: 0, maximum: 30_000 },
    includeInputs: {
      type: 'boolean',
      description:
        "Also answer the task's inputs (its dependencies' results, by name): one more query when it has dependencies. Default false.",
    },
  },
  ['owner'],
);

const TOKEN = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const progressFields = {
  percentageComplete: { type: 'number', minimum: 0, maximum: 100 },
  statusText: { type: 'string', maxLength: MAX_STATUS_TEXT_LENGTH, pattern: NO_NUL, nullable: true },
  processingData: DATA,
};
export const heartbeatBody = body({ token: TOKEN, ...progressFields, leaseMs: LEASE_MS }, ['token']);
export const succeedBody = body({ token: TOKEN, result: DATA, ...progressFields }, ['token']);
export const failBody = body(
  {
    token: TOKEN,
    error: body(
      {
        message: { type: 'string', maxLength: 10_000, pattern: NO_NUL },
        stack: { type: 'string', maxLength: 100_000, pattern: NO_NUL },
        code: { type: 'string', maxLength: 200, pattern: NO_NUL },
      },
      ['message'],
    ),
    retryable: { type: 'boolean' },
    ...progressFields,
  },
  ['token', 'error'],
);

export const workerConfigBody = optionalBody(
  body({
    pollIntervalMs: { type: 'integer', minimum: 50, maximum: 3_600_000 },
    custom: { type: 'object', additionalProperties: true, ...DATA },
  }),
);

// --- records (shared schemas, registered with app.addSchema) --------------------------------------

const failureRecord = {
  type: 'object',
  additionalProperties: true,
  properties: {
    attempt: COUNT,
    at: DATE,
    message: { type: 'string' },
    stack: { type: 'string', nullable: true },
    code: { type: 'string', nullable: true },
    workerId: { type: 'string', nullable: true },
    kind: { type: 'string', enum: ['error', 'interrupted', 'timeout', 'stalled'] },
  },
} as const;

export const taskRecordSchema = {
  $id: 'TaskRecord',
  title: 'TaskRecord',
  type: 'object',
  additionalProperties: true,
  required: ['id', 'container', 'name', 'state', 'allowedActions'],
  properties: {
    id: { type: 'string' },
    containerId: { type: 'string' },
    container: { type: 'string' },
    name: { type: 'string' },
    state: { type: 'string', enum: TASK_STATES },
    dependsOn: { type: 'array', items: { type: 'string' } },
    waitingOn: { type: 'array', items: { type: 'string' }, description: 'Dependencies that still hold the task back (for a cleanup step: not final yet).' },
    runWhen: { type: 'string', enum: RUN_WHEN, description: "When the task runs given how its dependencies ended: 'succeeded', 'always' or 'failed' (cleanup steps)." },
    parent: { type: 'string', nullable: true, description: 'The task that spawned this one (null: added with addTasks).' },
    spawned: { type: 'boolean', description: 'True once the task spawned children (GET …/tasks/:task/children counts them).' },
    weight: { type: 'number' },
    priority: { type: 'integer', description: 'Claim priority: among ready tasks, higher first.' },
    percentageComplete: { type: 'number' },
    statusText: { type: 'string', nullable: true },
    taskData: { description: 'The task input (free-form JSON).' },
    processingData: { description: 'The last checkpoint (free-form JSON).' },
    result: { description: 'The result (free-form JSON).' },
    invokeCount: COUNT,
    attempts: COUNT,
    maxRetries: COUNT,
    retryDelayMs: COUNT,
    backoff: { type: 'string', enum: ['fixed', 'exponential'] },
    maxRetryDelayMs: COUNT,
    timeoutMs: { type: 'integer', nullable: true },
    stallMs: { type: 'integer', nullable: true },
    failures: { type: 'array', items: failureRecord },
    failureCount: COUNT,
    lease: {
      type: 'object',
      nullable: true,
      additionalProperties: true,
      properties: {
        owner: { type: 'string' },
        token: COUNT,
        expiresAt: DATE,
        deadline: { ...NULLABLE_DATE, description: 'The sooner of timeoutAt and stallAt: past it the attempt is over (null: no limits).' },
        timeoutAt: NULLABLE_DATE,
        stallAt: NULLABLE_DATE,
      },
    },
    key: { type: 'string', nullable: true },
    runAfter: DATE,
    createdAt: DATE,
    updatedAt: DATE,
    startedAt: NULLABLE_DATE,
    lastInvokedAt: NULLABLE_DATE,
    endedAt: NULLABLE_DATE,
    durationMs: { type: 'number', nullable: true },
    rev: COUNT,
    allowedActions: {
      type: 'array',
      items: { type: 'string', enum: TASK_ACTIONS },
      description: 'The by-name actions the transition table allows from `state`.',
    },
  },
} as const;

const stateCounts = {
  type: 'object',
  additionalProperties: true,
  properties: Object.fromEntries(TASK_STATES.map((s) => [s, COUNT])),
} as const;

export const containerSummarySchema = {
  $id: 'ContainerSummary',
  title: 'ContainerSummary',
  type: 'object',
  additionalProperties: true,
  required: ['id', 'name', 'status', 'allowedActions'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    status: { type: 'string', enum: CONTAINER_STATUSES },
    failurePolicy: { type: 'string', enum: ['continue', 'fail-fast'] },
    metadata: { type: 'object', additionalProperties: true },
    taskTimeoutMs: { type: 'integer', nullable: true, description: '`timeoutMs` of its tasks that set none (null: the adding client\'s default).' },
    taskStallMs: { type: 'integer', nullable: true, description: '`stallMs` of its tasks that set none (null: the adding client\'s default).' },
    counts: stateCounts,
    total: COUNT,
    weightTotal: { type: 'number' },
    createdAt: DATE,
    updatedAt: DATE,
    startedAt: NULLABLE_DATE,
    endedAt: NULLABLE_DATE,
    rev: COUNT,
    paused: { type: 'boolean', description: 'True while the container is paused: no new claims; running tasks finish.' },
    pausedAt: { ...NULLABLE_DATE, description: 'When the current pause began (null when not paused).' },
    pausedBy: { type: 'string', nullable: true, description: 'Who paused it (the token id over HTTP), or null.' },
    percentageComplete: { type: 'number' },
    isComplete: { type: 'boolean' },
    eta: {
      type: 'object',
      nullable: true,
      additionalProperties: true,
      required: ['at', 'remainingMs', 'basis'],
      description:
        "A running pipeline run's estimated finish: per-step median durations of the pipeline's last 10 succeeded runs along the critical path of the unfinished steps (null: not a running pipeline run, or no history). See docs/schedules.md#eta.",
      properties: {
        at: DATE,
        remainingMs: COUNT,
        basis: { type: 'object', additionalProperties: true, properties: { runs: COUNT }, required: ['runs'] },
      },
    },
    allowedActions: {
      type: 'array',
      items: { type: 'string', enum: CONTAINER_ACTIONS },
      description: 'The container-wide actions that would move at least one task.',
    },
  },
} as const;

export const changeSchema = {
  $id: 'Change',
  title: 'Change',
  type: 'object',
  additionalProperties: true,
  required: ['kind', 'container', 'at', 'cursor'],
  properties: {
    kind: { type: 'string', enum: ['task', 'container'] },
    container: { type: 'string' },
    task: { type: 'string' },
    deleted: { type: 'boolean' },
    state: { type: 'string', enum: TASK_STATES },
    status: { type: 'string', enum: CONTAINER_STATUSES },
    percentageComplete: { type: 'number' },
    statusText: { type: 'string', nullable: true },
    rev: COUNT,
    at: DATE,
    cursor: { type: 'string' },
    counts: stateCounts,
    total: COUNT,
    paused: { type: 'boolean' },
    attempts: COUNT,
    failureCount: COUNT,
  },
} as const;

// --- schedules, pipelines and runs (routes/schedules.ts; docs/schedules.md) ----------------------

const OVERLAP = { type: 'string', enum: OVERLAP_POLICIES } as const;
const RUN_STATUSES = ['buffered', 'starting', 'started', 'finished', 'skipped', 'error'] as const;
const STRINGS = { type: 'array', items: { type: 'string' } } as const;

export const runSchema = {
  $id: 'Run',
  title: 'Run',
  type: 'object',
  additionalProperties: true,
  required: ['id', 'pipeline', 'slot', 'status', 'container'],
  properties: {
    id: { type: 'string' },
    pipeline: { type: 'string' },
    schedule: { type: 'string', nullable: true },
    slot: DATE,
    lastSlot: { ...DATE, description: 'Last slot the record stands for (skipped ranges), else `slot`.' },
    count: { ...COUNT, description: 'Slots the record stands for.' },
    kind: { type: 'string', enum: ['scheduled', 'trigger', 'backfill'] },
    status: { type: 'string', enum: RUN_STATUSES },
    reason: { type: 'string', nullable: true, description: 'Why it was skipped (`overlap`, `missed`, `paused`) or is in `error`.' },
    container: { type: 'string', description: 'The run\'s container, `<pipeline>@<slot ISO>` (exists once started).' },
    outcome: { type: 'string', enum: CONTAINER_STATUSES, nullable: true },
    containerStatus: { type: 'string', enum: CONTAINER_STATUSES, nullable: true },
    definitionHash: { type: 'string', nullable: true },
    steps: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: true,
        properties: {
          name: { type: 'string' },
          dependsOn: STRINGS,
          state: { type: 'string', enum: TASK_STATES, nullable: true },
          durationMs: { type: 'number', nullable: true },
        },
      },
    },
    changes: {
      type: 'object',
      nullable: true,
      additionalProperties: true,
      description: 'What changed in the definition since the previous run with one (null: same hash, or no previous run).',
      properties: {
        fromHash: { type: 'string' },
        toHash: { type: 'string' },
        added: STRINGS,
        removed: STRINGS,
        dependenciesChanged: {
          type: 'array',
          items: { type: 'object', additionalProperties: true, properties: { name: { type: 'string' }, from: STRINGS, to: STRINGS } },
        },
        settingsChanged: STRINGS,
      },
    },
    decidedAt: DATE,
    startedAt: NULLABLE_DATE,
    finishedAt: NULLABLE_DATE,
  },
} as const;

export const scheduleSchema = {
  $id: 'Schedule',
  title: 'Schedule',
  type: 'object',
  additionalProperties: true,
  required: ['id', 'name', 'pipeline', 'cron', 'timezone', 'paused', 'nextFireTimes', 'recentSkipped'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    pipeline: { type: 'string' },
    cron: { type: 'string' },
    timezone: { type: 'string' },
    overlap: OVERLAP,
    catchupWindowMs: COUNT,
    jitterMs: COUNT,
    paused: { type: 'boolean' },
    note: { type: 'string', nullable: true, description: 'Why it was paused (the caller\'s note, or `run failed: <container>`).' },
    pauseOnFailure: { type: 'boolean' },
    nextSlot: NULLABLE_DATE,
    nextFireAt: { ...NULLABLE_DATE, description: '`nextSlot` plus its jitter.' },
    createdAt: DATE,
    updatedAt: DATE,
    nextFireTimes: { type: 'array', items: DATE, description: 'The next 5 fire times, from `nextFireAt` on (croner).' },
    recentSkipped: { type: 'array', items: { $ref: 'Run#' }, description: 'The newest 5 skipped records, newest first.' },
  },
} as const;

export const runsQuery = query({ limit: LIMIT, cursor: CURSOR });
export const durationsQuery = query({ limit: LIMIT });
export const putScheduleBody = body(
  {
    pipeline: { ...NAME, description: 'The pipeline (default: the stored schedule\'s, else the schedule\'s name). It need not be defined in the serving process; it must not contain `@`.' },
    cron: { type: 'string', minLength: 1, maxLength: 200, description: '5 fields (or 6 with leading seconds), or an `@hourly`-style nickname.' },
    timezone: { type: 'string', minLength: 1, maxLength: 100, description: 'IANA time zone (default UTC).' },
    overlap: OVERLAP,
    catchupWindowMs: { type: 'integer', minimum: 1000, maximum: 10 * YEAR_MS },
    jitterMs: { type: 'integer', minimum: 0, maximum: 86_400_000 },
    paused: { type: 'boolean', description: 'Create it paused (on creation only; an existing schedule keeps its state).' },
    pauseOnFailure: { type: 'boolean' },
  },
  ['cron'],
);
export const pauseScheduleBody = optionalBody(body({ note: { type: 'string', maxLength: 1000, pattern: NO_NUL } }));
export const backfillBody = body(
  {
    // Not `format: date-time` (the request validator has no formats): the route parses it, 400 if invalid.
    from: { type: 'string', minLength: 1, maxLength: 64, description: 'ISO-8601 date-time.' },
    to: { type: 'string', minLength: 1, maxLength: 64, description: 'ISO-8601 date-time, in the past; at most 10 000 slots in [from, to].' },
    overlap: OVERLAP,
  },
  ['from', 'to'],
);

/** Registered once with `app.addSchema`; routes refer to them as `{ $ref: 'TaskRecord#' }`. */
export const sharedSchemas = [taskRecordSchema, containerSummarySchema, changeSchema, runSchema, scheduleSchema] as const;

const TASK = { $ref: 'TaskRecord#' } as const;
const CONTAINER = { $ref: 'ContainerSummary#' } as const;

// --- responses ----------------------------------------------------------------------------------

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'PTS_VALIDATION (schema or library validation, malformed cursor) or PTS_BAD_REQUEST (malformed JSON)',
  401: 'PTS_UNAUTHORIZED: no token, or an unknown or revoked one',
  403: "PTS_FORBIDDEN: the token's scope is too weak, or the container is outside its prefix",
  404: 'PTS_NOT_FOUND: no such container or task',
  409: 'PTS_INVALID_TRANSITION, PTS_LEASE_LOST (PTS_TASK_TIMEOUT / PTS_TASK_STALLED: the lease ended at its deadline) or PTS_DUPLICATE: refused, nothing written',
  413: 'PTS_PAYLOAD_TOO_LARGE: the body is above the body limit',
  415: 'PTS_BAD_REQUEST: unsupported content type',
  422: "PTS_INPUTS_TOO_LARGE: the claimed task's inputs are above maxInputsBytes; the task was failed for good (claim again)",
  429: 'PTS_TOO_MANY_STREAMS: the token holds its maximum of event streams (see Retry-After)',
  503: 'PTS_UNAVAILABLE: the database is unreachable, or the server is closing (then, on a new connection, fastify\'s own `{ error: "Service Unavailable", statusCode: 503 }`)',
};

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

/**
 * The 503 fastify itself sends on a connection that arrives while the server is closing
 * (`return503OnClosing`), before any of our code runs.
 */
const closingSchema = {
  type: 'object',
  required: ['error', 'statusCode'],
  properties: {
    error: { type: 'string', enum: ['Service Unavailable'] },
    message: { type: 'string' },
    statusCode: { type: 'integer', enum: [503] },
  },
} as const;

/** Error responses `{ error: { code, message } }` for the given statuses. */
export function errors(...statuses: number[]): Record<number, unknown> {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      s === 503
        ? { description: ERROR_DESCRIPTIONS[s], anyOf: [errorSchema, closingSchema] }
        : { ...errorSchema, description: ERROR_DESCRIPTIONS[s] ?? 'Error' },
    ]),
  );
}

/** The errors of an authenticated route: 401 and 503, plus `more`. */
export function authErrors(...more: number[]): Record<number, unknown> {
  return errors(...[400, 401, ...more, 503].sort((a, b) => a - b).filter((s, i, a) => a.indexOf(s) === i));
}

function ok(description: string, properties: Record<string, unknown>, required = Object.keys(properties)) {
  return { description, type: 'object', additionalProperties: true, properties, required };
}

export const noContent = { description: 'No content', type: 'null' } as const;

const page = (items: unknown, description: string) =>
  ok(description, { items: { type: 'array', items }, nextCursor: { type: 'string', nullable: true } });

export const containerPage = page(CONTAINER, 'A page of containers, newest first');
export const taskPage = page(TASK, 'A page of tasks, in insertion order');
export const containerAnswer = { ...CONTAINER, description: 'The container' };
export const taskAnswer = { ...TASK, description: 'The task' };
export const putContainerAnswer = (description: string) =>
  ok(description, { container: CONTAINER, created: { type: 'boolean' } });
export const tasksAnswer = ok('The tasks of the batch (existing ones as they are)', {
  tasks: { type: 'array', items: TASK },
});
export const oneTaskAnswer = ok('The task after the transition', { task: TASK });
export const spawnAnswer = ok('The children of the batch (existing ones as they are) and how many this call created', {
  tasks: { type: 'array', items: TASK },
  created: COUNT,
});
export const childrenAnswer = ok('The children the task spawned, counted per state', {
  parent: { type: 'string' },
  counts: stateCounts,
  total: COUNT,
  done: { ...COUNT, description: 'Children that succeeded or were skipped' },
});
export const affectedAnswer = ok('How many tasks moved', { affected: COUNT });
export const rerunAnswer = ok('The plan of the re-run (applied unless dryRun)', {
  step: { type: 'string' },
  downstream: { type: 'boolean' },
  dryRun: { type: 'boolean', description: 'True: nothing was written.' },
  reset: { ...{ type: 'array', items: { type: 'string' } }, description: 'Tasks reset to pending, whatever their state, in dependency order (the step first).' },
  interrupted: { ...{ type: 'array', items: { type: 'string' } }, description: 'Planned tasks that were running: their workers lose their leases.' },
  kept: { ...{ type: 'array', items: { type: 'string' } }, description: 'Every other task of the container: untouched.' },
});
export const resumeAnswer = ok('What the recovery sweep did', {
  affected: COUNT,
  reconciled: { type: 'boolean' },
  unblocked: COUNT,
});
export const whoamiAnswer = ok('The calling token', {
  id: { type: 'string' },
  scope: { type: 'string', enum: ['read', 'worker', 'admin'] },
  prefix: { type: 'string' },
});
const workerConfig = {
  pollIntervalMs: { type: 'integer', minimum: 0 },
  custom: { type: 'object', additionalProperties: true },
};
export const workerConfigAnswer = ok('The worker configuration', workerConfig);
export const claimAnswer = ok('The claimed task and its lease', {
  task: TASK,
  token: { ...COUNT, description: 'The fencing token: send it with every heartbeat/succeed/fail' },
  leaseExpiresAt: NULLABLE_DATE,
  deadline: { ...NULLABLE_DATE, description: 'When the attempt ends whatever its heartbeats say (`timeoutMs`/`stallMs`); null: no limits.' },
  config: { type: 'object', nullable: true, additionalProperties: true, properties: workerConfig },
  inputs: {
    type: 'object',
    additionalProperties: true,
    description:
      "Only with `includeInputs: true`: each dependency's `result` by dependency name (null if it stored none); `{}` without dependencies.",
  },
}, ['task', 'token', 'leaseExpiresAt', 'config']);
export const heartbeatAnswer = ok('The renewed lease', {
  leaseExpiresAt: DATE,
  deadline: { ...NULLABLE_DATE, description: 'The attempt\'s deadline after this heartbeat (progress moves the stall part); null: no limits.' },
});
export const changesAnswer = ok('A page of the changes feed', {
  changes: { type: 'array', items: { $ref: 'Change#' } },
  next: { type: 'string', description: 'Pass as `since` to continue' },
});
export const eventStream = {
  description:
    'Server-Sent Events: `event:` task|container|error, `data:` a Change as JSON, `id:` its cursor',
  content: { 'text/event-stream': { schema: { type: 'string' } } },
};
export const healthAnswer = ok('The process answers', { ok: { type: 'boolean', enum: [true] } });
export const readyAnswer = ok(
  'The database answers a ping',
  {
    ok: { type: 'boolean', enum: [true] },
    clock: {
      type: 'object',
      nullable: true,
      description:
        "The service's measured offset to the database server's clock, which every lease expiry, deadline and stored time is computed on (null: not measured yet, or serverClock off)",
      properties: {
        offsetMs: { type: 'number', description: 'Server time minus this process clock (ms)' },
        errorBoundMs: { type: 'number', nullable: true, description: 'The true offset is within offsetMs ± errorBoundMs' },
        rttMs: { type: 'number', description: 'Round trip of the sample used (ms)' },
        sampledAt: DATE,
        source: { type: 'string', enum: ['server', 'local'] },
      },
      required: ['offsetMs', 'errorBoundMs', 'rttMs', 'sampledAt', 'source'],
    },
  },
  ['ok'],
);
export const notReadyAnswer = {
  description: 'The database is unreachable (or the server is closing)',
  anyOf: [
    {
      type: 'object',
      required: ['error'],
      properties: { ok: { type: 'boolean', enum: [false] }, error: errorSchema.properties.error },
    },
    closingSchema,
  ],
};
export const metricsAnswer = {
  description:
    'Prometheus text exposition format: pts_tasks{state}, pts_containers, pts_task_transitions_total{transition}, pts_task_failures_total{final}, pts_lease_expiries_total, pts_step_duration_seconds{group,step,outcome} and pts_queue_wait_seconds{group,step} (histograms of the attempts and claims this process performed; bounded labels, docs/api.md#metrics), pts_step_label_overflow_total, pts_clock_offset_seconds, pts_clock_offset_error_bound_seconds, pts_http_request_duration_seconds{method,route,status}',
  content: { 'text/plain': { schema: { type: 'string' } } },
};
export const openapiAnswer = {
  description: 'This OpenAPI 3.0.3 document',
  type: 'object',
  additionalProperties: true,
};

/**
 * Turns the draft-07 parts of the route schemas into OpenAPI 3.0.3 (the document @fastify/swagger
 * builds keeps them): a numeric `exclusiveMinimum`/`exclusiveMaximum` becomes the boolean form
 * next to `minimum`/`maximum`, and an empty `required` is dropped. Returns a new object.
 */
export function toOpenApi30<T>(doc: T): T {
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v === null || typeof v !== 'object') return v;
    const out: Record<string, unknown> = {};
    for (const [k, child] of Object.entries(v)) out[k] = walk(child);
    if (typeof out.exclusiveMinimum === 'number') {
      out.minimum = out.exclusiveMinimum;
      out.exclusiveMinimum = true;
    }
    if (typeof out.exclusiveMaximum === 'number') {
      out.maximum = out.exclusiveMaximum;
      out.exclusiveMaximum = true;
    }
    if (Array.isArray(out.required) && out.required.length === 0) delete out.required;
    const requestBody = out.requestBody as
      { required?: boolean; content?: Record<string, { schema?: Record<string, unknown> }> } | undefined;
    const media = requestBody?.content ? Object.values(requestBody.content) : [];
    if (media.some((m) => m.schema?.[OPTIONAL_BODY])) {
      requestBody!.required = false;
      for (const m of media) if (m.schema) delete m.schema[OPTIONAL_BODY];
    }
    return out;
  };
  return walk(doc) as T;
}

// --- schedule responses (routes/schedules.ts) ----------------------------------------------------

const SCHEDULE = { $ref: 'Schedule#' } as const;
const RUN = { $ref: 'Run#' } as const;
export const scheduleList = ok('Every schedule the token may see, by name', { items: { type: 'array', items: SCHEDULE } });
export const scheduleAnswer = (description: string) => ({ ...SCHEDULE, description });
export const runPage = page(RUN, 'A page of the run history, newest slot first');
export const triggerAnswer = ok('The record of the triggered slot', { run: RUN });
export const backfillAnswer = ok('The record of every slot in the range (already decided ones as they are), oldest first', {
  items: { type: 'array', items: RUN },
});
export const durationsAnswer = {
  description: "Per step, `{ slot, durationMs }` over the pipeline's newest runs (steps that did not finish are left out)",
  type: 'object',
  additionalProperties: {
    type: 'array',
    items: { type: 'object', additionalProperties: true, properties: { slot: DATE, durationMs: { type: 'number' } }, required: ['slot', 'durationMs'] },
  },
} as const;
/** A body-less action's body: `{}` or none. */
export const optionalEmptyBody = optionalBody(body({}));

// --- step logs (lib/logs.ts, lib/http/routes/logs.ts) -------------------------------------------

const LOG_LEVEL = { type: 'string', enum: LOG_LEVELS } as const;
export const logBody = body(
  {
    token: { ...TOKEN, description: 'The lease token of the held task' },
    lines: {
      type: 'array',
      minItems: 1,
      maxItems: 1000,
      items: body(
        {
          level: LOG_LEVEL,
          message: { type: 'string', maxLength: 100_000, description: 'Stored cut to 2,000 characters (saying how many were cut); NUL and lone surrogates replaced.' },
          fields: { type: 'object', additionalProperties: true, description: 'Small JSON object: at most 2,000 bytes as JSON; keys without a leading `$` or dots.' },
        },
        ['level', 'message'],
      ),
    },
  },
  ['token', 'lines'],
);
export const logAnswer = ok('The lines were stored (one batch)', { accepted: COUNT });
export const logsQuery = query({
  attempt: { type: 'integer', minimum: 0, description: 'Only this attempt (an `invokeCount`).' },
  cursor: { ...CURSOR, description: '`nextCursor` of an earlier page: only lines logged after it.' },
  limit: { ...LIMIT, description: 'At most this many lines (default 200).' },
});
const LOG_LINE = ok('One log line', {
  seq: { ...COUNT, description: 'Position in the task’s log (all attempts), from 0' },
  attempt: { ...COUNT, description: 'The attempt (the task’s `invokeCount` when claimed)' },
  level: LOG_LEVEL,
  message: { type: 'string' },
  fields: { type: 'object', additionalProperties: true, nullable: true },
  time: DATE,
});
export const logPage = ok('A page of the task’s step logs, oldest first', {
  lines: { type: 'array', items: LOG_LINE },
  nextCursor: { type: 'string', description: 'Pass back as `cursor` for the lines after this page (also when it is empty: follow by polling)' },
  hasMore: { type: 'boolean', description: 'More lines are stored after this page' },
  total: { ...COUNT, description: 'Lines logged (of `attempt`, or of all), kept or not' },
  dropped: { ...COUNT, description: 'Of those, lines not kept: dropped before they were written or trimmed past the bound' },
  attempts: { type: 'array', items: COUNT, description: 'The attempts that logged anything, ascending' },
});
export const logStream = {
  description: 'Server-Sent Events: `event: logs`, `data:` a log page as JSON (only pages with lines), `id:` its `nextCursor` (send it back as `Last-Event-ID`)',
  content: { 'text/event-stream': { schema: { type: 'string' } } },
};
