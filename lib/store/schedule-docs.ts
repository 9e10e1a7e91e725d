/**
 * The stored shapes of schedules and pipeline runs (`pts_schedules`, `pts_runs`; docs/schema.md).
 * @internal
 */
import type { ObjectId } from './bson';
import type { StepDefinition } from '../pipeline';
import type { ResolvedSchedule } from '../schedule';
import type { ContainerStatus } from '../states';

/** A stored schedule: its validated options (`ResolvedSchedule`) and the scheduler's state. */
export interface ScheduleDoc extends ResolvedSchedule {
  _id: ObjectId;
  /** Why the schedule was paused (`pauseOnFailure`, or the caller's note). */
  note: string | null;
  /** The next slot to decide (null: the expression never fires again). */
  nextSlot: Date | null;
  /** `nextSlot` plus its jitter: when the slot is due. */
  nextFireAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  rev: number;
}

/**
 * What became of a slot:
 * - `buffered`: waiting for the unfinished run to end (`bufferOne`);
 * - `starting`: claimed, its container being created (a scheduler that finds one completes it);
 * - `started`: its container exists; `finished` once the container reached a final status;
 * - `skipped`: not run, `reason` says why (`overlap`, `missed`, `paused`); a record of reason
 *   `missed`/`paused` may cover several slots (`slot` … `lastSlot`, `count`);
 * - `error`: the pipeline's definition could not be resolved or conflicts with its container.
 */
export type RunStatus = 'buffered' | 'starting' | 'started' | 'finished' | 'skipped' | 'error';
export type RunKind = 'scheduled' | 'trigger' | 'backfill';

/** A run record: one per (pipeline, slot). */
export interface RunDoc {
  _id: ObjectId;
  pipeline: string;
  schedule: string | null;
  slot: Date;
  lastSlot: Date;
  count: number;
  kind: RunKind;
  status: RunStatus;
  reason: string | null;
  container: string;
  definitionHash: string | null;
  steps: StepDefinition[] | null;
  /** The steps' durations (top-level tasks that succeeded), recorded when the run is seen to finish (lib/store/eta.ts); absent on earlier records. */
  durations?: Array<{ name: string; durationMs: number }>;
  /** The container's final status, once `finished`. */
  outcome: ContainerStatus | null;
  decidedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Set when retention deleted the run's container (or found it gone): `keepLastRuns` counts the other runs. */
  prunedAt?: Date | null;
  updatedAt: Date;
}
