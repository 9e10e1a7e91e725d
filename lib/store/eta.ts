/**
 * The reads behind a pipeline run's ETA (lib/eta.ts) and the write that makes them cheap: when a
 * run finishes, the scheduler records its steps' durations on the run record
 * ({@link runDurations} then `moveRun`), so that the estimate reads the pipeline's history with
 * ONE bounded read of `pts_runs` (index `pipeline_status_slot`) instead of the earlier runs'
 * containers and tasks.
 * @internal
 */
import { ETA_HISTORY_RUNS, estimateFinish, type ContainerEta, type EtaStep } from '../eta';
import type { StoreContext } from './context';
import type { ContainerDoc } from './documents';

/** The steps' durations of a finished run's container (top-level tasks that succeeded), for its run record. */
export async function runDurations(
  ctx: StoreContext,
  container: string,
): Promise<Array<{ name: string; durationMs: number }>> {
  const c = await ctx.cols.containers.findOne({ name: container }, { projection: { _id: 1 } });
  if (!c) return [];
  const tasks = await ctx.cols.tasks
    .find(
      { containerId: c._id, state: 'succeeded' },
      { projection: { name: 1, durationMs: 1, parent: 1 } },
    )
    .limit(10_000)
    .toArray();
  return tasks
    .filter((t) => t.parent === undefined && typeof t.durationMs === 'number')
    .map((t) => ({ name: t.name, durationMs: t.durationMs as number }));
}

/** True for a container whose summary carries an ETA: a pipeline run (metadata.pipeline) that is running. */
export function hasEta(doc: ContainerDoc): boolean {
  return doc.status === 'running' && typeof doc.metadata?.pipeline === 'string';
}

/**
 * The ETA of a running pipeline run and the live progress sum of its running tasks (what
 * `summarize` reads anyway), or null when the pipeline has no recorded history (then nothing
 * but the history read was done). Reads: the newest {@link ETA_HISTORY_RUNS} succeeded runs'
 * recorded durations, then (only with history) the run's tasks — that read replaces the
 * running-tasks read of `summarize`.
 */
export async function readEta(
  ctx: StoreContext,
  doc: ContainerDoc,
): Promise<{ eta: ContainerEta | null; runningSum: number } | null> {
  const pipeline = doc.metadata.pipeline as string;
  const runs = await ctx.cols.runs
    .find(
      { pipeline, status: 'finished', outcome: 'succeeded', 'durations.0': { $exists: true } },
      { projection: { durations: 1 }, sort: { slot: -1 }, limit: ETA_HISTORY_RUNS },
    )
    .toArray();
  if (runs.length === 0) return null;
  const tasks = await ctx.cols.tasks
    .find(
      { containerId: doc._id },
      {
        projection: {
          name: 1,
          state: 1,
          dependsOn: 1,
          parent: 1,
          lastInvokedAt: 1,
          weight: 1,
          percentageComplete: 1,
        },
      },
    )
    .limit(10_000)
    .toArray();
  let runningSum = 0;
  const steps: EtaStep[] = [];
  for (const t of tasks) {
    if (t.state === 'running') runningSum += t.weight * t.percentageComplete;
    if (t.parent !== undefined) continue;
    steps.push({
      name: t.name,
      state: t.state,
      dependsOn: t.dependsOn ?? [],
      startedAt: t.lastInvokedAt ?? null,
      percentageComplete: t.percentageComplete ?? 0,
    });
  }
  const history = runs.map((r) => r.durations ?? []);
  return { eta: estimateFinish(steps, history, ctx.clock.now()), runningSum };
}
