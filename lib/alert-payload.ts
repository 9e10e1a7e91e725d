/**
 * What an alert delivery sends: the body (our JSON document or a Slack-compatible `{ text }`),
 * the idempotency key, and the signature headers. A receiver verifies a delivery with
 * {@link verifyAlertSignature}: HMAC-SHA256 of `"<timestamp>.<body>"` with the rule's secret,
 * and a timestamp within a tolerance of its own clock (a replayed old request is refused).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { AlertEvent, AlertTemplate } from './store/alert-docs';

/** The event an alert reports (the `json` template's body, less `id` and `rule`). */
export interface AlertEventData {
  event: AlertEvent;
  /** When it happened (the failure, the container's end, the decision on the slot). */
  at: Date;
  /** The container (`schedule:missed`: the name the run's container would have had). */
  container: string;
  task: string | null;
  /** Event details: the failure (`message`, `code`, `kind`, `attempt`), the container's counts, or the missed slots. */
  details: Record<string, unknown>;
}

/** The `json` template's body. */
export interface AlertBody {
  /** The idempotency key (also in `X-PTS-Idempotency-Key`): the same for every attempt and every duplicate. */
  id: string;
  rule: string;
  event: AlertEvent;
  at: string;
  container: string;
  task: string | null;
  details: Record<string, unknown>;
}

/** Header names of a delivery. */
export const ALERT_HEADERS = Object.freeze({
  signature: 'x-pts-signature',
  timestamp: 'x-pts-timestamp',
  idempotencyKey: 'x-pts-idempotency-key',
  event: 'x-pts-event',
  attempt: 'x-pts-attempt',
});

/** Default tolerance of {@link verifyAlertSignature}, in seconds. */
export const DEFAULT_SIGNATURE_TOLERANCE_S = 300;

/**
 * The idempotency key of the delivery of one event under one rule: a hash of the rule's id and
 * the event's identity (e.g. the task's id and failure number), so a re-created delivery — after
 * a crash, by another process — has the same key.
 */
export function idempotencyKey(ruleId: string, identity: string): string {
  return createHash('sha256').update(`${ruleId}\n${identity}`).digest('hex').slice(0, 40);
}

function summary(e: AlertEventData): string {
  const where = e.task === null ? e.container : `${e.container} / ${e.task}`;
  const d = e.details;
  switch (e.event) {
    case 'task:failed':
    case 'task:timeout':
    case 'task:stalled':
      return `${e.event}: ${where}${typeof d.message === 'string' ? ` — ${d.message}` : ''}`;
    case 'container:failed':
      return `${e.event}: ${where}${typeof d.failed === 'number' ? ` (${d.failed} failed task${d.failed === 1 ? '' : 's'})` : ''}`;
    case 'schedule:missed':
      return `${e.event}: ${String(d.schedule ?? d.pipeline)} missed ${String(d.count)} slot(s) from ${String(d.slot)}`;
  }
}

/** The body of a delivery (the same bytes on every attempt). */
export function renderAlertBody(
  template: AlertTemplate,
  key: string,
  rule: string,
  e: AlertEventData,
): string {
  if (template === 'slack') return JSON.stringify({ text: `[pts] ${summary(e)} (rule ${rule}, id ${key})` });
  const body: AlertBody = {
    id: key,
    rule,
    event: e.event,
    at: e.at.toISOString(),
    container: e.container,
    task: e.task,
    details: e.details,
  };
  return JSON.stringify(body);
}

/** `sha256=<hex>`: the HMAC-SHA256 of the bytes `"<timestamp>."` followed by the body's exact bytes (UTF-8), with `secret`. */
export function signAlert(secret: string, timestamp: number, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret)
    .update(`${timestamp}.`)
    .update(typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
    .digest('hex')}`;
}

/** The headers of one attempt. `timestamp` is in Unix seconds. */
export function alertHeaders(o: {
  secret: string;
  timestamp: number;
  body: string;
  key: string;
  event: AlertEvent;
  attempt: number;
}): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'persistent-task-status-alerts',
    [ALERT_HEADERS.signature]: signAlert(o.secret, o.timestamp, o.body),
    [ALERT_HEADERS.timestamp]: String(o.timestamp),
    [ALERT_HEADERS.idempotencyKey]: o.key,
    [ALERT_HEADERS.event]: o.event,
    [ALERT_HEADERS.attempt]: String(o.attempt),
  };
}

/** What {@link verifyAlertSignature} checks. */
export interface VerifyAlertOptions {
  secret: string;
  /** The raw request body, exactly as received (bytes, or the UTF-8 text they decode to). */
  body: string | Uint8Array;
  /** `X-PTS-Signature`. */
  signature: string | undefined;
  /** `X-PTS-Timestamp`. */
  timestamp: string | undefined;
  /** How far the timestamp may be from `now`, in seconds. @defaultValue 300 */
  toleranceS?: number;
  /** The receiver's clock. @defaultValue new Date() */
  now?: Date;
}

/**
 * True if the delivery was signed with `secret` and its timestamp is within the tolerance of
 * `now`. A receiver also drops a repeated `X-PTS-Idempotency-Key` (a retry or a duplicate).
 */
export function verifyAlertSignature(o: VerifyAlertOptions): boolean {
  if (typeof o.signature !== 'string' || typeof o.timestamp !== 'string' || !/^\d{1,12}$/.test(o.timestamp))
    return false;
  const ts = Number(o.timestamp);
  const now = Math.floor((o.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - ts) > (o.toleranceS ?? DEFAULT_SIGNATURE_TOLERANCE_S)) return false;
  const expected = Buffer.from(signAlert(o.secret, ts, o.body));
  const got = Buffer.from(o.signature);
  return got.length === expected.length && timingSafeEqual(got, expected);
}
