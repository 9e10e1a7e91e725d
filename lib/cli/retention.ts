/**
 * `pts retention list|set|delete` (the stored policies, lib/retention.ts) and
 * `pts prune --policy` (one retention pass: a dry run unless --yes; --dry-run says so explicitly).
 * Thin: each command calls one client method.
 */
import type { RetentionPolicy, RetentionPolicyOptions } from '../retention';
import { CliError, EXIT, withClient, type DbOptions } from './connect';
import { Out, displayName, table } from './output';

export interface RetentionSetOptions extends DbOptions {
  succeededDays?: string;
  failedDays?: string;
  cancelledDays?: string;
  keepLastRuns?: string;
  json?: boolean;
}

/** A number option: 'none' (or 'null') unsets the rule; anything else must be a number (the library checks its range). */
function numberOption(v: string | undefined, flag: string): number | null | undefined {
  if (v === undefined) return undefined;
  if (v === 'none' || v === 'null') return null;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n))
    throw new CliError(`${flag} must be a number or 'none' (got ${JSON.stringify(v)})`, EXIT.USAGE);
  return n;
}

const rule = (v: number | null, unit: string): string => (v === null ? '-' : `${v}${unit}`);

function rows(out: Out, ps: RetentionPolicy[]): string[][] {
  return ps.map((p) => [
    p.prefix === '' ? '*' : displayName(out, p.prefix, 40),
    rule(p.succeededDays, 'd'),
    rule(p.failedDays, 'd'),
    p.cancelledDays === null ? (p.failedDays === null ? '-' : `(${p.failedDays}d)`) : `${p.cancelledDays}d`,
    rule(p.keepLastRuns, ''),
  ]);
}
const HEADERS = ['PREFIX', 'SUCCEEDED', 'FAILED', 'CANCELLED', 'KEEP RUNS'];

export async function retentionList(opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const ps = await client.listRetentionPolicies();
    if (opts.json) return out.json(ps);
    if (!ps.length) return out.line('no retention policies (nothing is deleted by the sweep)');
    table(out, HEADERS, rows(out, ps));
  });
}

export async function retentionSet(prefix: string, opts: RetentionSetOptions): Promise<void> {
  const out = new Out();
  const policy: RetentionPolicyOptions = {};
  const set = (k: keyof RetentionPolicyOptions, v: string | undefined, flag: string) => {
    const n = numberOption(v, flag);
    if (n !== undefined) policy[k] = n;
  };
  set('succeededDays', opts.succeededDays, '--succeeded-days');
  set('failedDays', opts.failedDays, '--failed-days');
  set('cancelledDays', opts.cancelledDays, '--cancelled-days');
  set('keepLastRuns', opts.keepLastRuns, '--keep-last-runs');
  await withClient(opts, async (client) => {
    const p = await client.setRetentionPolicy(prefix, policy);
    if (opts.json) return out.json(p);
    table(out, HEADERS, rows(out, [p]));
  });
}

export async function retentionDelete(prefix: string, opts: DbOptions & { json?: boolean }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    if (!(await client.deleteRetentionPolicy(prefix)))
      throw new CliError(`no retention policy for prefix ${JSON.stringify(prefix)}`, EXIT.FAILURE);
    if (opts.json) return out.json({ deleted: prefix });
    out.line(
      `deleted the retention policy of ${prefix === '' ? "'' (every container)" : displayName(out, prefix, 60)}`,
    );
  });
}

export interface PrunePolicyOptions extends DbOptions {
  dryRun?: boolean;
  yes?: boolean;
  limit?: string;
  json?: boolean;
}

/** `pts prune --policy`: one retention pass (what the sweep does), listed only unless --yes. */
export async function prunePolicy(opts: PrunePolicyOptions): Promise<void> {
  const out = new Out();
  if (opts.dryRun && opts.yes) throw new CliError('--dry-run and --yes exclude each other', EXIT.USAGE);
  const limit = opts.limit === undefined ? undefined : Number(opts.limit);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1))
    throw new CliError(`--limit must be a positive integer (got ${JSON.stringify(opts.limit)})`, EXIT.USAGE);
  const dryRun = !opts.yes;
  await withClient(opts, async (client) => {
    const r = await client.applyRetention({ dryRun, limit });
    if (opts.json) return out.json(r);
    if (!r.containers.length)
      return out.line(
        dryRun ? 'nothing to prune: the retention policies let nothing go now' : 'deleted nothing',
      );
    table(
      out,
      ['CONTAINER', 'STATUS', 'FINISHED', 'POLICY', 'REASON'],
      r.containers.map((c) => [
        displayName(out, c.container),
        c.status,
        c.endedAt ? c.endedAt.toISOString() : '-',
        c.policy === '' ? '*' : displayName(out, c.policy, 30),
        c.reason,
      ]),
    );
    if (dryRun)
      out.line(`dry run: would delete ${r.containers.length} container(s); re-run with --yes to delete them`);
    else
      out.line(
        `deleted ${r.containers.length} container(s) (${r.tasks} task(s))${r.kept.length ? `; kept ${r.kept.length} that changed meanwhile` : ''}`,
      );
  });
}
