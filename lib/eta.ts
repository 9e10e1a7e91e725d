/**
 * The estimated finish time of a running pipeline run (`ContainerSummary.eta`), from the step
 * durations of the pipeline's earlier runs and the run's current progress. Pure: the store reads
 * the inputs (lib/store/eta.ts) and `summarize` calls {@link estimateFinish}.
 *
 * The method (docs/schedules.md#eta):
 * - each step's **expected duration** is the median of its durations over the pipeline's last
 *   {@link ETA_HISTORY_RUNS} succeeded runs that recorded one;
 * - a **running** step's remaining time is `elapsed × (100 − p) / p` when it reported a
 *   percentage `p > 0`, else `expected − elapsed` (at least 0);
 * - a **pending** step starts when its last unfinished dependency is expected to end, and takes
 *   its expected duration; a finished step (succeeded, failed, skipped, cancelled) takes none;
 * - the run's remaining time is the longest such path through the DAG (the critical path: steps
 *   are assumed to run as soon as their dependencies allow, as many at once as there are).
 *
 * No estimate (null) when there is no history, or when an unfinished step has no recorded
 * duration and reported no percentage. Spawned children (`parent` set) are not steps of the
 * definition: they are left out (their time counts in their parent's).
 */
import type { TaskState } from './states';

/** How many earlier succeeded runs the expected durations come from. */
export const ETA_HISTORY_RUNS = 10;

/** A running pipeline run's estimated finish (`ContainerSummary.eta`). */
export interface ContainerEta {
  /** When the run is expected to finish. */
  at: Date;
  /** `at` minus now, in ms. */
  remainingMs: number;
  /** What the estimate rests on: how many earlier runs' durations. */
  basis: { runs: number };
}

/** @internal One step of the run now, as the estimate needs it. */
export interface EtaStep {
  name: string;
  state: TaskState;
  dependsOn: string[];
  /** When the current attempt started (running steps). */
  startedAt: Date | null;
  percentageComplete: number;
}

/** @internal The median of each step's durations (`runs`: the earlier runs they come from). */
export function expectedDurations(history: Array<Array<{ name: string; durationMs: number }>>): {
  expected: Map<string, number>;
  runs: number;
} {
  const by = new Map<string, number[]>();
  for (const run of history) for (const s of run) (by.get(s.name) ?? by.set(s.name, []).get(s.name)!).push(s.durationMs);
  const expected = new Map<string, number>();
  for (const [name, list] of by) {
    const sorted = [...list].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    expected.set(name, sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2);
  }
  return { expected, runs: history.length };
}

/**
 * The run's estimated finish (see the module comment), or null.
 * @internal
 */
export function estimateFinish(
  steps: EtaStep[],
  history: Array<Array<{ name: string; durationMs: number }>>,
  now: Date,
): ContainerEta | null {
  if (history.length === 0) return null;
  const { expected, runs } = expectedDurations(history);
  const byName = new Map(steps.map((s) => [s.name, s]));
  const own = new Map<string, number>();
  for (const s of steps) {
    if (s.state !== 'running' && s.state !== 'pending') own.set(s.name, 0);
    else if (s.state === 'running') {
      const elapsed = Math.max(0, now.getTime() - (s.startedAt?.getTime() ?? now.getTime()));
      const p = s.percentageComplete;
      if (p > 0 && elapsed > 0) own.set(s.name, (elapsed * (100 - Math.min(100, p))) / p);
      else if (expected.has(s.name)) own.set(s.name, Math.max(0, expected.get(s.name)! - elapsed));
      else return null;
    } else if (expected.has(s.name)) own.set(s.name, expected.get(s.name)!);
    else return null;
  }
  // End of each step from now along its longest chain of unfinished dependencies (memoized; the
  // DAG is acyclic, a dependency outside the steps is taken as done).
  const end = new Map<string, number>();
  const endOf = (name: string, depth = 0): number => {
    const known = end.get(name);
    if (known !== undefined) return known;
    const s = byName.get(name);
    if (!s || depth > steps.length) return 0;
    const start = s.state === 'pending' ? Math.max(0, ...s.dependsOn.map((d) => endOf(d, depth + 1))) : 0;
    const e = start + own.get(name)!;
    end.set(name, e);
    return e;
  };
  const remainingMs = Math.round(Math.max(0, ...steps.map((s) => endOf(s.name))));
  return { at: new Date(now.getTime() + remainingMs), remainingMs, basis: { runs } };
}
