/**
 * A schedule as the HTTP API, the CLI and the dashboard show it: the stored record plus its next
 * fire times (computed with croner, like the scheduler's own arithmetic) and its recent skipped
 * slots (from the run history). Reads only: one `pts_runs` read per schedule.
 * @internal
 */
import type { Core } from './core';
import { toRunRecord, toScheduleRecord, type RunRecord, type ScheduleRecord } from './runs';
import { following } from './scheduler';
import type { ScheduleDoc } from './store';

/** How many next fire times and recent skipped records a {@link ScheduleView} carries. */
export const SCHEDULE_VIEW_FIRE_TIMES = 5;
export const SCHEDULE_VIEW_SKIPPED = 5;

/** A schedule with what a reader wants next to it (`client.describeSchedule`). */
export interface ScheduleView extends ScheduleRecord {
  /**
   * The next {@link SCHEDULE_VIEW_FIRE_TIMES} times a slot is due (slot plus jitter), from
   * `nextFireAt` on; also while paused (the slots a paused schedule records as skipped). Empty when
   * the expression never fires again.
   */
  nextFireTimes: Date[];
  /** The newest skipped records (reasons `overlap`, `missed`, `paused`; ranges have `count` > 1), newest first. */
  recentSkipped: RunRecord[];
}

/** @internal */
export function nextFireTimes(s: ScheduleDoc, n = SCHEDULE_VIEW_FIRE_TIMES): Date[] {
  const out: Date[] = [];
  let cur = { nextSlot: s.nextSlot, nextFireAt: s.nextFireAt };
  while (cur.nextSlot && cur.nextFireAt && out.length < n) {
    out.push(cur.nextFireAt);
    cur = following(s, cur.nextSlot);
  }
  return out;
}

/** @internal */
export async function viewSchedule(core: Core, s: ScheduleDoc): Promise<ScheduleView> {
  const skipped = await core.store.recentSkipped(s.pipeline, s.name, SCHEDULE_VIEW_SKIPPED);
  return {
    ...toScheduleRecord(s),
    nextFireTimes: nextFireTimes(s),
    recentSkipped: skipped.map((d) => toRunRecord(d)),
  };
}
