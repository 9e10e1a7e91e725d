/**
 * Pipelines: a named list of task specs (or a function of the run's slot time returning them),
 * the name of the container a run of one slot lives in, the hash of a run's definition and the
 * difference between two definitions. Pure: the registry of a client's pipelines lives on the
 * client, runs are stored by lib/store/schedules.ts.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from './errors';
import type { TaskSpec } from './types';
import { checkDependencies, resolveTaskSpec, validateName, type DataRules } from './validation';

/** Options of `client.definePipeline(name, options)`. */
export interface PipelineOptions {
  /** The tasks of every run, or a function of the run's slot time that returns them. */
  tasks: TaskSpec[] | ((slot: Date) => TaskSpec[] | Promise<TaskSpec[]>);
  /** @defaultValue 'continue' */
  failurePolicy?: 'continue' | 'fail-fast';
}

/** A pipeline defined on a client (what `definePipeline` returns). */
export interface Pipeline {
  readonly name: string;
  readonly tasks: PipelineOptions['tasks'];
  readonly failurePolicy: 'continue' | 'fail-fast';
}

/** One step of a run's definition, as recorded with the run. */
export interface StepDefinition {
  name: string;
  dependsOn: string[];
  /** Digest of the step's weight, retry settings and key. */
  settings: string;
}

/** What changed between the definitions of two runs of a pipeline. */
export interface DefinitionChange {
  /** Definition hash of the older run. */
  fromHash: string;
  toHash: string;
  added: string[];
  removed: string[];
  /** Steps present in both whose dependencies differ. */
  dependenciesChanged: Array<{ name: string; from: string[]; to: string[] }>;
  /** Steps present in both whose other settings (weight, retries, key) differ. */
  settingsChanged: string[];
}

/** @internal */
export function definePipeline(name: string, o: PipelineOptions): Pipeline {
  const n = validateName(name, 'pipeline name');
  if (n.includes('@'))
    throw new ValidationError(
      'pipeline name must not contain "@" (it separates the name from the slot in run names)',
      { path: 'name' },
    );
  if (o === null || typeof o !== 'object')
    throw new ValidationError('pipeline options must be an object', { path: 'options' });
  if (!Array.isArray(o.tasks) && typeof o.tasks !== 'function')
    throw new ValidationError('tasks must be an array of task specs or a function of the slot', {
      path: 'tasks',
    });
  if (o.failurePolicy !== undefined && o.failurePolicy !== 'continue' && o.failurePolicy !== 'fail-fast') {
    throw new ValidationError("failurePolicy must be 'continue' or 'fail-fast'", { path: 'failurePolicy' });
  }
  return Object.freeze({
    name: n,
    tasks: Array.isArray(o.tasks) ? (Object.freeze([...o.tasks]) as TaskSpec[]) : o.tasks,
    failurePolicy: o.failurePolicy ?? 'continue',
  });
}

/**
 * The container of a pipeline's run for one slot: `<pipeline>@<slot as ISO-8601 UTC>`, e.g.
 * `epf-check@2026-03-29T01:00:00.000Z`. One slot, one name: creating it is idempotent.
 */
export function runContainerName(pipeline: string, slot: Date): string {
  return `${pipeline}@${slot.toISOString()}`;
}

/** @internal The resolved task specs of a run, its steps and its definition hash. */
export interface RunDefinition {
  specs: TaskSpec[];
  steps: StepDefinition[];
  hash: string;
}

/**
 * Resolves the tasks of the run of `slot` (calling the pipeline's function if it has one) and
 * validates them as `addTasks` would (specs, dependencies, cycles). The hash covers each step's
 * name, dependencies, weight, retry settings and key — not its data, which may differ per slot.
 * @internal
 */
export async function resolveRun(p: Pipeline, slot: Date, rules: DataRules): Promise<RunDefinition> {
  const raw = typeof p.tasks === 'function' ? await p.tasks(new Date(slot.getTime())) : p.tasks;
  if (!Array.isArray(raw) || raw.length === 0)
    throw new ValidationError(`pipeline ${JSON.stringify(p.name)} must have at least one task`, {
      path: 'tasks',
      pipeline: p.name,
    });
  const resolved = raw.map((s, i) => resolveTaskSpec(s, `tasks[${i}]`, rules));
  checkDependencies(resolved, new Set());
  const digest = (v: unknown): string =>
    createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
  const steps = resolved.map((s) => ({
    name: s.name,
    dependsOn: [...s.dependsOn].sort(),
    settings: digest([s.weight, s.maxRetries, s.retryDelayMs, s.backoff, s.maxRetryDelayMs, s.key]),
  }));
  const sorted = [...steps].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { specs: raw, steps, hash: digest(sorted) };
}

/** What changed from the `older` run's definition to the `newer` one's (null when the hashes are equal). */
export function diffDefinitions(
  older: { hash: string; steps: StepDefinition[] },
  newer: { hash: string; steps: StepDefinition[] },
): DefinitionChange | null {
  if (older.hash === newer.hash) return null;
  const before = new Map(older.steps.map((s) => [s.name, [...s.dependsOn].sort()]));
  const after = new Map(newer.steps.map((s) => [s.name, [...s.dependsOn].sort()]));
  const settingsBefore = new Map(older.steps.map((s) => [s.name, s.settings]));
  const added = [...after.keys()].filter((n) => !before.has(n));
  const removed = [...before.keys()].filter((n) => !after.has(n));
  const dependenciesChanged = [...after.entries()]
    .filter(([n, deps]) => before.has(n) && JSON.stringify(before.get(n)) !== JSON.stringify(deps))
    .map(([name, to]) => ({ name, from: before.get(name)!, to }));
  const settingsChanged = newer.steps
    .filter((s) => settingsBefore.has(s.name) && settingsBefore.get(s.name) !== s.settings)
    .map((s) => s.name);
  return { fromHash: older.hash, toHash: newer.hash, added, removed, dependenciesChanged, settingsChanged };
}
