/**
 * Dynamic fan-out: a running task adds children (`ctx.spawn`, `lease.spawn`, HTTP
 * `POST …/tasks/:task/spawn`). The whole call is validated first (nothing written on a bad spec),
 * then added in batches of 1000, each fenced by the caller's lease (lib/store/spawn.ts).
 *
 * - Idempotent by name: a child that exists already (a retried parent spawning the same names)
 *   is returned as it is; a name taken by a task the parent did not spawn is a DuplicateError.
 * - Children may depend on each other (in the call or spawned earlier by the same parent), on
 *   nothing else: the parent's dependents wait for the children, so a child waiting on anything
 *   downstream of the parent could deadlock.
 * - One level: a spawned child cannot spawn (ValidationError).
 * @internal
 */
import type { Core } from './core';
import { DuplicateError, ValidationError } from './errors';
import type { HeldTask } from './store';
import { toTaskRecord } from './store/documents';
import type { SpawnResult, TaskRecord, TaskSpec } from './types';
import { checkDependencies, deadlineDefaults, NO_DEADLINES, resolveTaskSpec } from './validation';

/** Most children one call may add (the batch limit of `addTasks`). */
export const MAX_SPAWN = 100_000;
/**
 * Children per fenced insert batch. Mutable for specs only (FerretDB scans on every insert: specs
 * test the batching with small batches instead of thousands of children).
 * @internal
 */
export const SPAWN_BATCH = { size: 1000 };

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** Adds the children `specs` of the task held under `held` (its record: `parent`). */
export async function spawnChildren(
  core: Core,
  held: HeldTask,
  parentRecord: Pick<TaskRecord, 'parent'>,
  specs: TaskSpec[],
): Promise<SpawnResult> {
  if (!Array.isArray(specs)) throw new ValidationError('tasks must be an array', { path: 'tasks' });
  if (specs.length > MAX_SPAWN)
    throw new ValidationError(`at most ${MAX_SPAWN} tasks per spawn`, { path: 'tasks' });
  const parent = held.name;
  if (parentRecord.parent !== null) {
    throw new ValidationError(
      `task ${JSON.stringify(parent)} was spawned by ${JSON.stringify(parentRecord.parent)}: a spawned task cannot spawn`,
      {
        path: 'tasks',
        task: parent,
        parent: parentRecord.parent,
      },
    );
  }
  if (specs.length === 0) return { tasks: [], created: 0 };
  const rules = await core.dataRules();
  // The deadline defaults of an add (the container's, else the client's): one read of the
  // container, skipped when every child sets both limits itself.
  const inherits = specs.some(
    (s) => !s || typeof s !== 'object' || s.timeoutMs === undefined || s.stallMs === undefined,
  );
  const defaults = inherits
    ? deadlineDefaults((await core.store.findContainerById(held.containerId)) ?? {}, core.opts)
    : NO_DEADLINES;
  const resolved = specs.map((s, i) => resolveTaskSpec(s, `tasks[${i}]`, rules, defaults));
  const inBatch = new Set(resolved.map((s) => s.name));
  if (inBatch.has(parent))
    throw new ValidationError(`task ${JSON.stringify(parent)} cannot spawn itself`, {
      path: 'tasks',
      task: parent,
    });
  const external = [...new Set(resolved.flatMap((s) => s.dependsOn).filter((d) => !inBatch.has(d)))];
  // One read: the batch names that exist already and the dependencies outside the batch.
  const known = new Map(
    (await core.store.spawnCandidates(held.containerId, [...inBatch, ...external])).map((t) => [t.name, t]),
  );
  resolved.forEach((s, i) => {
    const cur = known.get(s.name);
    if (cur && cur.parent !== parent) {
      throw new DuplicateError(
        `task ${JSON.stringify(s.name)} already exists and was not spawned by ${JSON.stringify(parent)}`,
        {
          task: s.name,
          parent: cur.parent ?? null,
          requested: parent,
        },
      );
    }
    if (cur && !sameSet(cur.dependsOn ?? [], s.dependsOn)) {
      throw new DuplicateError(
        `task ${JSON.stringify(s.name)} already exists with different dependencies (${JSON.stringify(cur.dependsOn ?? [])})`,
        {
          task: s.name,
          existing: cur.dependsOn ?? [],
          requested: s.dependsOn,
        },
      );
    }
    for (const d of s.dependsOn) {
      if (inBatch.has(d)) continue;
      const dep = known.get(d);
      if (!dep || dep.parent !== parent) {
        throw new ValidationError(
          `child ${JSON.stringify(s.name)} may depend only on other children of ${JSON.stringify(parent)}, not on ${JSON.stringify(d)}`,
          {
            path: `tasks[${i}].dependsOn`,
            task: s.name,
            dependency: d,
          },
        );
      }
    }
  });
  const siblings = new Set([...known.values()].filter((t) => !inBatch.has(t.name)).map((t) => t.name));
  const ordered = checkDependencies(resolved, siblings);
  const existingNames = new Set(known.keys());
  const byName = new Map<string, TaskRecord>();
  let created = 0;
  for (let i = 0; i < ordered.length; i += SPAWN_BATCH.size) {
    const slice = ordered.slice(i, i + SPAWN_BATCH.size);
    const r = await core.store.spawnBatch(held, slice, existingNames);
    for (const t of slice) existingNames.add(t.name);
    core.notify.added(held.container, r.tasks, r.created, r.container, r.also);
    r.tasks.forEach((t, j) => {
      byName.set(t.name, toTaskRecord(t));
      if (r.created[j]) created++;
    });
    if (r.lost) throw r.lost;
  }
  return { tasks: resolved.map((s) => byName.get(s.name)!), created };
}
