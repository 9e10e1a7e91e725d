/**
 * Retention policies (docs/api.md#retention): by container name prefix, finished containers go
 * `succeededDays`/`failedDays`/`cancelledDays` after they finished (database time), and the runs
 * of a pipeline beyond its newest `keepLastRuns`. Enforced by the recovery sweep in bounded
 * batches ({@link RETENTION_BATCH} containers per sweep) and on demand (`client.applyRetention`,
 * `pts prune --policy`). The store (store/retention.ts) deletes each container with one guarded
 * `deleteOne`, so an unfinished (or re-opened) container is never deleted.
 * @internal
 */
import type { Core } from './core';
import { ValidationError } from './errors';
import type { RetentionCandidate, RetentionPolicyDoc, RetentionRules } from './store';
import type { ContainerStatus } from './states';
import { MAX_NAME_LENGTH, describe } from './validation';

/** At most this many containers are deleted by one sweep (`client.recoverStale()`, the sweeper timer). */
export const RETENTION_BATCH = 100;
/** At most this many containers per `applyRetention` call. */
export const RETENTION_MAX_LIMIT = 10_000;
const MAX_DAYS = 36_500;
const RULE_KEYS = ['succeededDays', 'failedDays', 'cancelledDays', 'keepLastRuns'] as const;

/** The rules of a retention policy; an absent or null rule deletes nothing. */
export interface RetentionPolicyOptions {
  /** Delete `succeeded` containers this many days (fractions allowed, > 0) after they finished. @defaultValue null */
  succeededDays?: number | null;
  /** Delete `failed` containers this many days after they finished. @defaultValue null */
  failedDays?: number | null;
  /** Delete `cancelled` containers this many days after they finished. @defaultValue `failedDays` */
  cancelledDays?: number | null;
  /** Keep only the newest this many runs of each pipeline (by slot) whose run containers the policy governs; older finished runs go whatever their age. @defaultValue null */
  keepLastRuns?: number | null;
}

/**
 * A stored retention policy: its container name prefix ('' = every container; a container is
 * governed by the policy with the longest prefix it starts with) and its rules as stored
 * (`cancelledDays` null: cancelled containers follow `failedDays`).
 */
export type RetentionPolicy = Omit<RetentionPolicyDoc, '_id'>;

/** Options of `client.applyRetention()`. */
export interface ApplyRetentionOptions {
  /** List what would be deleted, delete nothing. @defaultValue false */
  dryRun?: boolean;
  /** At most this many containers (1 to 10,000). @defaultValue 100 ({@link RETENTION_BATCH}) */
  limit?: number;
  /** Only the policies whose prefix starts with this (HTTP: the token's prefix). @defaultValue '' */
  prefix?: string;
}

/** One container retention let go (or, in a dry run, would). */
export interface RetentionItem {
  container: string;
  status: ContainerStatus;
  endedAt: Date | null;
  /** The governing policy's prefix. */
  policy: string;
  /** `age`: finished longer ago than the policy's days for its status; `keepLastRuns`: older than the pipeline's newest K runs. */
  reason: 'age' | 'keepLastRuns';
}

/** What `applyRetention` (or a sweep) did. */
export interface RetentionReport {
  dryRun: boolean;
  /** Dry run: what would be deleted. Otherwise: what was. */
  containers: RetentionItem[];
  /** Candidates that changed between the read and the delete (re-opened, written) and were kept. */
  kept: string[];
  /** Tasks deleted with the containers (0 in a dry run). */
  tasks: number;
}

function validatePrefix(v: unknown, path = 'prefix'): string {
  if (typeof v !== 'string' || v.length > MAX_NAME_LENGTH || v.includes('\u0000'))
    throw new ValidationError(
      `${path} must be a string of at most ${MAX_NAME_LENGTH} characters without NUL`,
      { path, got: describe(v) },
    );
  return v;
}

function days(v: unknown, path: string): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > MAX_DAYS)
    throw new ValidationError(
      `${path} must be a number of days greater than 0 and at most ${MAX_DAYS}, or null`,
      { path, got: describe(v) },
    );
  return v;
}

/** Validates the rules of a policy (unknown keys, negative or odd numbers are refused). */
export function resolveRetentionRules(o: unknown): RetentionRules {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new ValidationError('policy must be an object', { path: 'policy' });
  for (const k of Object.keys(o)) {
    if (!(RULE_KEYS as readonly string[]).includes(k))
      throw new ValidationError(
        `unknown policy field ${JSON.stringify(k)} (known: ${RULE_KEYS.join(', ')})`,
        { path: k },
      );
  }
  const r = o as RetentionPolicyOptions;
  const k = r.keepLastRuns;
  if (
    k !== undefined &&
    k !== null &&
    (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > 100_000)
  )
    throw new ValidationError('keepLastRuns must be an integer from 1 to 100000, or null', {
      path: 'keepLastRuns',
      got: describe(k),
    });
  return {
    succeededDays: days(r.succeededDays, 'succeededDays'),
    failedDays: days(r.failedDays, 'failedDays'),
    cancelledDays: days(r.cancelledDays, 'cancelledDays'),
    keepLastRuns: k ?? null,
  };
}

export function toRetentionPolicy(d: RetentionPolicyDoc): RetentionPolicy {
  return {
    prefix: d.prefix,
    succeededDays: d.succeededDays ?? null,
    failedDays: d.failedDays ?? null,
    cancelledDays: d.cancelledDays ?? null,
    keepLastRuns: d.keepLastRuns ?? null,
    createdAt: d.createdAt,
    updatedAt: d.updatedAt,
  };
}

export async function setRetentionPolicy(
  core: Core,
  prefix: unknown,
  options: unknown,
): Promise<RetentionPolicy> {
  const p = validatePrefix(prefix);
  const rules = resolveRetentionRules(options ?? {});
  await core.ready();
  return toRetentionPolicy(await core.store.saveRetentionPolicy(p, rules));
}

export async function listRetentionPolicies(core: Core): Promise<RetentionPolicy[]> {
  await core.ready();
  return (await core.store.listRetentionPolicies()).map(toRetentionPolicy);
}

export async function deleteRetentionPolicy(core: Core, prefix: unknown): Promise<boolean> {
  const p = validatePrefix(prefix);
  await core.ready();
  return core.store.deleteRetentionPolicy(p);
}

function item(c: RetentionCandidate): RetentionItem {
  return { container: c.name, status: c.status, endedAt: c.endedAt, policy: c.policy, reason: c.reason };
}

/**
 * One retention pass: reads the policies, finds at most `limit` containers they let go and
 * (unless `dryRun`) deletes each with the guarded delete, emitting `container:deleted`. A dry run
 * lists what the same pass would delete now and changes nothing.
 */
export async function applyRetention(
  core: Core,
  options: ApplyRetentionOptions = {},
): Promise<RetentionReport> {
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new ValidationError('options must be an object', { path: 'options' });
  for (const k of Object.keys(options)) {
    if (!['dryRun', 'limit', 'prefix'].includes(k))
      throw new ValidationError(`unknown option ${JSON.stringify(k)}`, { path: k });
  }
  if (options.dryRun !== undefined && typeof options.dryRun !== 'boolean')
    throw new ValidationError('dryRun must be a boolean', { path: 'dryRun' });
  const limit = options.limit ?? RETENTION_BATCH;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > RETENTION_MAX_LIMIT)
    throw new ValidationError(`limit must be an integer from 1 to ${RETENTION_MAX_LIMIT}`, {
      path: 'limit',
      got: describe(limit),
    });
  const within = validatePrefix(options.prefix ?? '');
  const dryRun = options.dryRun === true;
  await core.ready();
  const report: RetentionReport = { dryRun, containers: [], kept: [], tasks: 0 };
  const all = await core.store.listRetentionPolicies();
  const policies = all.filter((p) => p.prefix.startsWith(within));
  if (policies.length === 0) return report;
  if (!dryRun) await core.store.finishPurges();
  const { candidates, goneRuns } = await core.store.retentionCandidates(policies, all, limit);
  if (dryRun) {
    report.containers = candidates.map(item);
    return report;
  }
  await core.store.markRunsPruned(goneRuns);
  for (const c of candidates) {
    const tasks = await core.store.purgeContainer(c);
    if (tasks === null) {
      report.kept.push(c.name);
      continue;
    }
    report.tasks += tasks;
    report.containers.push(item(c));
    core.notify.containerDeleted(c.name, tasks);
  }
  return report;
}
