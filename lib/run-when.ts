/**
 * When a step runs, given how its dependencies ended (`TaskSpec.runWhen`): the pure rule, with no
 * database, shared by the store (which keeps `waitingOn` by it), the sweep (which repairs and
 * releases by it) and the docs' table. Cleanup steps — releasing locks, sending the failure
 * report, deleting temp files — are `'always'` or `'failed'` steps.
 *
 * - `'succeeded'` (the default): runs once every dependency succeeded or was skipped; a failed or
 *   cancelled dependency blocks it for good (it stays pending).
 * - `'always'`: runs once every dependency is final, whatever it ended as.
 * - `'failed'`: runs once every dependency is final if at least one of them failed; if none
 *   failed (all succeeded, were skipped or cancelled) it is skipped instead (operation `bypass`).
 *   A cancelled dependency does not count as failed: cancelling is an operator's decision, and
 *   the container ends `cancelled`, not `failed`.
 *
 * A dependency that can never run because something upstream of it failed (a pending
 * `'succeeded'` step behind a failed one) counts, once nothing in the container can move any
 * more, as failed (Airflow's `upstream_failed`); one held back only by a cancellation counts as
 * cancelled. That is {@link blockedCauses}.
 */
import { FINAL_TASK_STATES, SATISFYING_TASK_STATES, type TaskState } from './states';

/** Every value of `TaskSpec.runWhen`. */
export const RUN_WHEN = Object.freeze(['succeeded', 'always', 'failed'] as const);
export type RunWhen = (typeof RUN_WHEN)[number];

/** The run conditions of cleanup steps: the ones a failed or cancelled dependency unblocks. */
export const CLEANUP_RUN_WHEN: readonly RunWhen[] = Object.freeze(['always', 'failed']);

/** How the CLI and the dashboard name each `runWhen` (a badge on cleanup steps). */
export const RUN_WHEN_LABELS: Readonly<Record<RunWhen, string>> = Object.freeze({ succeeded: 'on success', always: 'always', failed: 'on failure' });

export function isRunWhen(value: unknown): value is RunWhen {
  return typeof value === 'string' && (RUN_WHEN as readonly string[]).includes(value);
}

/** True for `'always'` and `'failed'` steps. */
export function isCleanup(runWhen: RunWhen | undefined): boolean {
  return runWhen === 'always' || runWhen === 'failed';
}

/**
 * The `waitingOn` marker of a `'failed'` step whose verdict is not decided yet: it stays in
 * `waitingOn` (so the step is not ready) until a dependency fails (it is pulled: the step runs once
 * the rest are final) or every dependency ended without a failure (the step is skipped). Task
 * names cannot contain control characters, so it never names a task. Never shown: records,
 * the HTTP API and the CLI list `waitingOn` without it.
 */
export const UNDECIDED = '\u001fany-dependency-failed';

/** How a dependency ended, for the rule: its state, or `'open'` while it may still run. */
export type DependencyOutcome = TaskState | 'open';

/** What a step does, given the outcomes of all its dependencies. */
export type RunVerdict = 'wait' | 'run' | 'skip' | 'blocked';

/** True if a dependency in `state` holds back a step with `runWhen` (it stays in `waitingOn`). */
export function holdsBack(runWhen: RunWhen, state: TaskState): boolean {
  if (runWhen === 'succeeded') return !SATISFYING_TASK_STATES.includes(state);
  return !FINAL_TASK_STATES.includes(state);
}

/**
 * The verdict of the rule: `wait` while a dependency may still run (or, for `'succeeded'`, has
 * not succeeded yet), `run`, `skip` (a `'failed'` step none of whose dependencies failed) or
 * `blocked` (a `'succeeded'` step behind a failed or cancelled dependency: it never runs).
 */
export function verdict(runWhen: RunWhen, outcomes: readonly DependencyOutcome[]): RunVerdict {
  const final = (o: DependencyOutcome): o is TaskState => o !== 'open' && FINAL_TASK_STATES.includes(o);
  if (runWhen === 'succeeded') {
    if (outcomes.every((o) => o !== 'open' && SATISFYING_TASK_STATES.includes(o))) return 'run';
    return outcomes.some((o) => final(o) && !SATISFYING_TASK_STATES.includes(o)) ? 'blocked' : 'wait';
  }
  if (!outcomes.every(final)) return 'wait';
  if (runWhen === 'always') return 'run';
  return outcomes.includes('failed') ? 'run' : 'skip';
}

/**
 * The `waitingOn` of a step whose dependencies are in `states` now (a new task: all pending; a
 * reset): the dependencies that hold it back, plus {@link UNDECIDED} for a `'failed'` step none of
 * whose dependencies has failed yet. Dependencies missing from `states` count as pending.
 */
export function initialWaitingOn(runWhen: RunWhen, dependsOn: readonly string[], states: ReadonlyMap<string, TaskState> = new Map()): string[] {
  const out = dependsOn.filter((d) => holdsBack(runWhen, states.get(d) ?? 'pending'));
  if (runWhen === 'failed' && dependsOn.length > 0 && !dependsOn.some((d) => states.get(d) === 'failed')) {
    // Every dependency already final without a failure: the marker alone; the store skips the step.
    out.push(UNDECIDED);
  }
  return out;
}

/** `waitingOn` as records show it: without the {@link UNDECIDED} marker. */
export function visibleWaitingOn(waitingOn: readonly string[] | undefined): string[] {
  return (waitingOn ?? []).filter((n) => n !== UNDECIDED);
}

/** A pending task as {@link blockedCauses} reads it. */
export interface PendingStep {
  name: string;
  runWhen: RunWhen;
  waitingOn: readonly string[];
}

/**
 * Which pending steps can never run, and why (`'failed'` or `'cancelled'`), when nothing in the
 * container is running or ready: a pending `'succeeded'` step waiting on a failed or cancelled task,
 * or on a step that is itself blocked. A pending cleanup step is never blocked (it runs once its
 * dependencies settle). With `halted` (a fail-fast run stopped claiming) every pending
 * `'succeeded'` step counts as blocked by a failure. A failure wins over a cancellation.
 * `states`: the state of every task named in a `waitingOn` (missing = pending and not blocked).
 */
export function blockedCauses(
  pending: readonly PendingStep[],
  states: ReadonlyMap<string, TaskState>,
  halted = false,
): Map<string, 'failed' | 'cancelled'> {
  const byName = new Map(pending.map((p) => [p.name, p]));
  const memo = new Map<string, 'failed' | 'cancelled' | null>();
  const cause = (name: string, seen: Set<string>): 'failed' | 'cancelled' | null => {
    if (memo.has(name)) return memo.get(name)!;
    const p = byName.get(name);
    let c: 'failed' | 'cancelled' | null = null;
    if (p && p.runWhen === 'succeeded' && !seen.has(name)) {
      if (halted) c = 'failed';
      else {
        seen.add(name);
        for (const w of p.waitingOn) {
          const s = states.get(w);
          const wc = s === 'failed' || s === 'cancelled' ? s : s === 'pending' ? cause(w, seen) : null;
          if (wc === 'failed') {
            c = 'failed';
            break;
          }
          if (wc === 'cancelled') c = 'cancelled';
        }
        seen.delete(name);
      }
    }
    memo.set(name, c);
    return c;
  };
  const out = new Map<string, 'failed' | 'cancelled'>();
  for (const p of pending) {
    const c = cause(p.name, new Set());
    if (c) out.set(p.name, c);
  }
  return out;
}

/** A cleanup step the sweep may release: the entries to pull from its `waitingOn`, or skip it. */
export interface Release {
  name: string;
  /** `waitingOn` as read (the write's precondition). */
  waitingOn: readonly string[];
  verdict: 'run' | 'skip';
}

/**
 * The pending cleanup steps that can be decided now, when nothing in the container is running or
 * ready: each of whose dependencies is final or blocked for good ({@link blockedCauses}).
 * `dependsOn` and `states` cover the cleanup steps' dependencies.
 */
export function releasable(
  pending: ReadonlyArray<PendingStep & { dependsOn: readonly string[] }>,
  states: ReadonlyMap<string, TaskState>,
  halted = false,
): Release[] {
  const blocked = blockedCauses(pending, states, halted);
  const out: Release[] = [];
  for (const p of pending) {
    if (!isCleanup(p.runWhen) || p.waitingOn.length === 0) continue;
    const outcomes = p.dependsOn.map((d): DependencyOutcome => blocked.get(d) ?? states.get(d) ?? 'open');
    const v = verdict(p.runWhen, outcomes.map((o) => (o === 'pending' || o === 'running' ? 'open' : o)));
    if (v === 'run' || v === 'skip') out.push({ name: p.name, waitingOn: p.waitingOn, verdict: v });
  }
  return out;
}
