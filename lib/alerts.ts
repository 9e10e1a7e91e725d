/**
 * Alerts: rules that deliver `container:failed`, `task:failed` (for good), `task:timeout`,
 * `task:stalled` and `schedule:missed` to webhooks, at least once across restarts.
 *
 * Driven from the changes feed (lib/store/alerts.ts reads the entries that matter) with a
 * persisted cursor, by whichever process holds the alert lease. A pass: take or renew the lease;
 * read the feed after the cursor; create one delivery per (rule, event) — idempotently, under a
 * unique key — and only then advance the cursor (under the lease token); then send the due
 * deliveries, each attempt started by one conditional write, retried with exponential backoff.
 * A crash anywhere re-creates nothing twice and loses nothing: the next holder resumes from the
 * cursor and the pending deliveries. A receiver may see an attempt twice (a holder that died
 * after sending and before recording): both carry the same `X-PTS-Idempotency-Key`.
 */
import { performance } from 'node:perf_hooks';
import { alertHeaders, idempotencyKey, renderAlertBody } from './alert-payload';
import type { Core } from './core';
import { comparePos, containerEvents, matches, taskEvents, type Entry } from './alert-events';
import { isTransient, NotFoundError, ValidationError } from './errors';
import { startPeriodic } from './periodic';
import { Timestamp } from './store/bson';
import { decodeCursor, encodeCursor } from './store/cursor';
import type { AlertDeliveryDoc, AlertRuleDoc, AlertSources, AlertStateDoc } from './store';
import {
  ALERT_EVENTS,
  ALERT_TEMPLATES,
  DELIVERY_STATUSES,
  type AlertEvent,
  type AlertTemplate,
  type DeliveryStatus,
} from './store/alert-docs';
import { FEED_START } from './store/alerts';
import type { FeedPosition } from './store/feed';
import { MAX_NAME_LENGTH, validateName } from './validation';

export {
  ALERT_EVENTS,
  ALERT_TEMPLATES,
  DELIVERY_STATUSES,
  type AlertEvent,
  type AlertTemplate,
  type DeliveryStatus,
};

/** A new alert rule (`client.addAlertRule`). */
export interface AlertRuleOptions {
  /** Unique name of the rule. */
  name: string;
  /** What it fires on (at least one of {@link ALERT_EVENTS}). */
  events: AlertEvent[];
  /** The webhook: an `http:` or `https:` URL. */
  url: string;
  /** The HMAC-SHA256 key of the signature (1–1024 characters). Never returned by a read. */
  secret: string;
  /** Only containers whose name starts with this (`schedule:missed`: the run's container name, `<pipeline>@…`). @defaultValue '' (all) */
  prefix?: string;
  /** `json` (our document, docs/api.md#alerts) or `slack` (a Slack-compatible incoming-webhook `{ text }`). @defaultValue 'json' */
  template?: AlertTemplate;
  /** @defaultValue true */
  enabled?: boolean;
}

/** A stored rule, as reads return it (without its secret). */
export interface AlertRule {
  id: string;
  name: string;
  events: AlertEvent[];
  url: string;
  prefix: string;
  template: AlertTemplate;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** One attempt of a delivery. */
export interface DeliveryAttempt {
  /** 1-based attempt number. */
  n: number;
  at: Date;
  /** The receiver's HTTP status; null when there was no answer (refused, timed out). */
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** The alert process (its `workerId`) that made the attempt. */
  by: string;
}

/** One delivery: one per (rule, event). */
export interface DeliveryRecord {
  id: string;
  /** The idempotency key (`X-PTS-Idempotency-Key`, the `json` body's `id`). */
  key: string;
  rule: string;
  event: AlertEvent;
  container: string;
  task: string | null;
  eventAt: Date;
  status: DeliveryStatus;
  attemptCount: number;
  attempts: DeliveryAttempt[];
  /** When the next attempt is due (pending only, else null). */
  nextAttemptAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
  /** The body every attempt sends. */
  body: string;
}

/** Options of `client.listDeliveries`. */
export interface ListDeliveriesQuery {
  /** Only this rule's deliveries. */
  rule?: string;
  status?: DeliveryStatus;
  /** Only deliveries about containers whose name starts with this. */
  prefix?: string;
  cursor?: string | null;
  /** @defaultValue 50 (at most 1000) */
  limit?: number;
}

/** Options of `client.startAlerts` (resolved once by {@link resolveAlertsOptions}). */
export interface AlertsOptions {
  /** Pause between passes; 0: no timer, passes run only when `pass()` is called. @defaultValue 1000 */
  intervalMs?: number;
  /** How long the alert lease lasts unless renewed (every pass renews it). @defaultValue 30000 */
  leaseMs?: number;
  /** Timeout of one webhook request. @defaultValue 10000 */
  requestTimeoutMs?: number;
  /** Attempts before a delivery is `failed` for good. @defaultValue 10 */
  maxAttempts?: number;
  /** Delay after the first failed attempt, doubled after each further one. @defaultValue 1000 */
  backoffMs?: number;
  /** Largest delay between attempts. @defaultValue 300000 */
  maxBackoffMs?: number;
  /** Delivered and failed deliveries are deleted this long after their last write. @defaultValue 604800000 (7 days) */
  retentionMs?: number;
  /** Feed entries and deliveries handled per pass. @defaultValue 200 */
  batchSize?: number;
  /** The changes feed's safety horizon. @defaultValue 250 */
  horizonMs?: number;
  /** Called with an error a background pass threw (the loop goes on). @defaultValue a process warning */
  onError?: (err: Error) => void;
}

/** @internal */
export type ResolvedAlertsOptions = Required<Omit<AlertsOptions, 'onError'>> & {
  onError: (err: Error) => void;
};

/** What one pass did. */
export interface AlertsPassReport {
  /** Whether this process held the alert lease (only the holder does anything). */
  leader: boolean;
  /** Deliveries created. */
  created: number;
  /** Attempts made, and how they ended. */
  attempted: number;
  delivered: number;
  /** Attempts that failed (the delivery is retried, or `failed` after `maxAttempts`). */
  failedAttempts: number;
}

/** A running alert loop. */
export interface AlertsHandle {
  /** Runs one pass now (after the one in flight). */
  pass(): Promise<AlertsPassReport>;
  /** Stops the loop, waits for the pass in flight, and gives the lease up so another process takes over at once. */
  stop(): Promise<void>;
}

/** How far back missed-slot records are re-read (records are inserted with the writer's clock). */
const RUNS_LOOK_BACK_MS = 60_000;
const PRUNE_EVERY_MS = 3_600_000;

function intOption(o: Record<string, unknown>, name: string, dflt: number, min: number): number {
  const v = o[name] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 2 ** 31)
    throw new ValidationError(`${name} must be an integer of at least ${min}`, { path: name });
  return v;
}

/** Resolves the options of {@link startAlerts} (ValidationError on anything malformed). */
export function resolveAlertsOptions(options: AlertsOptions = {}): ResolvedAlertsOptions {
  if (options === null || typeof options !== 'object')
    throw new ValidationError('options must be an object', { path: 'options' });
  const o = options as Record<string, unknown>;
  if (o.onError !== undefined && typeof o.onError !== 'function')
    throw new ValidationError('onError must be a function', { path: 'onError' });
  const intervalMs = intOption(o, 'intervalMs', 1000, 0);
  if (intervalMs > 0 && intervalMs < 10)
    throw new ValidationError('intervalMs must be 0 or at least 10', { path: 'intervalMs' });
  return {
    intervalMs,
    leaseMs: intOption(o, 'leaseMs', 30_000, 1000),
    requestTimeoutMs: intOption(o, 'requestTimeoutMs', 10_000, 1),
    maxAttempts: intOption(o, 'maxAttempts', 10, 1),
    backoffMs: intOption(o, 'backoffMs', 1000, 0),
    maxBackoffMs: intOption(o, 'maxBackoffMs', 300_000, 0),
    retentionMs: intOption(o, 'retentionMs', 7 * 86_400_000, 1),
    batchSize: intOption(o, 'batchSize', 200, 1),
    horizonMs: intOption(o, 'horizonMs', 250, 0),
    onError:
      (options.onError as ((err: Error) => void) | undefined) ??
      ((err) => process.emitWarning(`persistent-task-status: alert pass failed: ${err.message}`)),
  };
}

// ---- rules

/** Validates a new rule (ValidationError, nothing written). */
export function validateAlertRule(
  r: AlertRuleOptions,
): Omit<AlertRuleDoc, '_id' | 'createdAt' | 'updatedAt'> {
  if (r === null || typeof r !== 'object')
    throw new ValidationError('rule must be an object', { path: 'rule' });
  const name = validateName(r.name, 'name');
  if (!Array.isArray(r.events) || r.events.length === 0 || r.events.length > ALERT_EVENTS.length)
    throw new ValidationError(`events must be a non-empty list of ${ALERT_EVENTS.join(', ')}`, {
      path: 'events',
    });
  for (const e of r.events)
    if (!(ALERT_EVENTS as readonly unknown[]).includes(e))
      throw new ValidationError(`unknown event ${JSON.stringify(e)} (one of ${ALERT_EVENTS.join(', ')})`, {
        path: 'events',
      });
  let url: URL | null = null;
  try {
    url = typeof r.url === 'string' && r.url.length <= 2048 ? new URL(r.url) : null;
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    throw new ValidationError('url must be an http: or https: URL (at most 2048 characters)', {
      path: 'url',
    });
  if (typeof r.secret !== 'string' || r.secret.length < 1 || r.secret.length > 1024)
    throw new ValidationError('secret must be a string of 1 to 1024 characters', { path: 'secret' });
  const prefix = r.prefix ?? '';
  if (typeof prefix !== 'string' || prefix.length > MAX_NAME_LENGTH || prefix.includes('\u0000'))
    throw new ValidationError(`prefix must be a string of at most ${MAX_NAME_LENGTH} characters`, {
      path: 'prefix',
    });
  const template = r.template ?? 'json';
  if (!(ALERT_TEMPLATES as readonly unknown[]).includes(template))
    throw new ValidationError(`template must be one of ${ALERT_TEMPLATES.join(', ')}`, { path: 'template' });
  const enabled = r.enabled ?? true;
  if (typeof enabled !== 'boolean')
    throw new ValidationError('enabled must be a boolean', { path: 'enabled' });
  return { name, events: [...new Set(r.events)], url: r.url, secret: r.secret, prefix, template, enabled };
}

/** Stores a new rule (DuplicateError if the name is taken). */
export async function addAlertRule(core: Core, r: AlertRuleOptions): Promise<AlertRule> {
  const rule = validateAlertRule(r);
  await core.ready();
  return toAlertRule(await core.store.insertAlertRule(rule));
}

export async function listAlertRules(core: Core): Promise<AlertRule[]> {
  await core.ready();
  return (await core.store.listAlertRules()).map(toAlertRule);
}

/** Deletes a rule (its pending deliveries end as `failed`: "the rule was deleted"). False if there was none. */
export async function deleteAlertRule(core: Core, name: string): Promise<boolean> {
  const n = validateName(name, 'name');
  await core.ready();
  return core.store.deleteAlertRule(n);
}

/** Enables or disables a rule (a disabled rule creates no deliveries; pending ones are still sent). */
export async function setAlertRuleEnabled(core: Core, name: string, enabled: boolean): Promise<AlertRule> {
  const n = validateName(name, 'name');
  if (typeof enabled !== 'boolean')
    throw new ValidationError('enabled must be a boolean', { path: 'enabled' });
  await core.ready();
  const d = await core.store.setAlertRuleEnabled(n, enabled);
  if (!d) throw new NotFoundError(`no alert rule named ${JSON.stringify(name)}`, { rule: name });
  return toAlertRule(d);
}

export function toAlertRule(d: AlertRuleDoc): AlertRule {
  return {
    id: d._id.toHexString(),
    name: d.name,
    events: [...d.events],
    url: d.url,
    prefix: d.prefix ?? '',
    template: d.template,
    enabled: d.enabled,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

export function toDeliveryRecord(d: AlertDeliveryDoc): DeliveryRecord {
  return {
    id: d._id.toHexString(),
    key: d.key,
    rule: d.ruleName,
    event: d.event,
    container: d.container,
    task: d.task ?? null,
    eventAt: d.eventAt,
    status: d.status,
    attemptCount: d.attemptCount,
    attempts: (d.attempts ?? []).map((a) => ({
      n: a.n,
      at: a.at,
      statusCode: a.statusCode ?? null,
      error: a.error ?? null,
      durationMs: a.durationMs,
      by: a.by,
    })),
    nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt : null,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
    deliveredAt: d.deliveredAt ?? null,
    body: d.body,
  };
}

export async function listDeliveries(
  core: Core,
  q: ListDeliveriesQuery = {},
): Promise<{ items: DeliveryRecord[]; nextCursor: string | null }> {
  if (q === null || typeof q !== 'object')
    throw new ValidationError('query must be an object', { path: 'query' });
  const limit = q.limit ?? 50;
  if (q.status !== undefined && !(DELIVERY_STATUSES as readonly unknown[]).includes(q.status))
    throw new ValidationError(`status must be one of ${DELIVERY_STATUSES.join(', ')}`, { path: 'status' });
  const rule = q.rule === undefined ? undefined : validateName(q.rule, 'rule');
  if (q.prefix !== undefined && typeof q.prefix !== 'string')
    throw new ValidationError('prefix must be a string', { path: 'prefix' });
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
    throw new ValidationError('limit must be an integer from 1 to 1000', { path: 'limit' });
  const after = decodeCursor(q.cursor);
  await core.ready();
  const docs = await core.store.listDeliveries({
    rule,
    status: q.status,
    prefix: q.prefix,
    after,
    limit: limit + 1,
  });
  const items = docs.slice(0, limit);
  return {
    items: items.map(toDeliveryRecord),
    nextCursor: docs.length > limit ? encodeCursor(items[items.length - 1]._id) : null,
  };
}

/** Sends a signed test body to the rule's webhook now (nothing is stored). */
export async function testAlertRule(
  core: Core,
  name: string,
  requestTimeoutMs = 10_000,
): Promise<{ statusCode: number | null; error: string | null; body: string }> {
  await core.ready();
  const rule = await core.store.findAlertRule(validateName(name, 'name'));
  if (!rule) throw new NotFoundError(`no alert rule named ${JSON.stringify(name)}`, { rule: name });
  const now = core.ctx.clock.now();
  const key = idempotencyKey(rule._id.toHexString(), `test|${now.getTime()}`);
  const body = renderAlertBody(rule.template, key, rule.name, {
    event: rule.events[0],
    at: now,
    container: rule.prefix,
    task: null,
    details: { test: true },
  });
  const r = await post(
    rule,
    body,
    key,
    rule.events[0],
    1,
    Math.floor(now.getTime() / 1000),
    requestTimeoutMs,
  );
  return { statusCode: r.statusCode, error: r.error, body };
}

// ---- the loop

interface PostResult {
  statusCode: number | null;
  error: string | null;
  durationMs: number;
}

async function post(
  rule: AlertRuleDoc,
  body: string,
  key: string,
  event: AlertEvent,
  attempt: number,
  timestamp: number,
  timeoutMs: number,
): Promise<PostResult> {
  const t0 = performance.now();
  try {
    const res = await fetch(rule.url, {
      method: 'POST',
      headers: alertHeaders({ secret: rule.secret, timestamp, body, key, event, attempt }),
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Read (and drop) the answer so the connection is reusable.
    await res.arrayBuffer().catch(() => undefined);
    const ok = res.status >= 200 && res.status < 300;
    return {
      statusCode: res.status,
      error: ok ? null : `HTTP ${res.status}`,
      durationMs: Math.round(performance.now() - t0),
    };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why =
      e.name === 'TimeoutError'
        ? `timed out after ${timeoutMs} ms`
        : (e.cause?.code ?? e.cause?.message ?? e.message);
    return {
      statusCode: null,
      error: String(why).slice(0, 500),
      durationMs: Math.round(performance.now() - t0),
    };
  }
}

/** One alert process: {@link pass} does everything; the loop of {@link startAlerts} calls it. @internal */
export class Alerter {
  private token: number | null = null;
  /** When the lease runs out unless renewed (the corrected clock, as the store wrote it). */
  private leaseUntil = 0;
  private lastPrune = 0;

  constructor(
    private readonly core: Core,
    private readonly o: ResolvedAlertsOptions,
    private readonly holder: string,
  ) {}

  /** Renews (or takes) the lease; null if another process holds it. */
  private async renew(): Promise<AlertStateDoc | null> {
    const lease = await this.core.store.takeAlertLease(this.holder, this.token, this.o.leaseMs);
    this.token = lease ? lease.token : null;
    this.leaseUntil = lease ? lease.expiresAt.getTime() : 0;
    return lease;
  }

  /** Renews the lease once a third of it is used (a pass may outlast it); false: it was lost. */
  private async keepLease(): Promise<boolean> {
    if (this.token === null) return false;
    if (this.core.ctx.clock.now().getTime() < this.leaseUntil - (this.o.leaseMs * 2) / 3) return true;
    const token = this.token;
    const lease = await this.renew();
    return lease !== null && lease.token === token;
  }

  backoff(n: number): number {
    return Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** Math.min(30, n - 1));
  }

  async pass(): Promise<AlertsPassReport> {
    const { store } = this.core;
    await this.core.ready();
    const report: AlertsPassReport = {
      leader: false,
      created: 0,
      attempted: 0,
      delivered: 0,
      failedAttempts: 0,
    };
    const lease = await this.renew();
    if (!lease) return report;
    report.leader = true;
    const rules = await store.listAlertRules();
    // Every pass moves the cursor, rules or not, enabled or not: a disabled rule creates nothing
    // for what happened while it was off, and a new rule starts from its creation.
    if (!(await this.createDeliveries(lease.cursor ?? null, lease.runsSince ?? null, rules, report))) {
      this.token = null;
      report.leader = false;
      return report;
    }
    await this.deliver(new Map(rules.map((r) => [r._id.toHexString(), r])), report);
    const now = this.core.ctx.clock.now().getTime();
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await store.pruneDeliveries(new Date(now - this.o.retentionMs));
    }
    return report;
  }

  /** Creates the deliveries of one feed page, then advances the cursor. False: the lease was lost. */
  private async createDeliveries(
    cursor: FeedPosition | null,
    runsSince: Date | null,
    rules: AlertRuleDoc[],
    report: AlertsPassReport,
  ): Promise<boolean> {
    const { store } = this.core;
    const serverNow = (await store.serverTime()).getTime();
    const horizon = new Timestamp({ t: Math.floor((serverNow - this.o.horizonMs) / 1000), i: 0 });
    // A rule fires only for events at or after its creation, so nothing older than the oldest
    // rule (less the look-back that covers the writers' clock errors) needs reading: a fresh or
    // long-idle cursor does not re-read the whole feed. With no rule, nothing is read at all.
    const oldest = rules.length ? Math.min(...rules.map((r) => r.createdAt.getTime())) : serverNow;
    // (The feed's positions are the server's own time: never start past it.)
    const floor = Math.min(oldest, serverNow) - RUNS_LOOK_BACK_MS;
    const start: FeedPosition = {
      ts: new Timestamp({ t: Math.max(0, Math.floor(floor / 1000)), i: 0 }),
      id: FEED_START.id,
    };
    const from = cursor && comparePos(cursor, start) > 0 ? cursor : start;
    const runsFrom = new Date(Math.max(runsSince?.getTime() ?? 0, oldest));
    // Failures older than this were in entries an earlier pass read (a re-read task repeats none).
    const since = from.ts.getHighBits() * 1000 - RUNS_LOOK_BACK_MS;
    const n = this.o.batchSize;
    const prefixes = [...new Set(rules.map((r) => r.prefix ?? ''))];
    const src: Pick<AlertSources, 'tasks' | 'containers' | 'missed'> = rules.length
      ? await store.readAlertSources(from, horizon, runsFrom, RUNS_LOOK_BACK_MS, n, prefixes)
      : { tasks: [], containers: [], missed: [] };
    const merged: Entry[] = [
      ...src.tasks.map((t) => ({ pos: { ts: t.changedAt, id: t._id }, events: taskEvents(t, since) })),
      ...src.containers.map((c) => ({ pos: { ts: c.changedAt, id: c._id }, events: containerEvents(c) })),
    ].sort((a, b) => comparePos(a.pos, b.pos));
    const full = src.tasks.length >= n || src.containers.length >= n;
    const page = merged.slice(0, n);
    // Everything below the horizon was read unless a list was cut at `n`.
    let next: FeedPosition = full ? page[page.length - 1].pos : { ts: horizon, id: FEED_START.id };
    if (comparePos(next, from) < 0) next = from;
    const events = page.flatMap((e) => e.events);
    let newRunsSince = runsFrom;
    for (const r of src.missed) {
      if (r.decidedAt.getTime() > newRunsSince.getTime()) newRunsSince = r.decidedAt;
      events.push({
        identity: `schedule:missed|${r._id.toHexString()}`,
        data: {
          event: 'schedule:missed',
          container: r.container,
          task: null,
          at: r.decidedAt,
          details: {
            schedule: r.schedule,
            pipeline: r.pipeline,
            slot: r.slot.toISOString(),
            lastSlot: r.lastSlot.toISOString(),
            count: r.count,
          },
        },
      });
    }
    for (const { identity, data } of events) {
      for (const rule of rules) {
        if (!matches(rule, data)) continue;
        const key = idempotencyKey(rule._id.toHexString(), identity);
        const created = await store.insertDelivery(
          {
            key,
            rule: rule._id,
            ruleName: rule.name,
            event: data.event,
            container: data.container,
            task: data.task,
            eventAt: data.at,
            body: renderAlertBody(rule.template, key, rule.name, data),
          },
          this.token!,
        );
        if (created) report.created++;
      }
    }
    return store.advanceAlertCursor(this.holder, this.token!, next, newRunsSince);
  }

  private async deliver(rules: Map<string, AlertRuleDoc>, report: AlertsPassReport): Promise<void> {
    const { store } = this.core;
    const due = await store.dueDeliveries(this.o.batchSize);
    for (const d of due) {
      // Requests may take long: never start one on a lease that ran out or was taken over.
      if (!(await this.keepLease())) {
        report.leader = false;
        return;
      }
      const token = this.token!;
      const started = await store.startAttempt(d._id, d.attemptCount, this.o.requestTimeoutMs + 5_000, token);
      if (!started) continue;
      const n = started.attemptCount;
      const rule = rules.get(d.rule.toHexString());
      const clock = this.core.ctx.clock;
      const at = clock.now();
      const r: PostResult = rule
        ? await post(
            rule,
            d.body,
            d.key,
            d.event,
            n,
            Math.floor(at.getTime() / 1000),
            this.o.requestTimeoutMs,
          )
        : { statusCode: null, error: 'the rule was deleted', durationMs: 0 };
      report.attempted++;
      const ok = r.error === null;
      const status: DeliveryStatus = ok
        ? 'delivered'
        : !rule || n >= this.o.maxAttempts
          ? 'failed'
          : 'pending';
      const nextAt = new Date(clock.now().getTime() + (status === 'pending' ? this.backoff(n) : 0));
      // Fenced: not recorded if a newer holder took over meanwhile (it sends the delivery again, same key).
      const recorded = await store.recordAttempt(
        d._id,
        { n, at, statusCode: r.statusCode, error: r.error, durationMs: r.durationMs, by: this.holder },
        status,
        nextAt,
        token,
      );
      if (!recorded) {
        report.leader = false;
        this.token = null;
        return;
      }
      if (ok) report.delivered++;
      else report.failedAttempts++;
    }
  }

  /** Gives the lease up (if held). */
  async release(): Promise<void> {
    if (this.token === null) return;
    const token = this.token;
    this.token = null;
    await this.core.store.releaseAlertLease(this.holder, token);
  }
}

/** Runs {@link Alerter.pass} every `intervalMs` until `stop()` (`client.startAlerts`). */
export function startAlerts(core: Core, options: AlertsOptions = {}): AlertsHandle {
  const o = resolveAlertsOptions(options);
  const alerter = new Alerter(core, o, core.opts.workerId);
  return startPeriodic<AlertsPassReport>({
    intervalMs: o.intervalMs,
    pass: () => alerter.pass(),
    onResult: () => core.notify.dbAvailable('alerts'),
    onError: (err) => {
      if (isTransient(err)) core.notify.dbUnavailable('alerts', err);
      o.onError(err);
    },
    onStop: () => alerter.release(),
    stoppedError: () => new ValidationError('the alert loop was stopped', { path: 'pass' }),
  });
}
