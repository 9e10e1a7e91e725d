/**
 * Prometheus metrics of a client (and of the HTTP service using it), on a prom-client registry.
 * Task counts per state are read from the containers' counters at scrape time; transitions,
 * failures and lease expiries are counted from the client's events (this process only).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Client } from './client';
import type { PtsEventMap, PtsEventName } from './events';
import { TASK_STATES } from './states';

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Registry to register on. @defaultValue a new Registry */
  registry?: Registry;
  /** Also collect Node.js process metrics. @defaultValue false */
  processMetrics?: boolean;
  /** Metric name prefix. @defaultValue 'pts_' */
  prefix?: string;
}

export interface Metrics {
  readonly registry: Registry;
  /** HTTP request duration histogram (labels: method, route, status). */
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  /** Prometheus text exposition. */
  text(): Promise<string>;
  /** Stops listening to the client's events. */
  close(): void;
}

const TRANSITION_EVENTS: Array<[PtsEventName, string]> = [
  ['task:added', 'added'],
  ['task:started', 'started'],
  ['task:succeeded', 'succeeded'],
  ['task:retrying', 'retrying'],
  ['task:failed', 'failed'],
  ['task:cancelled', 'cancelled'],
  ['task:skipped', 'skipped'],
  ['task:reset', 'reset'],
  ['task:retried', 'retried'],
  ['task:released', 'released'],
  ['task:deleted', 'deleted'],
  // attempts ended by their deadline (timeoutMs / stallMs)
  ['task:timeout', 'timeout'],
  ['task:stalled', 'stalled'],
];

export function createMetrics(client: Client, opts: MetricsOptions = {}): Metrics {
  const registry = opts.registry ?? new Registry();
  const p = opts.prefix ?? 'pts_';
  if (opts.processMetrics) collectDefaultMetrics({ register: registry, prefix: p });

  new Gauge({
    name: `${p}tasks`,
    help: 'Tasks per state, summed over all containers (from the container counters, read at scrape time)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const { tasks } = await client.totals();
      for (const s of TASK_STATES) this.set({ state: s }, tasks[s]);
    },
  });
  new Gauge({
    name: `${p}containers`,
    help: 'Containers (read at scrape time)',
    registers: [registry],
    async collect() {
      this.set((await client.totals()).containers);
    },
  });
  new Gauge({
    name: `${p}clock_offset_seconds`,
    help: "Measured offset of this process's clock to the database server's (server minus local), which lease expiries and stored times are computed on",
    registers: [registry],
    collect() {
      const o = client.clockOffset();
      if (o) this.set(o.offsetMs / 1000);
    },
  });
  new Gauge({
    name: `${p}clock_offset_error_bound_seconds`,
    help: 'The true clock offset lies within pts_clock_offset_seconds ± this (half the round trip of the measurement + clock resolutions)',
    registers: [registry],
    collect() {
      const o = client.clockOffset();
      if (o?.errorBoundMs != null) this.set(o.errorBoundMs / 1000);
    },
  });
  const transitions = new Counter({
    name: `${p}task_transitions_total`,
    help: 'Task transitions performed by this process',
    labelNames: ['transition'],
    registers: [registry],
  });
  const failures = new Counter({
    name: `${p}task_failures_total`,
    help: 'Failed task attempts recorded by this process (retried or final)',
    labelNames: ['final'],
    registers: [registry],
  });
  const expiries = new Counter({
    name: `${p}lease_expiries_total`,
    help: 'Leases found expired by this process (sweep)',
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: `${p}http_request_duration_seconds`,
    help: 'HTTP request duration',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  const detach: Array<() => void> = [];
  const listen = <E extends PtsEventName>(event: E, fn: (p: PtsEventMap[E]) => void): void => {
    client.on(event, fn);
    detach.push(() => client.off(event, fn));
  };
  for (const [event, label] of TRANSITION_EVENTS) listen(event, () => transitions.inc({ transition: label }));
  listen('task:retrying', () => failures.inc({ final: 'false' }));
  listen('task:failed', () => failures.inc({ final: 'true' }));
  listen('lease:expired', () => expiries.inc());

  return {
    registry,
    httpDuration,
    text: () => registry.metrics(),
    close: () => {
      for (const d of detach.splice(0)) d();
    },
  };
}
