/**
 * Workers for pipelines: `client.work(pipeline, handlers)` runs the runs the schedulers start
 * (containers of `started` run records), oldest slot first, one container at a time with
 * `concurrency` tasks, until stopped. Schedulers and workers need not share a process: the run
 * records and the containers are all they share. Any number of workers may work on the same
 * pipeline (task claims are atomic).
 * @internal
 */
import type { Core } from './core';
import { TaskContainer } from './container';
import { isTransient, NotFoundError, ValidationError } from './errors';
import type { Handlers, RunResult } from './runner';
import { FINAL_CONTAINER_STATUSES } from './states';
import { sleep } from './sleep';
import { validateName, validateNonNegativeInt, validatePositiveNumber } from './validation';

/** Options of `client.work(pipeline, handlers, options)`. */
export interface WorkOptions {
  /** Tasks of a run handled at once. @defaultValue 4 */
  concurrency?: number;
  /** Wait between looks for a new run when there is none. @defaultValue 1_000 */
  pollIntervalMs?: number;
  /** Called after each run this worker worked on ended (finished, or stopped). */
  onRun?: (container: string, result: RunResult) => void;
}

/** A running worker loop. */
export interface WorkHandle {
  /** Stops claiming; running handlers' signals abort. Resolves when the loop has ended. */
  stop(): Promise<void>;
  /** Resolves when the loop has ended (after `stop()`). */
  readonly done: Promise<void>;
}

export function startWork(
  core: Core,
  pipeline: string,
  handlers: Handlers,
  options: WorkOptions = {},
): WorkHandle {
  const name = validateName(pipeline, 'pipeline');
  if (options === null || typeof options !== 'object')
    throw new ValidationError('options must be an object', { path: 'options' });
  const concurrency =
    options.concurrency === undefined
      ? 4
      : Math.max(1, validateNonNegativeInt(options.concurrency, 'concurrency', 10_000));
  const pollMs =
    options.pollIntervalMs === undefined
      ? 1_000
      : validatePositiveNumber(options.pollIntervalMs, 'pollIntervalMs');
  if (typeof handlers !== 'function' && (handlers === null || typeof handlers !== 'object'))
    throw new ValidationError('handlers must be a function or an object of functions by task name', {
      path: 'handlers',
    });
  const ac = new AbortController();
  /** Runs this worker cannot work on (a handler is missing): not picked again. */
  const refused = new Set<string>();
  const pause = (): Promise<void> => sleep(pollMs, ac.signal);
  const next = async (): Promise<string | null> => {
    const open = (await core.store.openRuns(name)).filter(
      (r) => r.status === 'started' && !refused.has(r.container),
    );
    const statuses = await core.store.containerStatuses(open.map((r) => r.container));
    return (
      open.find((r) => {
        const st = statuses.get(r.container);
        return st !== undefined && !FINAL_CONTAINER_STATUSES.includes(st);
      })?.container ?? null
    );
  };
  const loop = async (): Promise<void> => {
    await core.ready().catch(() => undefined);
    while (!ac.signal.aborted) {
      try {
        const container = await next();
        core.notify.dbAvailable('work');
        if (!container) {
          await pause();
          continue;
        }
        const doc = await core.store.findContainer(container);
        if (!doc) continue;
        try {
          const result = await new TaskContainer(core, doc).run(handlers, { concurrency, signal: ac.signal });
          options.onRun?.(container, result);
          // Not finished (paused, or stopped): do not pick it again at once.
          if (!FINAL_CONTAINER_STATUSES.includes(result.status)) await pause();
        } catch (err) {
          if (err instanceof ValidationError) refused.add(container);
          else if (!(err instanceof NotFoundError)) throw err;
        }
      } catch (err) {
        if (isTransient(err)) core.notify.dbUnavailable('work', err as Error);
        else
          process.emitWarning(
            `persistent-task-status: work(${JSON.stringify(name)}) failed: ${(err as Error).message}`,
          );
        await pause();
      }
    }
  };
  const done = loop();
  return {
    async stop() {
      ac.abort();
      await done;
    },
    done,
  };
}
