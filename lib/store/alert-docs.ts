/**
 * The stored shapes and schemas of alerting (`pts_alert_rules`, `pts_alert_state`,
 * `pts_alert_deliveries`; docs/schema.md). The operations are in alerts.ts.
 * @internal
 */
import { Schema } from 'mongoose';
import type { ObjectId, Timestamp } from 'mongodb';

/** What an alert rule can fire on. */
export const ALERT_EVENTS = Object.freeze([
  'container:failed',
  'task:failed',
  'task:timeout',
  'task:stalled',
  'schedule:missed',
] as const);
export type AlertEvent = (typeof ALERT_EVENTS)[number];

/** How a delivery's body is built: our JSON document, or a Slack-compatible `{ text }`. */
export const ALERT_TEMPLATES = Object.freeze(['json', 'slack'] as const);
export type AlertTemplate = (typeof ALERT_TEMPLATES)[number];

/** Where a delivery stands: to be sent (again), accepted by the receiver (2xx), or given up. */
export const DELIVERY_STATUSES = Object.freeze(['pending', 'delivered', 'failed'] as const);
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** One alert rule (unique by name). */
export interface AlertRuleDoc {
  _id: ObjectId;
  name: string;
  events: AlertEvent[];
  /** Container name prefix ('' = every container; for `schedule:missed`, the run's container name). */
  prefix: string;
  url: string;
  secret: string;
  template: AlertTemplate;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** The one state document (`_id: 'alerts'`): the feed cursor and the lease of the delivering process. */
export interface AlertStateDoc {
  _id: string;
  /** Position in the changes feed up to which deliveries were created (absent: not started). */
  cursor?: { ts: Timestamp; id: ObjectId } | null;
  /** Missed-slot records decided after this time (minus the look-back) are still examined. */
  runsSince?: Date | null;
  holder: string | null;
  /** Grows with every take-over: a cursor write carries it, so a former holder cannot move the cursor. */
  token: number;
  /** The token under which every pending delivery was fenced (a take-over does it before anything else). */
  fencedToken?: number;
  expiresAt: Date;
  updatedAt: Date;
}

/** One attempt to deliver. */
export interface DeliveryAttemptDoc {
  n: number;
  at: Date;
  /** HTTP status of the answer, null when there was none (connection refused, timeout). */
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** The alert process (lease holder) that made it. */
  by: string;
}

/** One delivery: one per (rule, event), `key` unique. */
export interface AlertDeliveryDoc {
  _id: ObjectId;
  key: string;
  rule: ObjectId;
  ruleName: string;
  event: AlertEvent;
  container: string;
  task: string | null;
  /** When the event happened (the failure, the end of the container, the decision on the slot). */
  eventAt: Date;
  /** The exact body every attempt sends. */
  body: string;
  /** The alert lease token of the last holder that wrote it: older holders are fenced out (store/alerts.ts). */
  fence: number;
  status: DeliveryStatus;
  attempts: DeliveryAttemptDoc[];
  attemptCount: number;
  nextAttemptAt: Date;
  createdAt: Date;
  updatedAt: Date;
  deliveredAt: Date | null;
}

const opts = { autoIndex: false, autoCreate: false, versionKey: false, strict: true } as const;

export function alertRuleSchema(): Schema {
  const s = new Schema(
    {
      _id: Schema.Types.ObjectId,
      name: String,
      events: [String],
      prefix: String,
      url: String,
      secret: String,
      template: String,
      enabled: Boolean,
      createdAt: Date,
      updatedAt: Date,
    },
    opts,
  );
  s.index({ name: 1 }, { unique: true, name: 'name_unique' });
  return s;
}

export function alertStateSchema(): Schema {
  return new Schema(
    {
      _id: String,
      cursor: Schema.Types.Mixed,
      runsSince: Date,
      holder: String,
      token: Number,
      fencedToken: Number,
      expiresAt: Date,
      updatedAt: Date,
    },
    opts,
  );
}

export function alertDeliverySchema(): Schema {
  const s = new Schema(
    {
      _id: Schema.Types.ObjectId,
      key: String,
      rule: Schema.Types.ObjectId,
      ruleName: String,
      event: String,
      container: String,
      task: String,
      eventAt: Date,
      body: String,
      fence: Number,
      status: String,
      attempts: [Schema.Types.Mixed],
      attemptCount: Number,
      nextAttemptAt: Date,
      createdAt: Date,
      updatedAt: Date,
      deliveredAt: Date,
    },
    opts,
  );
  s.index({ key: 1 }, { unique: true, name: 'key_unique' });
  // The delivery loop's "what is due" and the retention sweep.
  s.index({ status: 1, nextAttemptAt: 1 }, { name: 'status_nextAttemptAt' });
  s.index({ status: 1, updatedAt: 1 }, { name: 'status_updatedAt' });
  // Listings of one rule's deliveries, newest first.
  s.index({ ruleName: 1, _id: -1 }, { name: 'ruleName_id' });
  return s;
}
