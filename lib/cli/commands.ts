/**
 * The database commands of `pts`: status, watch, the task actions of the transition table
 * (retry, cancel, skip, reset, delete), resume and prune. Each is a thin layer over the public
 * client API.
 */
import type { Client } from '../client';
import { NotFoundError } from '../errors';
import {
  CONTAINER_ACTIONS,
  CONTAINER_STATUSES,
  TASK_STATES,
  FINAL_CONTAINER_STATUSES,
  isContainerStatus,
  isTaskState,
  type ContainerAction,
  type TaskAction,
} from '../states';
import type { TaskContainer } from '../container';
import type { ContainerSummary, TaskRecord } from '../types';
import type { ClockOffset } from '../server-clock';
import { CliError, EXIT, withClient, type DbOptions } from './connect';
import { Out, age, displayName, formatDuration, parseDuration, table } from './output';
import { LiveBlock, containerLine, containerTable, deadlineText, failureKindText, taskTable, watchFrame } from './render';

export interface StatusOptions extends DbOptions {
  json?: boolean;
  status?: string;
  prefix?: string;
  state?: string;
  limit?: string;
  cursor?: string;
  /** Tasks: only the children this task spawned. */
  parent?: string;
}

function parseLimit(text: string | undefined, def: number): number {
  if (text === undefined) return def;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new CliError('--limit must be an integer between 1 and 1000', EXIT.USAGE);
  return n;
}

function parseList<T extends string>(
  text: string | undefined,
  check: (v: unknown) => v is T,
  what: string,
  allowed: readonly string[],
): T[] | undefined {
  if (text === undefined) return undefined;
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = parts.filter((p) => !check(p));
  if (bad.length || parts.length === 0)
    throw new CliError(
      `unknown ${what} ${bad.join(',') || '(empty)'}; expected one of ${allowed.join(', ')}`,
      EXIT.USAGE,
    );
  return parts as T[];
}

async function containerOrFail(client: Client, name: string): Promise<TaskContainer> {
  const c = await client.getTaskContainer(name);
  if (!c) throw new CliError(`no container named ${JSON.stringify(name)}`, EXIT.FAILURE);
  return c;
}

/** `pts status [container]`. */
/** How far this machine's clock is from the database server's, which lease expiries are computed on. */
function clockLine(o: ClockOffset | null): string {
  if (!o) return 'database clock: not measured';
  if (o.source === 'local') return "database clock: the server does not report its time; this machine's clock is used";
  const side = o.offsetMs === 0 ? 'in step with' : `${Math.abs(o.offsetMs)} ms ${o.offsetMs > 0 ? 'behind' : 'ahead of'}`;
  return `database clock: this machine is ${side} the database server (± ${o.errorBoundMs} ms); leases are timed on the server's clock`;
}

export async function status(name: string | undefined, opts: StatusOptions): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    if (name === undefined) {
      const page = await client.listContainers({
        status: parseList(opts.status, isContainerStatus, 'status', CONTAINER_STATUSES),
        namePrefix: opts.prefix,
        limit: parseLimit(opts.limit, 50),
        cursor: opts.cursor ?? null,
      });
      if (opts.json) return out.json(page);
      if (page.items.length === 0) out.line('no containers');
      else containerTable(out, page.items);
      if (page.nextCursor) out.line(out.style('dim', `more: pts status --cursor ${page.nextCursor}`));
      out.line(out.style('dim', clockLine(client.clockOffset())));
      return;
    }
    const c = await containerOrFail(client, name);
    const summary = await c.summary();
    const state = parseList(opts.state, isTaskState, 'state', TASK_STATES);
    // Spawned children are listed under their parent (--parent), not among the top-level tasks,
    // so a fan-out of 10,000 stays one line ("N of M done"); a --state filter looks at every task.
    const parent = opts.parent !== undefined ? opts.parent : state ? undefined : null;
    const page = await c.listTasks({
      state,
      limit: parseLimit(opts.limit, 100),
      cursor: opts.cursor ?? null,
      ...(parent === undefined ? {} : { parent }),
    });
    const spawning = page.items.filter((t) => t.spawned).map((t) => t.name);
    const children = new Map((spawning.length ? await c.children(spawning) : []).map((k) => [k.parent, k]));
    if (opts.json) return out.json({ container: summary, tasks: page.items, children: [...children.values()], nextCursor: page.nextCursor });
    out.line(containerLine(out, summary));
    out.line(
      out.style(
        'dim',
        `created ${age(summary.createdAt)} ago` +
          (summary.startedAt ? `, started ${age(summary.startedAt)} ago` : '') +
          (summary.endedAt ? `, ended ${age(summary.endedAt)} ago` : ''),
      ),
    );
    out.line();
    if (opts.parent !== undefined) out.line(out.style('dim', `children of ${displayName(out, opts.parent, 60)}:`));
    if (page.items.length) taskTable(out, page.items, Date.now(), children);
    else out.line('no tasks');
    for (const k of children.values()) {
      out.line(out.style('dim', `${displayName(out, k.parent, 60)} spawned ${k.total} task(s): pts status ${name} --parent ${k.parent}`));
    }
    // Running tasks with a deadline (timeoutMs/stallMs): when their attempt ends.
    for (const t of page.items) {
      const d = deadlineText(out, t);
      if (d) out.line(`${out.style('yellow', '⏱')} ${out.style('bold', displayName(out, t.name, 60))}${d}`);
    }
    const failed = page.items.filter((t) => t.state === 'failed' && t.failures.length);
    for (const t of failed) {
      const f = t.failures[t.failures.length - 1];
      out.line();
      out.line(
        `${out.style('red', '✖')} ${out.style('bold', displayName(out, t.name, 60))} failed after ${t.invokeCount} attempt(s)${failureKindText(f)}: ${f.message}`,
      );
    }
    if (page.nextCursor) out.line(out.style('dim', `more: pts status ${name}${opts.parent !== undefined ? ` --parent ${opts.parent}` : ''} --cursor ${page.nextCursor}`));
  });
}

/** `pts watch <container>`: live progress until the container finishes. */
export async function watch(
  name: string,
  opts: DbOptions & { interval?: string; json?: boolean },
): Promise<void> {
  const out = new Out();
  const interval =
    opts.interval === undefined ? 500 : (parseDuration(opts.interval) ?? Number(opts.interval));
  if (!Number.isFinite(interval) || interval < 50)
    throw new CliError('--interval must be a duration like 500ms or 2s', EXIT.USAGE);
  const final = await withClient(opts, async (client) => {
    const c = await containerOrFail(client, name);
    return followContainer(client, c, out, { intervalMs: interval, json: opts.json });
  });
  if (final.status === 'failed' || final.status === 'cancelled')
    throw new CliError(`container ${name} ${final.status}`, EXIT.FAILURE);
}

const FINISHED = FINAL_CONTAINER_STATUSES;

/** Polls a container and redraws it until it is finished (or `signal` aborts). */
export async function followContainer(
  _client: Client,
  c: TaskContainer,
  out: Out,
  o: { intervalMs: number; json?: boolean; signal?: AbortSignal; notes?: () => string[] },
): Promise<ContainerSummary> {
  const live = new LiveBlock(out);
  let stop = false;
  const onSigint = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSigint);
  try {
    for (;;) {
      const summary = await c.summary();
      const tasks = await tasksForWatch(c, summary);
      if (o.json) out.line(JSON.stringify({ container: summary, tasks }));
      else {
        const notes = (o.notes?.() ?? []).map((text, i) => ({
          key: `#note${i}`,
          text: out.style('yellow', `  ↳ ${text}`),
        }));
        live.frame([...watchFrame(out, summary, tasks, Math.max(0, summary.total - tasks.length)), ...notes]);
      }
      const done = FINISHED.includes(summary.status) && summary.counts.running === 0;
      if (done || stop || o.signal?.aborted) return summary;
      await new Promise((r) => setTimeout(r, o.intervalMs));
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

/** Small containers: every task. Large ones: running tasks first, then the newest failures. */
async function tasksForWatch(c: TaskContainer, s: ContainerSummary): Promise<TaskRecord[]> {
  if (s.total <= 30) return (await c.listTasks({ limit: 30 })).items;
  const running = (await c.listTasks({ state: 'running', limit: 15 })).items;
  const failed = (await c.listTasks({ state: 'failed', limit: 5 })).items;
  return [...running, ...failed];
}

/** What each action did, for the output line. */
const PAST: Record<TaskAction, string> = {
  retry: 'retried',
  cancel: 'cancelled',
  skip: 'skipped',
  reset: 'reset',
  delete: 'deleted',
  markSucceeded: 'marked succeeded',
};

/** True for the actions a whole container offers (they take the task name as optional). */
function isContainerAction(kind: TaskAction): kind is ContainerAction {
  return (CONTAINER_ACTIONS as readonly string[]).includes(kind);
}

/** Applies one action; the container-wide ones to every eligible task when `task` is omitted. */
async function apply(c: TaskContainer, kind: TaskAction, task: string | undefined): Promise<number> {
  if (isContainerAction(kind)) return c[kind](task);
  if (task === undefined) throw new CliError(`${kind} needs a task name`, EXIT.USAGE);
  if (kind === 'skip') await c.skip(task);
  else if (kind === 'markSucceeded') await c.markSucceeded(task);
  else if ((await c.deleteTask(task)) === null) throw new NotFoundError(`no task named ${JSON.stringify(task)}`, { task });
  return 1;
}

/** `pts retry|cancel|skip|reset|delete <container> [task]` (one command per `TASK_ACTIONS` entry). */
export async function action(
  kind: TaskAction,
  name: string,
  task: string | undefined,
  opts: DbOptions & { json?: boolean },
): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const c = await containerOrFail(client, name);
    let affected: number;
    try {
      affected = await apply(c, kind, task);
    } catch (err) {
      if (err instanceof NotFoundError) throw new CliError(err.message, EXIT.FAILURE);
      throw err;
    }
    const past = PAST[kind];
    if (opts.json) return out.json({ container: name, task: task ?? null, action: kind, affected });
    out.line(
      `${past} ${affected} task${affected === 1 ? '' : 's'} in ${displayName(out, name, 60)}${task ? ` (${displayName(out, task, 60)})` : ''}`,
    );
  });
}

/** `pts rerun <container> --from <step> [--no-downstream] [--dry-run]`: prints (and applies) the plan. */
export async function rerun(
  name: string,
  opts: DbOptions & { from: string; downstream?: boolean; dryRun?: boolean; json?: boolean },
): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const c = await containerOrFail(client, name);
    let plan;
    try {
      plan = await c.rerun(opts.from, { downstream: opts.downstream !== false, dryRun: opts.dryRun === true });
    } catch (err) {
      if (err instanceof NotFoundError) throw new CliError(err.message, EXIT.FAILURE);
      throw err;
    }
    if (opts.json) return out.json({ container: name, ...plan });
    // Text output names at most 50 tasks per list (--json has them all).
    const names = (list: string[]) =>
      list.length
        ? list
            .slice(0, 50)
            .map((n) => displayName(out, n, 60))
            .join(', ') + (list.length > 50 ? `, … (${list.length - 50} more)` : '')
        : '(none)';
    const verb = plan.dryRun ? 'would reset' : 'reset';
    out.line(`${verb} ${plan.reset.length} task${plan.reset.length === 1 ? '' : 's'} in ${displayName(out, name, 60)}: ${names(plan.reset)}`);
    if (plan.interrupted.length) out.line(`${plan.dryRun ? 'would interrupt' : 'interrupted'} (running): ${names(plan.interrupted)}`);
    out.line(`kept ${plan.kept.length} task${plan.kept.length === 1 ? '' : 's'}${plan.kept.length && plan.kept.length <= 20 ? `: ${names(plan.kept)}` : ''}`);
    if (plan.dryRun) out.line('dry run: nothing changed (run without --dry-run to apply)');
  });
}

/** `pts mark-succeeded <container> <task> [--result JSON]`: a step fixed by hand. */
export async function markSucceeded(name: string, task: string, opts: DbOptions & { result?: string; json?: boolean }): Promise<void> {
  const out = new Out();
  let result: unknown = null;
  if (opts.result !== undefined) {
    try {
      result = JSON.parse(opts.result);
    } catch (err) {
      throw new CliError(`--result is not valid JSON: ${(err as Error).message}`, EXIT.USAGE);
    }
  }
  await withClient(opts, async (client) => {
    const c = await containerOrFail(client, name);
    let t;
    try {
      t = await c.markSucceeded(task, result);
    } catch (err) {
      if (err instanceof NotFoundError) throw new CliError(err.message, EXIT.FAILURE);
      throw err;
    }
    if (opts.json) return out.json(t.toJSON());
    out.line(`marked ${displayName(out, task, 60)} of ${displayName(out, name, 60)} succeeded`);
  });
}

/** `pts resume <container>`: recovers tasks whose worker died (expired leases) so they run again. */
export async function resume(name: string, opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    await containerOrFail(client, name);
    const report = await client.recoverStale({ container: name });
    if (opts.json) return out.json(report);
    if (report.recovered.length === 0)
      out.line(`nothing to resume in ${displayName(out, name, 60)}: no expired leases`);
    for (const r of report.recovered)
      out.line(
        `recovered ${displayName(out, r.task, 60)} (was held by ${displayName(out, r.owner, 40)}) → ${r.state}`,
      );
    if (report.reconciled.length) out.line(`repaired counters of ${report.reconciled.join(', ')}`);
  });
}

/** `pts pause <container>` / `pts unpause <container>` (idempotent). */
export async function setPaused(name: string, paused: boolean, opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const c = await containerOrFail(client, name);
    const was = c.isPaused(); // as of the lookup just made
    const summary = paused ? await c.pause({ by: `cli:${process.env.USER ?? 'unknown'}` }) : await c.resume();
    if (opts.json) return out.json(summary);
    const what = paused ? 'paused' : 'unpaused';
    if (was === paused) out.line(`${displayName(out, name, 60)} was already ${what}`);
    else
      out.line(
        paused
          ? `paused ${displayName(out, name, 60)}: no new claims; ${summary.counts.running} running task(s) will finish`
          : `unpaused ${displayName(out, name, 60)}: its tasks may be claimed again`,
      );
  });
}

export interface PruneOptions extends DbOptions {
  olderThan: string;
  status?: string;
  prefix?: string;
  yes?: boolean;
  json?: boolean;
}

/** `pts prune`: deletes finished containers older than a duration (dry run unless --yes). */
export async function prune(opts: PruneOptions): Promise<void> {
  const out = new Out();
  if (opts.olderThan === undefined) throw new CliError('--older-than <duration> is required (or --policy: apply the retention policies)', EXIT.USAGE);
  const olderThan = parseDuration(opts.olderThan);
  if (olderThan === null)
    throw new CliError(
      `--older-than must be a duration like 7d, 12h or 30m (got ${JSON.stringify(opts.olderThan)})`,
      EXIT.USAGE,
    );
  const statuses = parseList(
    opts.status ?? 'succeeded,failed,cancelled',
    isContainerStatus,
    'status',
    CONTAINER_STATUSES,
  )!;
  const unfinished = statuses.filter((s) => !FINISHED.includes(s));
  if (unfinished.length)
    throw new CliError(
      `prune only deletes finished containers; ${unfinished.join(',')} is not a finished status`,
      EXIT.USAGE,
    );
  await withClient(opts, async (client) => {
    const cutoff = Date.now() - olderThan;
    const victims: ContainerSummary[] = [];
    let cursor: string | null = null;
    do {
      const page = await client.listContainers({
        status: statuses,
        namePrefix: opts.prefix,
        limit: 500,
        cursor,
      });
      for (const c of page.items) {
        const finishedAt = new Date(c.endedAt ?? c.updatedAt).getTime();
        if (finishedAt < cutoff) victims.push(c);
      }
      cursor = page.nextCursor;
    } while (cursor);
    const rows = victims.map((c) => [
      displayName(out, c.name),
      c.status,
      String(c.total),
      `${age(c.endedAt ?? c.updatedAt)} ago`,
    ]);
    if (!opts.yes) {
      if (opts.json)
        return out.json({ dryRun: true, olderThanMs: olderThan, wouldDelete: victims.map((c) => c.name) });
      if (!victims.length)
        return out.line(
          `nothing to prune: no ${statuses.join('/')} container finished more than ${formatDuration(olderThan)} ago`,
        );
      table(out, ['CONTAINER', 'STATUS', 'TASKS', 'FINISHED'], rows);
      out.line(`dry run: would delete ${victims.length} container(s); re-run with --yes to delete them`);
      return;
    }
    const deleted: string[] = [];
    for (const c of victims) if (await client.deleteTaskContainer(c.name)) deleted.push(c.name);
    // Deletion records older than the same cutoff (the changes feed's deletion entries).
    const tombstones = await client.pruneTombstones(new Date(cutoff), { namePrefix: opts.prefix });
    if (opts.json)
      return out.json({ dryRun: false, olderThanMs: olderThan, deleted, tombstonesRemoved: tombstones });
    for (const n of deleted) out.line(`deleted ${displayName(out, n, 60)}`);
    out.line(
      `deleted ${deleted.length} container(s); removed ${tombstones} deletion record(s) older than ${formatDuration(olderThan)}`,
    );
  });
}
