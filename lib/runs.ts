/**
 * Run history of pipelines: the public records of schedules and runs, `listRuns` (each run with
 * its steps' states and durations, and what changed in the definition since the run before it)
 * and the durations of each step across runs.
 */
import type { Core } from './core';
import { diffDefinitions, type DefinitionChange, type StepDefinition } from './pipeline';
import type { ContainerStatus } from './states';
import type { RunDoc, RunKind, RunStatus, ScheduleDoc } from './store';
import { validateName } from './validation';

/**
 * A stored schedule, as a plain object: the schedule's options with every default applied, why it
 * was paused (`note`: `run failed: <container>` for `pauseOnFailure`, or the note given to
 * `pauseSchedule`), the next slot the scheduler will decide (`nextSlot`, null when the expression
 * never fires again) and when it is due (`nextFireAt`, the slot plus its jitter).
 */
export interface ScheduleRecord extends Omit<ScheduleDoc, '_id' | 'rev'> {
  id: string;
}

/** One step of a run: its definition and, once the run's container exists, its state and duration. */
export interface RunStep extends Omit<StepDefinition, 'settings'> {
  state: string | null;
  durationMs: number | null;
}

/** One slot of a pipeline's history. */
export interface RunRecord {
  id: string;
  pipeline: string;
  schedule: string | null;
  slot: Date;
  /** Last slot the record stands for (skipped ranges: `missed`, `paused`), else `slot`. */
  lastSlot: Date;
  /** Slots the record stands for. */
  count: number;
  kind: RunKind;
  /** See {@link RunStatus}. */
  status: RunStatus;
  /** Why it was skipped (`overlap`, `missed`, `paused`) or why it is in `error`. */
  reason: string | null;
  /** The run's container (`<pipeline>@<slot ISO>`); it exists once `status` is `started` or `finished`. */
  container: string;
  /** The container's final status, recorded when the run was seen to finish (`status: 'finished'`). */
  outcome: ContainerStatus | null;
  /** The container's status now (null when there is no container, or it was not read: scheduler reports). */
  containerStatus: ContainerStatus | null;
  definitionHash: string | null;
  steps: RunStep[];
  /** What changed in the definition since the previous run with one (null: same hash, or no previous run). */
  changes: DefinitionChange | null;
  decidedAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

export function toScheduleRecord(d: ScheduleDoc): ScheduleRecord {
  return {
    id: d._id.toHexString(),
    name: d.name,
    pipeline: d.pipeline,
    cron: d.cron,
    timezone: d.timezone,
    overlap: d.overlap,
    catchupWindowMs: d.catchupWindowMs,
    jitterMs: d.jitterMs,
    paused: d.paused,
    note: d.note ?? null,
    pauseOnFailure: d.pauseOnFailure,
    nextSlot: d.nextSlot ?? null,
    nextFireAt: d.nextFireAt ?? null,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

/** Options of `client.listRuns()`. */
export interface ListRunsQuery {
  /** @defaultValue 50 (at most 1000) */
  limit?: number;
  cursor?: string | null;
}

/** A run record without its container's live state (`containerStatus` null, steps' states null). */
export function toRunRecord(
  d: RunDoc,
  steps: Map<string, { name: string; state: string; durationMs: number | null }[]> = new Map(),
  statuses: Map<string, ContainerStatus> = new Map(),
): RunRecord {
  const actual = new Map((steps.get(d.container) ?? []).map((t) => [t.name, t]));
  return {
    id: d._id.toHexString(),
    pipeline: d.pipeline,
    schedule: d.schedule ?? null,
    slot: d.slot,
    lastSlot: d.lastSlot,
    count: d.count,
    kind: d.kind,
    status: d.status,
    reason: d.reason ?? null,
    container: d.container,
    outcome: d.outcome ?? null,
    containerStatus: statuses.get(d.container) ?? null,
    definitionHash: d.definitionHash ?? null,
    steps: (d.steps ?? []).map((s) => ({
      name: s.name,
      dependsOn: s.dependsOn,
      state: actual.get(s.name)?.state ?? null,
      durationMs: actual.get(s.name)?.durationMs ?? null,
    })),
    changes: null,
    decidedAt: d.decidedAt,
    startedAt: d.startedAt ?? null,
    finishedAt: d.finishedAt ?? null,
  };
}

/** A page of the pipeline's runs, newest slot first (see {@link RunRecord}). */
export async function listRuns(
  core: Core,
  pipeline: string,
  q: ListRunsQuery = {},
): Promise<{ items: RunRecord[]; nextCursor: string | null }> {
  const name = validateName(pipeline, 'pipeline');
  await core.ready();
  const page = await core.store.listRuns(name, q ?? {});
  const items = page.items.map((d) => toRunRecord(d, page.steps, page.statuses));
  // Each run with a definition is compared with the next older one that has one.
  const defined = page.items.filter((d) => d.definitionHash);
  for (let i = 0; i < defined.length; i++) {
    const older = defined[i + 1] ?? (await core.store.previousDefinedRun(name, defined[i].slot));
    if (!older) continue;
    const change = diffDefinitions(
      { hash: older.definitionHash!, steps: older.steps ?? [] },
      { hash: defined[i].definitionHash!, steps: defined[i].steps ?? [] },
    );
    items[page.items.indexOf(defined[i])].changes = change;
  }
  return { items, nextCursor: page.nextCursor };
}

/** Durations of each step over the pipeline's newest runs (`limit` runs), newest first; a step that did not finish in a run is left out of it. */
export async function stepDurations(
  core: Core,
  pipeline: string,
  limit = 50,
): Promise<Record<string, Array<{ slot: Date; durationMs: number }>>> {
  const page = await listRuns(core, pipeline, { limit });
  const out: Record<string, Array<{ slot: Date; durationMs: number }>> = {};
  for (const r of page.items) {
    for (const s of r.steps) {
      if (s.durationMs === null) continue;
      (out[s.name] ??= []).push({ slot: r.slot, durationMs: s.durationMs });
    }
  }
  return out;
}
