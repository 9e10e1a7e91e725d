/**
 * Rendering a container and its tasks as terminal text: used by `pts status <container>`,
 * `pts watch` and `pts demo`.
 */
import { RUN_WHEN_LABELS } from '../run-when';
import { SATISFYING_TASK_STATES, TASK_STATES_BY_PROGRESS } from '../states';
import type { ChildrenSummary, ContainerSummary, TaskRecord } from '../types';
import {
  age,
  bar,
  clip,
  countsText,
  displayName,
  formatDuration,
  padVisible,
  visible,
  stateText,
  table,
  taskDuration,
  type Out,
} from './output';

const ICON: Record<string, string> = {
  pending: '·',
  running: '▸',
  succeeded: '✔',
  failed: '✖',
  skipped: '↷',
  cancelled: '⊘',
};

/** The header line of a container: name, status, bar, counts. */
export function containerLine(out: Out, c: ContainerSummary): string {
  return `${out.style('bold', displayName(out, c.name, 60))}  ${stateText(out, c.status)}${pausedText(out, c)}  ${bar(out, c.percentageComplete, 30, c.status)}  ${countsText(out, c)}${etaText(out, c)}`;
}

/** `  eta 14:05:09Z (in 3m 20s, from 10 runs)` for a running pipeline run with an estimate (docs/schedules.md#eta). */
export function etaText(out: Out, c: Pick<ContainerSummary, 'eta'>): string {
  if (!c.eta) return '';
  const at = new Date(c.eta.at).toISOString().slice(11, 19);
  return `  ${out.style('dim', `eta ${at}Z (in ${formatDuration(c.eta.remainingMs)}, from ${c.eta.basis.runs} run${c.eta.basis.runs === 1 ? '' : 's'})`)}`;
}

/** ` paused` after the status of a paused container (nothing otherwise). */
function pausedText(out: Out, c: ContainerSummary): string {
  return c.paused ? ` ${out.style('yellow', 'paused')}` : '';
}

/** Lines describing each task (one per task, with its bar when the output is a terminal). */
export function taskLines(out: Out, tasks: TaskRecord[], now = Date.now()): string[] {
  const names = tasks.map((t) => displayName(out, t.name, 28));
  const nameWidth = Math.min(28, Math.max(4, ...names.map(visible)));
  const textWidth = Math.max(20, out.columns - nameWidth - 62);
  return tasks.map((t, i) => {
    const icon = out.tty ? `${stateText(out, t.state).replace(t.state, ICON[t.state] ?? '?')} ` : '';
    const retry =
      t.failureCount > 0
        ? out.style('yellow', ` (${t.failureCount} failed attempt${t.failureCount === 1 ? '' : 's'})`)
        : '';
    return (
      `  ${icon}${padVisible(names[i], nameWidth)}  ${bar(out, t.percentageComplete, 16, t.state)}  ` +
      `${stateText(out, t.state.padEnd(9))}  ${formatDuration(taskDuration(t, now)).padStart(7)}  ${runWhenBadge(out, t)}${out.style('dim', clip(t.statusText, textWidth))}${retry}${deadlineText(out, t, now)}`
    );
  });
}

/**
 * ` deadline in 12s (timeout)` for a running task with `timeoutMs`/`stallMs` (nothing otherwise):
 * when its attempt ends whatever its heartbeats say, and which limit that is.
 */
export function deadlineText(out: Out, t: TaskRecord, now = Date.now()): string {
  const d = t.lease?.deadline;
  if (t.state !== 'running' || !d) return '';
  const which = t.lease?.timeoutAt && t.lease.timeoutAt.getTime() === d.getTime() ? 'timeout' : 'stall';
  const left = d.getTime() - now;
  return out.style('yellow', left >= 0 ? ` deadline in ${formatDuration(left)} (${which})` : ` deadline passed ${formatDuration(-left)} ago (${which})`);
}

/** What ended a failed attempt, when it was not an error: ` (timeout)`, ` (stalled)`, ` (interrupted)`. */
export function failureKindText(f: { kind: string }): string {
  return f.kind === 'error' ? '' : ` (${f.kind})`;
}

/** `[always] ` / `[on failure] ` before the status text of a cleanup step (runWhen, lib/run-when.ts); nothing for the default. */
export function runWhenBadge(out: Out, t: Pick<TaskRecord, 'runWhen'>): string {
  return t.runWhen && t.runWhen !== 'succeeded' ? `${out.style('cyan', `[${RUN_WHEN_LABELS[t.runWhen]}]`)} ` : '';
}

/** `3 of 10 done` (plus `, 1 failed` / `, 2 running` when there are) for a task that spawned children. */
export function childrenText(out: Out, c: ChildrenSummary): string {
  const extra = TASK_STATES_BY_PROGRESS.filter((s) => s !== 'pending' && !SATISFYING_TASK_STATES.includes(s) && c.counts[s] > 0).map((s) => `${c.counts[s]} ${s}`);
  const text = `${c.done} of ${c.total} done${extra.length ? `, ${extra.join(', ')}` : ''}`;
  return c.counts.failed > 0 ? out.style('red', text) : c.done === c.total ? out.style('green', text) : text;
}

/**
 * Static table of tasks for `pts status <container>`. `children`: counts of the children spawned
 * by tasks of the page (a CHILDREN column, "N of M done", when there are any).
 */
export function taskTable(out: Out, tasks: TaskRecord[], now = Date.now(), children: ReadonlyMap<string, ChildrenSummary> = new Map()): void {
  const kids = tasks.some((t) => children.has(t.name));
  // A PRIORITY column only when some task on the page has a priority other than the default 0.
  const prio = tasks.some((t) => (t.priority ?? 0) !== 0);
  // A RUNS column only when the page holds a cleanup step (runWhen 'always'/'failed').
  const runs = tasks.some((t) => (t.runWhen ?? 'succeeded') !== 'succeeded');
  table(
    out,
    ['TASK', 'STATE', 'PROGRESS', 'ATTEMPTS', 'DURATION', ...(prio ? ['PRIORITY'] : []), ...(runs ? ['RUNS'] : []), ...(kids ? ['CHILDREN'] : []), 'DEPENDS ON', 'STATUS'],
    tasks.map((t) => [
      displayName(out, t.name),
      stateText(out, t.state),
      `${t.percentageComplete.toFixed(0)}%`,
      String(t.invokeCount),
      formatDuration(taskDuration(t, now)),
      ...(prio ? [String(t.priority ?? 0)] : []),
      ...(runs ? [RUN_WHEN_LABELS[t.runWhen ?? 'succeeded']] : []),
      ...(kids ? [children.has(t.name) ? childrenText(out, children.get(t.name)!) : '-'] : []),
      t.dependsOn.map((d) => displayName(out, d, 24)).join(',') || '-',
      clip(t.statusText, 60) || '-',
    ]),
  );
}

/** Static table of containers for `pts status`. */
export function containerTable(out: Out, items: ContainerSummary[], now = Date.now()): void {
  table(
    out,
    ['CONTAINER', 'STATUS', 'PROGRESS', 'TASKS', 'COUNTS', 'AGE', 'UPDATED'],
    items.map((c) => [
      displayName(out, c.name),
      stateText(out, c.status) + pausedText(out, c),
      `${c.percentageComplete.toFixed(1)}%`,
      String(c.total),
      countsText(out, c),
      age(c.createdAt, now),
      `${age(c.updatedAt, now)} ago`,
    ]),
  );
}

/**
 * Redraws a block of lines in place on a terminal; on a pipe prints only lines that changed
 * since the last frame, so logs stay readable.
 */
export class LiveBlock {
  private drawn = 0;
  private last = new Map<string, string>();

  constructor(private readonly out: Out) {}

  /** `lines` are keyed so that a pipe gets one line per change of a key's text. */
  frame(lines: Array<{ key: string; text: string; coarse?: string }>): void {
    if (this.out.tty) {
      if (this.drawn > 0) this.out.write(`\u001b[${this.drawn}F\u001b[J`);
      for (const l of lines) this.out.line(l.text);
      this.drawn = lines.length;
      return;
    }
    for (const l of lines) {
      const sig = l.coarse ?? l.text;
      if (this.last.get(l.key) !== sig) {
        this.last.set(l.key, sig);
        this.out.line(l.text);
      }
    }
  }
}

/** One frame of a watched container: header + tasks (coarse keys make pipe output quarter-step). */
export function watchFrame(
  out: Out,
  c: ContainerSummary,
  tasks: TaskRecord[],
  more: number,
): Array<{ key: string; text: string; coarse?: string }> {
  const lines: Array<{ key: string; text: string; coarse?: string }> = [
    {
      key: '#container',
      text: containerLine(out, c),
      coarse: `${c.status}:${Math.floor(c.percentageComplete / 10)}`,
    },
  ];
  const rendered = taskLines(out, tasks);
  tasks.forEach((t, i) =>
    lines.push({
      key: t.name,
      text: rendered[i],
      coarse: `${t.state}:${Math.floor(t.percentageComplete / 25)}:${t.failureCount}`,
    }),
  );
  if (more > 0) lines.push({ key: '#more', text: out.style('dim', `  … and ${more} more task(s)`) });
  return lines;
}
