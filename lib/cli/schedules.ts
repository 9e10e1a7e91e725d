/**
 * `pts schedule list|add|pause|unpause|trigger|backfill|delete`, `pts runs <pipeline>` and
 * `pts scheduler` (docs/cli.md#schedules). Thin layers over the client's schedule methods.
 *
 * The CLI process defines no pipelines: `pts schedule add` stores (or edits) the schedule of a
 * pipeline that a scheduler process defines; `trigger` and `backfill` record the slots and a
 * scheduler that defines the pipeline creates their runs on its next pass. `pts scheduler
 * --module <file>` is such a process: the module's default (or `register`) export is called with
 * the client and defines the pipelines (it may also start workers with `client.work`).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Client } from '../client';
import type { RunRecord } from '../runs';
import { OVERLAP_POLICIES, type OverlapPolicy, type ScheduleOptions } from '../schedule';
import type { ScheduleView } from '../schedule-view';
import { CliError, EXIT, connect, resolveUri, withClient, type DbOptions } from './connect';
import { Out, clip, formatDuration, parseDuration, stateText, table } from './output';
import { untilSignal } from './serve';

type Json = { json?: boolean };

function overlapOf(v: string | undefined): OverlapPolicy | undefined {
  if (v === undefined) return undefined;
  if (!(OVERLAP_POLICIES as readonly string[]).includes(v))
    throw new CliError(`--overlap must be one of ${OVERLAP_POLICIES.join(', ')}`, EXIT.USAGE);
  return v as OverlapPolicy;
}

function msOf(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const ms = /^\d+$/.test(v) ? Number(v) : parseDuration(v);
  if (ms === null || !Number.isFinite(ms)) throw new CliError(`${flag}: not a duration: ${JSON.stringify(v)} (e.g. 30s, 1h, 7d)`, EXIT.USAGE);
  return ms;
}

function dateOf(v: string, flag: string): Date {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new CliError(`${flag}: not a date: ${JSON.stringify(v)} (ISO-8601, e.g. 2026-05-01T00:00:00Z)`, EXIT.USAGE);
  return d;
}

const iso = (d: Date | string | null | undefined): string => (d ? new Date(d).toISOString().replace('.000Z', 'Z') : '-');

function scheduleLine(out: Out, s: ScheduleView): string[] {
  const skipped = s.recentSkipped[0];
  return [
    s.name,
    s.pipeline,
    s.cron,
    s.timezone,
    s.overlap,
    s.paused ? out.style('yellow', `paused${s.note ? ` (${clip(s.note, 30)})` : ''}`) : 'active',
    iso(s.nextFireTimes[0]),
    skipped ? `${iso(skipped.slot)} ${skipped.reason}${skipped.count > 1 ? ` ×${skipped.count}` : ''}` : '-',
  ];
}

function runLine(out: Out, r: RunRecord): string[] {
  const steps = r.steps.map((s) => `${s.name}${s.durationMs !== null ? ` ${formatDuration(s.durationMs)}` : s.state ? ` ${s.state}` : ''}`);
  const changes = r.changes
    ? [
        ...r.changes.added.map((n) => `+${n}`),
        ...r.changes.removed.map((n) => `-${n}`),
        ...r.changes.dependenciesChanged.map((d) => `~${d.name}`),
        ...r.changes.settingsChanged.map((n) => `*${n}`),
      ].join(' ')
    : '';
  return [
    iso(r.slot) + (r.count > 1 ? ` … ${iso(r.lastSlot)} (${r.count})` : ''),
    r.kind,
    r.status === 'skipped' || r.status === 'error' ? `${r.status} (${r.reason ?? '-'})` : r.status,
    r.containerStatus ? stateText(out, r.containerStatus) : r.outcome ? stateText(out, r.outcome) : '-',
    clip(steps.join(', '), 60) || '-',
    changes || '-',
  ];
}

export function printRuns(out: Out, runs: RunRecord[]): void {
  if (!runs.length) return out.line('no runs');
  table(out, ['SLOT', 'KIND', 'DECISION', 'CONTAINER', 'STEPS', 'CHANGES'], runs.map((r) => runLine(out, r)));
}

export async function scheduleList(opts: DbOptions & Json & { pipeline?: string }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const items = await client.describeSchedules(opts.pipeline ? { pipeline: opts.pipeline } : {});
    if (opts.json) return out.json(items);
    if (!items.length) return out.line('no schedules');
    table(out, ['NAME', 'PIPELINE', 'CRON', 'TZ', 'OVERLAP', 'STATE', 'NEXT', 'LAST SKIPPED'], items.map((s) => scheduleLine(out, s)));
  });
}

export interface ScheduleAddOptions extends DbOptions, Json {
  cron: string;
  timezone?: string;
  name?: string;
  overlap?: string;
  catchupWindow?: string;
  jitter?: string;
  paused?: boolean;
  pauseOnFailure?: boolean;
}

export async function scheduleAdd(pipeline: string, opts: ScheduleAddOptions): Promise<void> {
  const out = new Out();
  const options: ScheduleOptions = { cron: opts.cron };
  if (opts.timezone !== undefined) options.timezone = opts.timezone;
  if (opts.name !== undefined) options.name = opts.name;
  const overlap = overlapOf(opts.overlap);
  if (overlap) options.overlap = overlap;
  const catchup = msOf(opts.catchupWindow, '--catchup-window');
  if (catchup !== undefined) options.catchupWindowMs = catchup;
  const jitter = msOf(opts.jitter, '--jitter');
  if (jitter !== undefined) options.jitterMs = jitter;
  if (opts.paused) options.paused = true;
  if (opts.pauseOnFailure) options.pauseOnFailure = true;
  if (pipeline.includes('@')) throw new CliError('a pipeline name must not contain "@"', EXIT.USAGE);
  await withClient(opts, async (client) => {
    const existed = await client.getSchedule(options.name ?? pipeline);
    await client.schedule(pipeline, options);
    const s = (await client.describeSchedule(options.name ?? pipeline))!;
    if (opts.json) return out.json(s);
    out.line(`${existed ? 'updated' : 'added'} schedule ${s.name} (${s.cron} ${s.timezone}, ${s.overlap}${s.paused ? ', paused' : ''}); next: ${iso(s.nextFireTimes[0])}`);
    out.line(out.style('dim', `it fires while a scheduler that defines pipeline ${s.pipeline} runs (client.startScheduler(), pts scheduler --module …)`));
  });
}

async function existing(client: Client, name: string): Promise<ScheduleView> {
  const s = await client.describeSchedule(name);
  if (!s) throw new CliError(`no schedule named ${JSON.stringify(name)}`, EXIT.FAILURE);
  return s;
}

export async function schedulePause(name: string, paused: boolean, opts: DbOptions & Json & { note?: string }): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    await existing(client, name);
    const changed = paused ? await client.pauseSchedule(name, opts.note ?? null) : null;
    if (!paused) await client.unpauseSchedule(name);
    const s = await existing(client, name);
    if (opts.json) return out.json(s);
    if (paused) out.line(changed ? `paused schedule ${name}` : `schedule ${name} was already paused`);
    else out.line(`schedule ${name} is active; next: ${iso(s.nextFireTimes[0])}`);
  });
}

export async function scheduleTrigger(name: string, opts: DbOptions & Json): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    await existing(client, name);
    const run = await client.triggerSchedule(name);
    if (opts.json) return out.json(run);
    out.line(`triggered ${name}: slot ${iso(run.slot)} ${run.status}${run.reason ? ` (${run.reason})` : ''} → ${run.container}`);
  });
}

export async function scheduleBackfill(name: string, opts: DbOptions & Json & { from: string; to: string; overlap?: string }): Promise<void> {
  const out = new Out();
  const from = dateOf(opts.from, '--from');
  const to = dateOf(opts.to, '--to');
  const overlap = overlapOf(opts.overlap);
  await withClient(opts, async (client) => {
    await existing(client, name);
    const runs = await client.backfillSchedule(name, { from, to, ...(overlap ? { overlap } : {}) });
    if (opts.json) return out.json(runs);
    out.line(`backfilled ${runs.length} slot(s) of ${name}`);
    printRuns(out, runs);
  });
}

export async function scheduleDelete(name: string, opts: DbOptions & Json): Promise<void> {
  const out = new Out();
  await withClient(opts, async (client) => {
    const deleted = await client.deleteSchedule(name);
    if (!deleted) throw new CliError(`no schedule named ${JSON.stringify(name)}`, EXIT.FAILURE);
    if (opts.json) return out.json({ deleted: true });
    out.line(`deleted schedule ${name} (its run history is kept)`);
  });
}

export async function runs(pipeline: string, opts: DbOptions & Json & { limit?: string; cursor?: string }): Promise<void> {
  const out = new Out();
  const limit = opts.limit === undefined ? 20 : Number(opts.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CliError('--limit must be 1-1000', EXIT.USAGE);
  await withClient(opts, async (client) => {
    const page = await client.listRuns(pipeline, { limit, cursor: opts.cursor ?? null });
    if (opts.json) return out.json(page);
    printRuns(out, page.items);
    if (page.nextCursor) out.line(out.style('dim', `more: pts runs ${pipeline} --cursor ${page.nextCursor}`));
  });
}

/** Loads a pipeline module: its default (or `register`) export is called with the client. */
export async function loadPipelineModule(client: Client, file: string): Promise<void> {
  const abs = path.resolve(file);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`--module ${file}: cannot load: ${(err as Error).message}`, EXIT.USAGE);
  }
  const inner = mod.default as Record<string, unknown> | ((c: Client) => unknown) | undefined;
  const fn = [mod.register, inner, typeof inner === 'object' && inner ? inner.register : undefined].find(
    (f): f is (c: Client) => unknown => typeof f === 'function',
  );
  if (!fn) throw new CliError(`--module ${file}: export a function (default or \`register\`) that takes the client and defines pipelines`, EXIT.USAGE);
  await fn(client);
}

/** Prints what a scheduler pass did (one line per decision). */
export function passPrinter(out: Out): (r: Awaited<ReturnType<Client['runSchedulerPass']>>) => void {
  return (r) => {
    for (const x of r.fired) out.line(`fired    ${x.container}`);
    for (const x of r.skipped) out.line(`skipped  ${x.pipeline} ${iso(x.slot)}${x.count > 1 ? ` … ${iso(x.lastSlot)} (${x.count})` : ''} (${x.reason})`);
    for (const x of r.buffered) out.line(`buffered ${x.container}`);
    for (const x of r.finished) out.line(`finished ${x.container} ${x.outcome ?? ''}`);
    for (const x of r.repaired) out.line(`repaired ${x.container}`);
    for (const x of r.paused) out.line(`paused   ${x} (a run failed)`);
  };
}

export async function scheduler(opts: DbOptions & { module?: string; interval?: string }): Promise<void> {
  const out = new Out();
  if (!opts.module) throw new CliError('pts scheduler needs --module <file>: a module that defines the pipelines to schedule', EXIT.USAGE);
  const intervalMs = msOf(opts.interval, '--interval') ?? 1000;
  const { client, connection } = await connect(resolveUri(opts));
  try {
    await loadPipelineModule(client, opts.module);
    const handle = client.startScheduler({ intervalMs, onPass: passPrinter(out) });
    out.line(`pts scheduler running (every ${formatDuration(intervalMs)}); Ctrl-C to stop`);
    await untilSignal();
    await handle.stop();
  } finally {
    await client.close();
    await connection.close().catch(() => undefined);
  }
}
