/**
 * Prometheus metrics of a client (and of the HTTP service using it), on a prom-client registry.
 * Task counts per state are read from the containers' counters at scrape time; transitions,
 * failures, lease expiries, step durations and queue waits are observed from the client's events,
 * so they count the transitions this process performed (its runners and library calls, the HTTP
 * workers and admin calls it serves, the sweeps it runs) — once each; sum them over every process
 * that does work (docs/api.md "Metrics"). The times are the task's stored ones, as written by the
 * transition (claim `lastInvokedAt`, ready `max(runAfter, unblockedAt)`, end `updatedAt`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Client } from './client';
import type { AttemptTiming, PtsEventMap, PtsEventName } from './events';
import {
  LabelCap,
  OTHER_LABEL,
  containerGroup,
  resolveLabelOptions,
  stepLabel,
  type LabelOptions,
  type ResolvedLabelOptions,
} from './metric-labels';
import { ValidationError } from './errors';
import { TASK_STATES } from './states';
import type { TaskRecord } from './types';

/** Buckets (seconds) of `pts_step_duration_seconds`: batch steps run from milliseconds to hours. */
export const STEP_DURATION_BUCKETS: readonly number[] = Object.freeze([
  0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600,
]);
/** Buckets (seconds) of `pts_queue_wait_seconds`. */
export const QUEUE_WAIT_BUCKETS: readonly number[] = Object.freeze([
  0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400,
]);

/** Options of {@link createMetrics}. */
export interface MetricsOptions extends LabelOptions {
  /** Buckets of `pts_step_duration_seconds`, seconds. @defaultValue {@link STEP_DURATION_BUCKETS} */
  stepDurationBuckets?: readonly number[];
  /** Buckets of `pts_queue_wait_seconds`, seconds. @defaultValue {@link QUEUE_WAIT_BUCKETS} */
  queueWaitBuckets?: readonly number[];
  /** Registry to register on. @defaultValue a new Registry */
  registry?: Registry;
  /** Also collect Node.js process metrics. @defaultValue false */
  processMetrics?: boolean;
  /** Metric name prefix. @defaultValue 'pts_' */
  prefix?: string;
}

/** @internal {@link MetricsOptions} with every default applied. */
export interface ResolvedMetricsOptions {
  registry: Registry;
  processMetrics: boolean;
  prefix: string;
  labels: ResolvedLabelOptions;
  stepDurationBuckets: number[];
  queueWaitBuckets: number[];
}

function buckets(b: readonly number[] | undefined, dflt: readonly number[], path: string): number[] {
  const out = [...(b ?? dflt)];
  if (
    out.length === 0 ||
    out.some((x, i) => typeof x !== 'number' || !Number.isFinite(x) || x <= 0 || (i > 0 && x <= out[i - 1]))
  )
    throw new ValidationError(`${path} must be a non-empty list of increasing positive numbers`, { path });
  return out;
}

/** @internal */
export function resolveMetricsOptions(o: MetricsOptions = {}): ResolvedMetricsOptions {
  return {
    registry: o.registry ?? new Registry(),
    processMetrics: o.processMetrics ?? false,
    prefix: o.prefix ?? 'pts_',
    labels: resolveLabelOptions(o),
    stepDurationBuckets: buckets(o.stepDurationBuckets, STEP_DURATION_BUCKETS, 'stepDurationBuckets'),
    queueWaitBuckets: buckets(o.queueWaitBuckets, QUEUE_WAIT_BUCKETS, 'queueWaitBuckets'),
  };
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

export function createMetrics(client: Client, options: MetricsOptions = {}): Metrics {
  const opts = resolveMetricsOptions(options);
  const registry = opts.registry;
  const p = opts.prefix;
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

  const stepDuration = new Histogram({
    name: `${p}step_duration_seconds`,
    help: 'Duration of task attempts ended by this process (claim to end), by container group, step and outcome',
    labelNames: ['group', 'step', 'outcome'] as const,
    buckets: opts.stepDurationBuckets,
    registers: [registry],
  });
  const queueWait = new Histogram({
    name: `${p}queue_wait_seconds`,
    help: 'Time from ready (runAfter, or the last dependency done) to claimed, of the claims made by this process, by container group and step',
    labelNames: ['group', 'step'] as const,
    buckets: opts.queueWaitBuckets,
    registers: [registry],
  });
  const overflow = new Counter({
    name: `${p}step_label_overflow_total`,
    help: `Step observations counted under group="${OTHER_LABEL}",step="${OTHER_LABEL}" because the cap of ${opts.labels.maxLabelSets} distinct (group, step) pairs was reached`,
    registers: [registry],
  });
  const cap = new LabelCap(opts.labels.maxLabelSets);
  const labelsOf = (
    container: string,
    task: Pick<TaskRecord, 'name' | 'parent'>,
  ): { group: string; step: string } => {
    const l = cap.labels(containerGroup(container, opts.labels), stepLabel(task));
    if (l.group === OTHER_LABEL && l.step === OTHER_LABEL) overflow.inc();
    return l;
  };
  const seconds = (from: Date, to: Date): number => Math.max(0, to.getTime() - from.getTime()) / 1000;
  const attemptEnded = (e: { container: string; task: TaskRecord; attempt?: AttemptTiming }): void => {
    if (!e.attempt) return;
    stepDuration.observe(
      { ...labelsOf(e.container, e.task), outcome: e.attempt.outcome },
      seconds(e.attempt.claimedAt, e.attempt.endedAt),
    );
  };

  const detach: Array<() => void> = [];
  const listen = <E extends PtsEventName>(event: E, fn: (p: PtsEventMap[E]) => void): void => {
    client.on(event, fn);
    detach.push(() => client.off(event, fn));
  };
  for (const [event, label] of TRANSITION_EVENTS) listen(event, () => transitions.inc({ transition: label }));
  listen('task:retrying', () => failures.inc({ final: 'false' }));
  listen('task:failed', () => failures.inc({ final: 'true' }));
  listen('lease:expired', () => expiries.inc());
  listen('task:started', (e) => {
    if (e.task.lastInvokedAt)
      queueWait.observe(labelsOf(e.container, e.task), seconds(e.readyAt, e.task.lastInvokedAt));
  });
  listen('task:succeeded', attemptEnded);
  listen('task:retrying', attemptEnded);
  listen('task:failed', attemptEnded);
  listen('task:released', attemptEnded);
  listen('task:cancelled', attemptEnded);
  listen('task:reset', attemptEnded);

  return {
    registry,
    httpDuration,
    text: () => registry.metrics(),
    close: () => {
      for (const d of detach.splice(0)) d();
    },
  };
}
