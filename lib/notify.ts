/**
 * Turns transition results into typed events. The one place that decides which event a
 * transition emits.
 * @internal
 */
import type { TypedEmitter } from './events';
import type { CounterResult } from './store/counters';
import { toTaskRecord } from './store/documents';
import type { TransitionResult } from './store/transitions';

export type TransitionKind =
  | 'added'
  | 'claimed'
  | 'succeeded'
  | 'failed'
  | 'expired'
  | 'released'
  | 'cancelled'
  | 'skipped'
  | 'reset'
  | 'retried'
  | 'updated';

export function emitContainerChange(ev: TypedEmitter, name: string, c: CounterResult): void {
  if (!c.statusChange) return;
  const { from, to } = c.statusChange;
  ev.emit('container:status', { container: name, from, to });
  if (to === 'running' && from === 'pending') ev.emit('container:started', { container: name });
  if (to === 'succeeded') ev.emit('container:completed', { container: name });
  if (to === 'failed') ev.emit('container:failed', { container: name });
  if (to === 'cancelled') ev.emit('container:cancelled', { container: name });
}

export function emitTransition(ev: TypedEmitter, kind: TransitionKind, r: TransitionResult): void {
  const task = toTaskRecord(r.task);
  const container = task.container;
  const lastFailure = task.failures[task.failures.length - 1];
  switch (kind) {
    case 'added':
      ev.emit('task:added', { container, task });
      break;
    case 'claimed':
      ev.emit('task:started', { container, task });
      break;
    case 'succeeded':
      ev.emit('task:succeeded', { container, task });
      break;
    case 'expired':
    case 'failed':
      // an expiry is also a failed attempt
      if (kind === 'expired') ev.emit('lease:expired', { container, task, owner: lastFailure?.workerId ?? 'unknown' });
      if (task.state === 'pending') ev.emit('task:retrying', { container, task, failure: lastFailure, runAfter: task.runAfter });
      else ev.emit('task:failed', { container, task, failure: lastFailure });
      break;
    case 'cancelled':
      ev.emit('task:cancelled', { container, task });
      break;
    case 'skipped':
      ev.emit('task:skipped', { container, task });
      break;
    case 'reset':
      ev.emit('task:reset', { container, task });
      break;
    case 'released':
      ev.emit('task:released', { container, task });
      break;
    case 'retried':
    case 'updated':
      break;
  }
  emitContainerChange(ev, container, r.container);
}
