/**
 * `persistent-task-status/server`: the HTTP service over a {@link Client} (fastify), the
 * dashboard it serves, its Prometheus metrics and the API tokens it authenticates with. A separate
 * entry so that the library entry loads none of fastify, ajv, pino or prom-client.
 */
export {
  buildServer,
  startServer,
  InsecureBindError,
  type ServerOptions,
  type StartServerOptions,
  type RunningServer,
} from './http/server';
export { registerDashboard, type DashboardOptions } from './dashboard/plugin';
export { createMetrics, STEP_DURATION_BUCKETS, QUEUE_WAIT_BUCKETS, type Metrics, type MetricsOptions } from './metrics';
export type { LabelOptions as MetricLabelOptions } from './metric-labels';
export {
  TokenStore,
  TOKEN_SCOPES,
  scopeAllows,
  type TokenRecord,
  type TokenScope,
  type CreateTokenOptions,
} from './auth';
