/**
 * The HTTP service: a fastify app over a {@link Client}. `buildServer` assembles it (routes,
 * schemas, auth, errors, OpenAPI, metrics, dashboard); `startServer` listens and refuses to serve
 * a non-loopback address without authentication.
 */
import { setMaxListeners } from 'node:events';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import type { Client } from '../client';
import type { TokenStore } from '../auth';
import { createMetrics, type Metrics, type MetricsOptions } from '../metrics';
import Ajv from 'ajv';
import { errorHandler, HttpError, HTTP_ERROR_CODES } from './errors';
import { registerAuth } from './auth-plugin';
import type { HttpContext } from './context';
import { FeedHub } from './feed-hub';
import { registerContainerRoutes } from './routes/containers';
import { registerWorkerRoutes } from './routes/worker';
import { registerChangesRoutes } from './routes/changes';
import { registerScheduleRoutes } from './routes/schedules';
import { registerHealthRoutes } from './routes/health';
import { registerAlertRoutes } from './routes/alerts';
import { registerLogRoutes } from './routes/logs';
import { registerRetentionRoutes } from './routes/retention';
import { registerJsonParser } from './json-body';
import { resolveTimeouts, type TimeoutOptions } from './timeouts';
import { trackRouteMethods } from './allowed-methods';
import * as S from './schemas';

/** Options of {@link buildServer}. */
export interface ServerOptions extends TimeoutOptions {
  client: Client;
  /** Token authentication, or `false` to disable it (only allowed on loopback hosts by `startServer`). */
  auth?: { tokens: TokenStore } | false;
  /** Fastify logger: `true`, pino options, or `false`. Tokens are always redacted. @defaultValue false */
  logger?: boolean | Record<string, unknown>;
  /** Largest accepted request body in bytes (larger is 413). @defaultValue 8 MiB */
  bodyLimit?: number;
  /** Serve the dashboard at `/`. @defaultValue true */
  dashboard?: boolean;
  /** Require a token for `/metrics` (read scope). @defaultValue false */
  metricsAuth?: boolean;
  /** Metrics registry wrapper to use. @defaultValue a new one for this server, made with {@link metricsOptions} */
  metrics?: Metrics;
  /** Options of the server's own metrics (label bounds, buckets; ignored with `metrics`). @defaultValue {} */
  metricsOptions?: MetricsOptions;
  /** How often long-poll claims and SSE streams poll the database. @defaultValue 250 */
  pollMs?: number;
  /** SSE heartbeat comment interval. @defaultValue 15_000 */
  sseHeartbeatMs?: number;
  /** Changes-feed safety horizon behind the server clock. @defaultValue 250 */
  horizonMs?: number;
  /** Concurrent SSE streams one token may hold; more are answered 429. @defaultValue 100 */
  sseMaxStreamsPerToken?: number;
  /** Unsent bytes an SSE stream may hold before it is dropped (told to reconnect). @defaultValue 1 MiB */
  sseMaxBufferedBytes?: number;
}

/** Options of {@link startServer}. */
export interface StartServerOptions extends ServerOptions {
  /** @defaultValue '127.0.0.1' */
  host?: string;
  /** @defaultValue 0 (any free port) */
  port?: number;
}

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  /** Stops accepting connections, ends long-polls and SSE streams, waits for in-flight requests. */
  close(): Promise<void>;
}

/** `startServer` was asked to listen on a non-loopback address with `auth: false`. */
export class InsecureBindError extends Error {
  readonly code = 'PTS_INSECURE_BIND';
  constructor(host: string) {
    super(
      `refusing to listen on ${host} without authentication: pass auth: { tokens } or bind to 127.0.0.1/::1/localhost`,
    );
    this.name = new.target.name;
  }
}

export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || h === '::ffff:127.0.0.1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** Removes `access_token` from a URL for logging. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]access_token=)[^&#]*/gi, '$1[REDACTED]');
}

function loggerOptions(logger: ServerOptions['logger']): FastifyServerOptions['logger'] {
  if (!logger) return false;
  const base = logger === true ? {} : logger;
  return {
    ...base,
    redact: {
      paths: ['req.headers.authorization', 'req.query.access_token', 'headers.authorization'],
      censor: '[REDACTED]',
    },
    serializers: {
      req(req: {
        method?: string;
        url?: string;
        hostname?: string;
        ip?: string;
        socket?: { remotePort?: number };
      }) {
        return {
          method: req.method,
          url: redactUrl(req.url ?? ''),
          host: req.hostname,
          remoteAddress: req.ip,
        };
      },
    },
  } as FastifyServerOptions['logger'];
}

type DashboardFn = (app: FastifyInstance) => unknown;

/** The dashboard plugin if it is installed (it lives in lib/dashboard). */
function loadDashboard(): DashboardFn | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('../dashboard/plugin') as { registerDashboard?: DashboardFn };
    return typeof mod.registerDashboard === 'function' ? mod.registerDashboard : null;
  } catch (err) {
    if (
      (err as { code?: string }).code === 'MODULE_NOT_FOUND' &&
      /dashboard[\\/]plugin/.test(String((err as Error).message))
    )
      return null;
    throw err;
  }
}

/** Builds the fastify app (not listening). Close it with `app.close()`. */
export async function buildServer(opts: ServerOptions): Promise<FastifyInstance> {
  if (!opts || !opts.client) throw new TypeError('buildServer: client is required');
  const tokens = opts.auth === false || opts.auth === undefined ? null : opts.auth.tokens;
  if (opts.auth !== false && opts.auth !== undefined && !tokens)
    throw new TypeError('buildServer: auth.tokens is required');
  const timeouts = resolveTimeouts(opts, opts.sseHeartbeatMs ?? 15_000);
  const app = Fastify({
    logger: loggerOptions(opts.logger),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // node applies requestTimeout and headersTimeout to receiving a request only: a long-poll
    // claim or an SSE stream is an answer and is not cut (spec/http/bodies.spec.ts).
    requestTimeout: timeouts.requestTimeout,
    connectionTimeout: timeouts.connectionTimeout,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    http: { headersTimeout: timeouts.headersTimeout, connectionsCheckingInterval: timeouts.checkingIntervalMs },
    // Names may be 512 characters; fully percent-encoded that is 4608 in a path segment.
    routerOptions: { maxParamLength: 4608 },
    // Router-level errors (bad percent-encoding, …) get the same JSON error shape as the rest.
    frameworkErrors: (err, request, reply) => errorHandler(err, request, reply),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
  });
  // Reject unknown fields instead of dropping them. Query strings and path params are text, so
  // they are coerced (to numbers, to arrays); JSON bodies are typed already and are not: a
  // string where a number belongs is a 400, not a silent conversion.
  const ajvOptions = { removeAdditional: false, useDefaults: true, allErrors: false, strict: false } as const;
  const bodyAjv = new Ajv({ ...ajvOptions, coerceTypes: false });
  const textAjv = new Ajv({ ...ajvOptions, coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema));
  const shutdown = new AbortController();
  // Every open long-poll adds one listener and removes it when it ends, so the count follows the
  // open requests (no leak); the default limit of 10 only produced MaxListenersExceededWarning.
  setMaxListeners(0, shutdown.signal);
  const ownMetrics = !opts.metrics;
  const metrics = opts.metrics ?? createMetrics(opts.client, opts.metricsOptions);
  const pollMs = opts.pollMs ?? 250;
  const sseHeartbeatMs = opts.sseHeartbeatMs ?? 15_000;
  const horizonMs = opts.horizonMs ?? 250;
  const sseMaxStreamsPerToken = opts.sseMaxStreamsPerToken ?? 100;
  const feed = new FeedHub({
    client: opts.client,
    pollMs,
    horizonMs,
    heartbeatMs: sseHeartbeatMs,
    maxStreamsPerToken: sseMaxStreamsPerToken,
    maxBufferedBytes: opts.sseMaxBufferedBytes ?? 1024 * 1024,
  });
  const ctx: HttpContext = {
    client: opts.client,
    tokens,
    metrics,
    shutdown: shutdown.signal,
    pollMs,
    sseHeartbeatMs,
    horizonMs,
    feed,
    sseMaxStreamsPerToken,
  };
  app.addHook('preClose', async () => {
    shutdown.abort();
    await feed.close();
  });
  // While closing, responses close their connection so keep-alive sockets do not hold close() up.
  app.addHook('onSend', async (_request, reply) => {
    if (shutdown.signal.aborted) void reply.header('connection', 'close');
  });
  app.addHook('onClose', async () => {
    if (ownMetrics) metrics.close();
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpDuration.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  app.setErrorHandler(errorHandler);
  registerJsonParser(app);
  // A known path with another method is 405 with `Allow`; an unknown path is 404.
  const routeMethods = trackRouteMethods(app);
  app.setNotFoundHandler((request, reply) => {
    const allow = routeMethods.allowed(request.url.split('?')[0]);
    if (allow.length > 0) {
      void reply
        .code(405)
        .header('allow', allow.join(', '))
        .send({
          error: {
            code: 'PTS_METHOD_NOT_ALLOWED',
            message: `${request.method} is not allowed here (allowed: ${allow.join(', ')})`,
          },
        });
      return;
    }
    void reply.code(404).send({
      error: { code: 'PTS_NOT_FOUND', message: `no route ${request.method} ${redactUrl(request.url)}` },
    });
  });

  for (const schema of S.sharedSchemas) app.addSchema(schema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'persistent-task-status',
        version: '1',
        description:
          'Every error is `{ "error": { "code", "message" } }` (docs/http.md#errors). Any route may also answer ' +
          '500 PTS_INTERNAL (a bug, logged), and every route 503 while the server is closing. A path that exists ' +
          'answers other methods with 405 and `Allow`. A request not received within `requestTimeout` is cut ' +
          'with a bare 408 from node (docs/http.md).',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    // Shared schemas are components named by their $id (TaskRecord, …), not def-0, def-1, ….
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    // The route schemas are draft-07 (what Ajv checks); the document is OpenAPI 3.0.3.
    transformObject: (doc) => S.toOpenApi30('openapiObject' in doc ? doc.openapiObject : doc.swaggerObject),
  });
  registerAuth(app, ctx);
  registerHealthRoutes(app, ctx, { metricsAuth: opts.metricsAuth ?? false });
  registerContainerRoutes(app, ctx);
  registerWorkerRoutes(app, ctx);
  registerChangesRoutes(app, ctx);
  registerScheduleRoutes(app, ctx);
  registerAlertRoutes(app, ctx);
  registerLogRoutes(app, ctx);
  registerRetentionRoutes(app, ctx);
  if (opts.dashboard !== false) {
    const dashboard = loadDashboard();
    if (dashboard) await dashboard(app);
  }
  app.get(
    '/openapi.json',
    {
      config: { scope: 'none' },
      schema: {
        tags: ['health'],
        summary: 'This OpenAPI document',
        security: [],
        response: { 200: S.openapiAnswer, ...S.errors(503) },
      },
    },
    async () => app.swagger(),
  );
  await app.ready();
  return app;
}

/** Builds the app and listens. Throws {@link InsecureBindError} for `auth: false` on a non-loopback host. */
export async function startServer(opts: StartServerOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  if ((opts.auth === false || opts.auth === undefined) && !isLoopbackHost(host))
    throw new InsecureBindError(host);
  const app = await buildServer(opts);
  try {
    await app.listen({ host, port: opts.port ?? 0 });
  } catch (err) {
    await app.close();
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const h = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${h}:${port}`,
    app,
    close: () => (closing ??= app.close().then(() => undefined)),
  };
}

export { HttpError, HTTP_ERROR_CODES };
