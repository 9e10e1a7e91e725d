/**
 * `pts logs CONTAINER [STEP] [-f] [--attempt N] [--json]`: prints the step logs of one task (or
 * of every task, each line tagged with its step), oldest first; `-f` keeps polling by cursor
 * until the container is finished (or Ctrl-C). A thin layer over `task.logs()`.
 */
import type { TaskContainer } from '../container';
import type { LogLine } from '../logs';
import { FINAL_CONTAINER_STATUSES } from '../states';
import type { Task } from '../task';
import { CliError, EXIT, withClient, type DbOptions } from './connect';
import { Out, parseDuration } from './output';

export interface LogsOptions extends DbOptions {
  follow?: boolean;
  attempt?: string;
  json?: boolean;
  interval?: string;
}

const LEVEL_STYLE = { debug: 'dim', info: 'reset', warn: 'yellow', error: 'red' } as const;

function lineText(out: Out, step: string | null, l: LogLine): string {
  const fields = l.fields ? ` ${JSON.stringify(l.fields)}` : '';
  const who = step === null ? `#${l.attempt}` : `${step}#${l.attempt}`;
  return `${out.style('dim', l.time.toISOString())} ${out.style(LEVEL_STYLE[l.level], l.level.toUpperCase().padEnd(5))} ${out.style('cyan', who)} ${l.message}${fields}`;
}

async function allTasks(c: TaskContainer): Promise<Task[]> {
  const tasks: Task[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await c.listTasks({ limit: 1000, cursor });
    for (const t of page.items) {
      const task = await c.getTask(t.name);
      if (task) tasks.push(task);
    }
    if (!page.nextCursor) return tasks;
    cursor = page.nextCursor;
  }
}

export async function logs(container: string, step: string | undefined, opts: LogsOptions): Promise<void> {
  const out = new Out();
  const attempt = opts.attempt === undefined ? undefined : Number(opts.attempt);
  if (attempt !== undefined && (!Number.isInteger(attempt) || attempt < 0)) throw new CliError('--attempt must be a whole number', EXIT.USAGE);
  const interval = opts.interval === undefined ? 1000 : (parseDuration(opts.interval) ?? Number(opts.interval));
  if (!Number.isFinite(interval) || interval < 50) throw new CliError('--interval must be a duration like 500ms or 2s', EXIT.USAGE);
  await withClient(opts, async (client) => {
    const c = await client.getTaskContainer(container);
    if (!c) throw new CliError(`no container named ${JSON.stringify(container)}`, EXIT.FAILURE);
    const cursors = new Map<string, string | undefined>();
    let stop = false;
    const onSigint = (): void => {
      stop = true;
    };
    process.once('SIGINT', onSigint);
    try {
      for (;;) {
        let tasks: Task[];
        if (step !== undefined) {
          const t = await c.getTask(step);
          if (!t) throw new CliError(`no task named ${JSON.stringify(step)} in ${JSON.stringify(container)}`, EXIT.FAILURE);
          tasks = [t];
        } else tasks = await allTasks(c);
        // Read the status first: lines logged before the container finished are all printed.
        const finished = FINAL_CONTAINER_STATUSES.includes((await c.summary()).status);
        for (const t of tasks) {
          for (;;) {
            const page = await t.logs({ attempt, cursor: cursors.get(t.name()), limit: 1000 });
            if (!cursors.has(t.name()) && page.dropped > 0 && !opts.json) {
              out.line(out.style('dim', `(${t.name()}: ${page.dropped} earlier line(s) not kept)`));
            }
            for (const l of page.lines) {
              if (opts.json) out.line(JSON.stringify({ task: t.name(), ...l }));
              else out.line(lineText(out, step === undefined ? t.name() : null, l));
            }
            cursors.set(t.name(), page.nextCursor);
            if (!page.hasMore) break;
          }
        }
        if (!opts.follow || finished || stop) return;
        await new Promise((r) => setTimeout(r, interval));
        if (stop) return;
      }
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
  });
}
