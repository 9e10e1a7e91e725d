/**
 * Bounded label values for the step histograms of metrics.ts. Container and task names are
 * unbounded (a run per night, a container per file, a child per item), and every distinct label
 * set is a time series Prometheus keeps, so a name is first reduced to a stable group and step,
 * then the number of distinct (group, step) pairs is capped: past the cap everything new is
 * counted under `other`/`other`.
 *
 * - group: a pipeline run's container (`<pipeline>@<ISO slot>`, pipeline.ts) → the pipeline name;
 *   else the longest configured prefix the container starts with; else its first
 *   `groupSegments` `/`-separated segments.
 * - step: a spawned child (`parent` set) → `<parent>/*`; else the task name.
 * - both are cut to {@link MAX_LABEL_LENGTH} characters.
 */
import { ValidationError } from './errors';

/** Label value of everything past the cap. */
export const OTHER_LABEL = 'other';
/** Longest label value kept (longer ones are cut). */
export const MAX_LABEL_LENGTH = 100;

/** How step labels are bounded ({@link MetricsOptions} of metrics.ts). */
export interface LabelOptions {
  /**
   * Container name prefixes to group by (the longest that matches wins), e.g. `['import/', 'export/']`.
   * @defaultValue []
   */
  groupPrefixes?: readonly string[];
  /** Without a matching prefix: how many `/`-separated leading segments of the container name form its group. @defaultValue 1 */
  groupSegments?: number;
  /** Most distinct (group, step) pairs per histogram; further pairs are counted as `other`. @defaultValue 200 */
  maxLabelSets?: number;
}

export interface ResolvedLabelOptions {
  groupPrefixes: string[];
  groupSegments: number;
  maxLabelSets: number;
}

export function resolveLabelOptions(o: LabelOptions = {}): ResolvedLabelOptions {
  const groupSegments = o.groupSegments ?? 1;
  const maxLabelSets = o.maxLabelSets ?? 200;
  if (!Number.isInteger(groupSegments) || groupSegments < 1)
    throw new ValidationError('groupSegments must be an integer ≥ 1', { path: 'groupSegments' });
  if (!Number.isInteger(maxLabelSets) || maxLabelSets < 1)
    throw new ValidationError('maxLabelSets must be an integer ≥ 1', { path: 'maxLabelSets' });
  const groupPrefixes = [...(o.groupPrefixes ?? [])].filter((p) => typeof p === 'string' && p.length > 0);
  groupPrefixes.sort((a, b) => b.length - a.length);
  return { groupPrefixes, groupSegments, maxLabelSets };
}

/** `<pipeline>@<ISO-8601 UTC slot>` (pipeline.ts `runContainerName`). */
const RUN_CONTAINER = /^(.+)@\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function cut(s: string): string {
  return s.length > MAX_LABEL_LENGTH ? s.slice(0, MAX_LABEL_LENGTH) : s;
}

/** The group label of a container name (before the cap). */
export function containerGroup(container: string, o: ResolvedLabelOptions): string {
  const run = RUN_CONTAINER.exec(container);
  if (run) return cut(run[1]);
  for (const p of o.groupPrefixes) if (container.startsWith(p)) return cut(p);
  return cut(container.split('/').slice(0, o.groupSegments).join('/'));
}

/** The step label of a task (before the cap). */
export function stepLabel(task: { name: string; parent: string | null }): string {
  return cut(task.parent !== null ? `${task.parent}/*` : task.name);
}

/** Admits at most `max` distinct (group, step) pairs; the rest map to `other`/`other`. */
export class LabelCap {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  labels(group: string, step: string): { group: string; step: string } {
    const k = JSON.stringify([group, step]);
    if (this.seen.has(k)) return { group, step };
    if (this.seen.size >= this.max) return { group: OTHER_LABEL, step: OTHER_LABEL };
    this.seen.add(k);
    return { group, step };
  }
}
