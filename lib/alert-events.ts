/**
 * The alert events of changes-feed entries (lib/alerts.ts): which events a task or container
 * entry stands for, each with a stable identity (the idempotency key is derived from it), and
 * whether a rule wants one. Pure functions: no database, no clock.
 * @internal
 */
import type { AlertEventData } from './alert-payload';
import type { AlertRuleDoc, AlertSources } from './store';
import type { AlertEvent } from './store/alert-docs';
import type { FeedPosition } from './store/feed';

export type Entry = { pos: FeedPosition; events: Array<{ identity: string; data: AlertEventData }> };

type FailureLike = { attempt?: number; at?: Date; message?: string; code?: string | null; kind?: string };

/** The failures of the ring, newest first (the newest is failure number `failureCount`). */
export function failuresNewestFirst(failures: unknown): FailureLike[] {
  // The failure history is a ring written by position (`failures.<n>`): an array, or on some
  // servers an object keyed by position.
  const list = Array.isArray(failures)
    ? failures
    : failures && typeof failures === 'object'
      ? Object.values(failures)
      : [];
  return (list as Array<FailureLike | null>)
    .filter((f): f is FailureLike => !!f && f.at instanceof Date)
    .sort((a, b) => b.at!.getTime() - a.at!.getTime() || (b.attempt ?? 0) - (a.attempt ?? 0));
}

/**
 * The events of a task entry: `task:timeout` / `task:stalled` for each deadline failure in its
 * history newer than `sinceMs` (a timeout retried and failed again before the pass read the task
 * is not lost), and `task:failed` when the task failed for good. Each is identified by the
 * task and the failure's number, so a later write of the same task repeats the same keys.
 */
export function taskEvents(t: AlertSources['tasks'][number], sinceMs: number): Entry['events'] {
  const out: Entry['events'] = [];
  const failures = failuresNewestFirst(t.failures);
  const event = (f: FailureLike | undefined, number: number, name: AlertEvent): Entry['events'][number] => ({
    identity: `${name}|${t._id.toHexString()}/f${number}`,
    data: {
      event: name,
      container: t.container,
      task: t.name,
      at: f?.at ?? t.updatedAt,
      details: {
        state: t.state,
        message: f?.message ?? null,
        code: f?.code ?? null,
        kind: f?.kind ?? null,
        attempt: f?.attempt ?? null,
        // This failure's number (1: the task's first failure); failureCount: how many so far.
        failure: number,
        failureCount: t.failureCount,
      },
    },
  });
  failures.forEach((f, i) => {
    if ((f.kind === 'timeout' || f.kind === 'stalled') && (i === 0 || f.at!.getTime() >= sinceMs))
      out.push(event(f, t.failureCount - i, f.kind === 'timeout' ? 'task:timeout' : 'task:stalled'));
  });
  if (t.state === 'failed') out.push(event(failures[0], t.failureCount, 'task:failed'));
  return out;
}

export function containerEvents(c: AlertSources['containers'][number]): Entry['events'] {
  const at = c.endedAt ?? c.updatedAt;
  return [
    {
      identity: `container:failed|${c._id.toHexString()}|${at.getTime()}`,
      data: {
        event: 'container:failed',
        container: c.name,
        task: null,
        at,
        details: { status: c.status, counts: { ...c.counts }, failed: c.counts?.failed ?? 0 },
      },
    },
  ];
}

export function comparePos(a: FeedPosition, b: FeedPosition): number {
  const c = a.ts.compare(b.ts);
  if (c !== 0) return c;
  const x = a.id.toHexString();
  const y = b.id.toHexString();
  return x < y ? -1 : x > y ? 1 : 0;
}

export function matches(rule: AlertRuleDoc, e: AlertEventData): boolean {
  return (
    rule.enabled &&
    rule.events.includes(e.event) &&
    e.container.startsWith(rule.prefix ?? '') &&
    e.at.getTime() >= rule.createdAt.getTime()
  );
}
