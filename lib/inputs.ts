/**
 * Results between steps: a claimed task's `inputs`, its dependencies' results keyed by
 * dependency name (`ctx.inputs` in `container.run()`, `lease.inputs` after
 * `claimNext(filter, { includeInputs: true })`, `inputs` in the HTTP claim reply). Read when the
 * task is claimed: no command for a task without dependencies, else ONE query projecting only
 * `name` and `result`. Over the client's `maxInputsBytes` the task is failed for good with code
 * `PTS_INPUTS_TOO_LARGE` — through its lease, so nothing is left holding it — and the caller
 * gets an {@link InputsTooLargeError}.
 */
import type { Core } from './core';
import { ERROR_CODES, InputsTooLargeError } from './errors';
import type { FailureInput, HeldTask } from './store';
import type { TaskRecord } from './types';

/** A task's inputs: each dependency's `result` (null if it stored none, e.g. skipped), by name. */
export type TaskInputs = Readonly<Record<string, unknown>>;

const NONE: TaskInputs = Object.freeze({});

/**
 * Reads the inputs of the held task `t`. Too large: records the failure with `fail` (the
 * lease's own fenced fail, not retryable) and rejects with {@link InputsTooLargeError}; a lease
 * lost meanwhile rejects with the lease's error instead.
 * @internal
 */
export async function readTaskInputs(core: Core, held: HeldTask, t: TaskRecord, fail: (f: FailureInput) => Promise<unknown>): Promise<TaskInputs> {
  if (t.dependsOn.length === 0) return NONE;
  const limit = core.opts.maxInputsBytes;
  const r = await core.store.readInputs(held.containerId, t.dependsOn, limit);
  if (r.ok) return Object.freeze(r.inputs);
  const message =
    `the inputs of task ${JSON.stringify(t.name)} (container ${JSON.stringify(t.container)}) are larger than ` +
    `maxInputsBytes (${limit} bytes of BSON): ${r.bytes} bytes with the result of ${JSON.stringify(r.dependency)}`;
  await fail({ message, stack: null, code: ERROR_CODES.INPUTS_TOO_LARGE, retryable: false });
  throw new InputsTooLargeError(message, { container: t.container, task: t.name, bytes: r.bytes, limit, dependency: r.dependency });
}
