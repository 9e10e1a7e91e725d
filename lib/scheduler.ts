/**
 * The scheduler: decides every slot of the schedules of this client's pipelines — fire, skip,
 * buffer or record as missed — and creates the runs' containers. Any number of processes may
 * run it at once: each decision is a run record inserted under the unique `{pipeline, slot}`
 * index (lib/store/schedules.ts), so the database, not a lock in some process, says who fired a
 * slot; then the schedule's `nextSlot` moves on with one conditional write. A process killed at
 * any point leaves either no record (the slot is decided again) or a record the next pass
 * completes (a `starting` run's container is created idempotently by its name). Times come from
 * the store context's clock (the database's clock, corrected; a ManualClock in specs).
 * @internal
 */
import type { Core } from './core';
import { TaskContainer } from './container';
import { DuplicateError, isTransient, NotFoundError, ValidationError } from './errors';
import { startPeriodic } from './periodic';
import { resolveRun, runContainerName, type Pipeline } from './pipeline';
import { jitterOf, nextSlot, slotsBetween, type OverlapPolicy } from './schedule';
import { FINAL_CONTAINER_STATUSES } from './states';
import { toRunRecord, type RunRecord } from './runs';
import type { RunDoc, RunKind, ScheduleDoc } from './store';

/** At most this many slots in one skipped-range record (a longer outage takes several). */
const RANGE_LIMIT = 10_000;
/** At most this many slots of one schedule decided per pass (the next pass goes on). */
const SLOTS_PER_PASS = 100;

/** What one scheduler pass decided (records this process inserted or promoted). */
export interface SchedulerReport {
  /** Runs this pass started (containers created; `starting` when the pipeline is not defined here). A run whose definition failed is not here: it is in the history as `error`. */
  fired: RunRecord[];
  /** Skipped (`overlap`, `paused`) and missed records this pass wrote. */
  skipped: RunRecord[];
  /** Slots this pass buffered (`bufferOne`). */
  buffered: RunRecord[];
  /** Runs this pass saw finish. */
  finished: RunRecord[];
  /** `starting` runs left by another (killed) process whose container this pass created. */
  repaired: RunRecord[];
  /** Schedules paused by `pauseOnFailure`. */
  paused: string[];
}

/** @internal */
interface SchedulerPass {
  /** Runs this pass started (containers created). */
  fired: RunDoc[];
  /** Skipped and missed records this pass wrote. */
  skipped: RunDoc[];
  buffered: RunDoc[];
  /** Runs this pass saw finish. */
  finished: RunDoc[];
  /** `starting` runs left by another (killed) process whose container this pass created. */
  repaired: RunDoc[];
  /** Schedules paused by `pauseOnFailure`. */
  paused: string[];
}

const emptyPass = (): SchedulerPass => ({
  fired: [],
  skipped: [],
  buffered: [],
  finished: [],
  repaired: [],
  paused: [],
});

function fireAt(s: Pick<ScheduleDoc, 'name' | 'jitterMs'>, slot: Date | null): Date | null {
  return slot ? new Date(slot.getTime() + jitterOf(s.name, slot, s.jitterMs)) : null;
}

/** The slot after `after` and when it is due. */
export function following(
  s: Pick<ScheduleDoc, 'name' | 'cron' | 'timezone' | 'jitterMs'>,
  after: Date,
): { nextSlot: Date | null; nextFireAt: Date | null } {
  const n = nextSlot(s.cron, s.timezone, after);
  return { nextSlot: n, nextFireAt: fireAt(s, n) };
}

export class Scheduler {
  constructor(
    private readonly core: Core,
    private readonly pipelines: ReadonlyMap<string, Pipeline>,
  ) {}

  private now(): Date {
    return this.core.ctx.clock.now();
  }

  /** One pass over the schedules of the pipelines defined here: settle open runs, then decide every due slot. */
  async pass(): Promise<SchedulerReport> {
    const out = emptyPass();
    const names = [...this.pipelines.keys()];
    if (names.length > 0) {
      await this.core.ready();
      const schedules = await this.core.store.listSchedules(names);
      for (const p of new Set(schedules.map((s) => s.pipeline))) await this.settle(p, out);
      // A schedule paused by pauseOnFailure while settling is read again, paused.
      for (const s of out.paused.length ? await this.core.store.listSchedules(names) : schedules)
        await this.catchUp(s, out);
    }
    const rec = (l: RunDoc[]): RunRecord[] => l.map((d) => toRunRecord(d));
    return {
      fired: rec(out.fired),
      skipped: rec(out.skipped),
      buffered: rec(out.buffered),
      finished: rec(out.finished),
      repaired: rec(out.repaired),
      paused: out.paused,
    };
  }

  /**
   * Finishes the pipeline's runs whose container is final (pausing `pauseOnFailure` schedules of
   * a failed one), completes `starting` runs, and promotes the oldest buffered run once nothing
   * else is unfinished. Returns the runs still unfinished and the buffered ones.
   */
  private async settle(
    pipeline: string,
    out: SchedulerPass,
  ): Promise<{ active: RunDoc[]; buffered: RunDoc[] }> {
    const open = await this.core.store.openRuns(pipeline);
    const statuses = await this.core.store.containerStatuses(
      open.filter((r) => r.status === 'started').map((r) => r.container),
    );
    const active: RunDoc[] = [];
    for (const r of open) {
      if (r.status === 'starting') {
        const done = await this.create(r, true);
        if (done) out.repaired.push(done);
        if (done?.status !== 'error') active.push(done ?? r);
      } else if (r.status === 'started') {
        const st = statuses.get(r.container);
        if (st && !FINAL_CONTAINER_STATUSES.includes(st)) {
          active.push(r);
          continue;
        }
        // The steps' durations go with the record: the ETA of later runs reads them in one read (lib/store/eta.ts).
        const durations = st === 'succeeded' ? await this.core.store.runDurations(r.container) : [];
        const fin = await this.core.store.moveRun(r._id, 'started', 'finished', {
          outcome: st ?? null,
          finishedAt: this.now(),
          ...(durations.length ? { durations } : {}),
          ...(st ? {} : { reason: 'container deleted' }),
        });
        if (!fin) continue;
        out.finished.push(fin);
        this.core.notify.runFinished(fin);
        if (st === 'failed' && fin.schedule) await this.pauseOnFailure(fin, out);
      }
    }
    const buffered = open.filter((r) => r.status === 'buffered');
    if (active.length === 0 && buffered.length > 0) {
      const promoted = await this.core.store.moveRun(buffered[0]._id, 'buffered', 'starting');
      if (promoted) active.push(await this.start(promoted, out));
      buffered.shift();
    }
    return { active, buffered };
  }

  private async pauseOnFailure(run: RunDoc, out: SchedulerPass): Promise<void> {
    const s = await this.core.store.findSchedule(run.schedule!);
    if (!s?.pauseOnFailure) return;
    const reason = `run failed: ${run.container}`;
    if (await this.core.store.setSchedulePaused(s.name, true, reason)) {
      out.paused.push(s.name);
      this.core.notify.schedulePaused(s.name, reason);
    }
  }

  /**
   * Creates the container and tasks of a `starting` run and marks it `started` (idempotent: the
   * container is got-or-created by name, tasks are added by name). Null if the pipeline is not
   * defined in this process (another scheduler will) or another process finished it first.
   */
  private async create(run: RunDoc, repair = false): Promise<RunDoc | null> {
    const p = this.pipelines.get(run.pipeline);
    if (!p) return null;
    let def;
    try {
      def = await resolveRun(p, run.slot, await this.core.dataRules());
    } catch (err) {
      if (isTransient(err)) throw err;
      return this.core.store.moveRun(run._id, 'starting', 'error', {
        reason: `definition: ${(err as Error).message}`,
      });
    }
    const { doc, created } = await this.core.store.getOrCreateContainer(run.container, {
      failurePolicy: p.failurePolicy,
      metadata: {
        pipeline: run.pipeline,
        schedule: run.schedule,
        slot: run.slot.toISOString(),
        definitionHash: def.hash,
      },
    });
    if (created) this.core.notify.containerCreated(run.container);
    try {
      await new TaskContainer(this.core, doc).addTasks(def.specs);
      // A firer killed between its task insert and its counter write left the counters behind:
      // the adds above found the tasks and counted nothing. Rebuild them from the tasks.
      if (repair) await this.core.store.reconcileContainer(doc._id);
    } catch (err) {
      if (!(err instanceof DuplicateError)) throw err;
      return this.core.store.moveRun(run._id, 'starting', 'error', {
        reason: `the container already holds a different definition: ${err.message}`,
      });
    }
    return this.core.store.moveRun(run._id, 'starting', 'started', {
      startedAt: this.now(),
      definitionHash: def.hash,
      steps: def.steps,
    });
  }

  /** The record for a slot under the overlap policy, given the pipeline's unfinished runs (after settling them). */
  private async decide(
    base: { pipeline: string; schedule: string | null; slot: Date; kind: RunKind },
    overlap: OverlapPolicy,
    out: SchedulerPass,
  ): Promise<{ status: 'starting' | 'buffered' | 'skipped'; cancel: RunDoc[] }> {
    const { active, buffered } = await this.settle(base.pipeline, out);
    if (active.length === 0 && buffered.length === 0) return { status: 'starting', cancel: [] };
    switch (overlap) {
      case 'allowAll':
        return { status: 'starting', cancel: [] };
      case 'cancelOther':
        return { status: 'starting', cancel: active };
      case 'bufferOne':
        return { status: buffered.length ? 'skipped' : 'buffered', cancel: [] };
      case 'skip':
        return { status: 'skipped', cancel: [] };
    }
  }

  /** Decides one slot through the common path (scheduled, trigger and backfill slots alike). */
  async fireSlot(
    base: { pipeline: string; schedule: string | null; slot: Date; kind: RunKind },
    overlap: OverlapPolicy,
    out: SchedulerPass,
  ): Promise<RunDoc> {
    const d = await this.decide(base, overlap, out);
    const { run, inserted } = await this.core.store.insertRun({
      ...base,
      lastSlot: base.slot,
      count: 1,
      status: d.status,
      reason: d.status === 'skipped' ? 'overlap' : null,
      container: runContainerName(base.pipeline, base.slot),
      definitionHash: null,
      steps: null,
    });
    if (!inserted) {
      // Decided by another process; complete it if that process died before its container existed.
      if (run.status === 'starting') {
        const done = await this.create(run, true);
        if (done) out.repaired.push(done);
        return done ?? run;
      }
      return run;
    }
    if (run.status !== 'starting') {
      this.core.notify.runDecided(run);
      (run.status === 'skipped' ? out.skipped : out.buffered).push(run);
      return run;
    }
    for (const other of d.cancel) await this.cancel(other);
    return this.start(run, out);
  }

  /**
   * Creates the run this process decided to start and reports it (`schedule:fired`). A null from
   * create: another scheduler completed it concurrently, or the pipeline is not defined here (a
   * scheduler that defines it will): this process fired the slot all the same. A run whose
   * definition failed (`error`) is not reported as fired.
   */
  private async start(run: RunDoc, out: SchedulerPass): Promise<RunDoc> {
    const started = (await this.create(run)) ?? run;
    if (started.status !== 'error') {
      this.core.notify.runDecided(started);
      out.fired.push(started);
    }
    return started;
  }

  private async cancel(run: RunDoc): Promise<void> {
    const doc = await this.core.store.findContainer(run.container);
    if (!doc) return;
    const r = await this.core.store.bulkAction(doc._id, 'cancel');
    this.core.notify.bulk(run.container, r);
  }

  /**
   * One record for the slots from the schedule's `nextSlot` on that are due before `until`
   * (reason `missed` or `paused`); null when there is none.
   */
  async skipRange(
    s: ScheduleDoc,
    reason: 'missed' | 'paused',
    until: Date,
    out: SchedulerPass,
  ): Promise<RunDoc | null> {
    const slots = slotsBetween(s.cron, s.timezone, s.nextSlot!, until, RANGE_LIMIT).filter(
      (t) => fireAt(s, t)!.getTime() <= until.getTime(),
    );
    if (slots.length === 0) return null;
    const first = slots[0];
    const last = slots[slots.length - 1];
    const { run, inserted } = await this.core.store.insertRun({
      pipeline: s.pipeline,
      schedule: s.name,
      slot: first,
      lastSlot: last,
      count: slots.length,
      kind: 'scheduled',
      status: 'skipped',
      reason,
      container: runContainerName(s.pipeline, first),
      definitionHash: null,
      steps: null,
    });
    if (inserted) {
      this.core.notify.runDecided(run);
      out.skipped.push(run);
    } else if (run.status === 'starting') {
      const done = await this.create(run, true);
      if (done) out.repaired.push(done);
    }
    return run;
  }

  /** Decides the schedule's due slots, oldest first, moving `nextSlot` past each. */
  private async catchUp(initial: ScheduleDoc, out: SchedulerPass): Promise<void> {
    let s: ScheduleDoc | null = initial;
    for (let i = 0; i < SLOTS_PER_PASS && s?.nextSlot && s.nextFireAt; i++) {
      const now = this.now();
      if (s.nextFireAt.getTime() > now.getTime()) return;
      const slot: Date = s.nextSlot;
      let run: RunDoc | null;
      if (s.paused) run = await this.skipRange(s, 'paused', now, out);
      else if (now.getTime() - s.nextFireAt.getTime() > s.catchupWindowMs)
        run = await this.skipRange(s, 'missed', new Date(now.getTime() - s.catchupWindowMs - 1), out);
      else
        run = await this.fireSlot(
          { pipeline: s.pipeline, schedule: s.name, slot, kind: 'scheduled' },
          s.overlap,
          out,
        );
      if (!run) return;
      const next = following(s, run.lastSlot);
      const moved = await this.core.store.advanceSchedule(s._id, slot, next);
      s = moved ? { ...s, ...next } : await this.core.store.findSchedule(s.name);
    }
  }

  /** Fires the schedule now (slot: the clock's current time), under its overlap policy. */
  async trigger(name: string): Promise<RunDoc> {
    const s = await this.schedule(name);
    return this.fireSlot(
      { pipeline: s.pipeline, schedule: s.name, slot: this.now(), kind: 'trigger' },
      s.overlap,
      emptyPass(),
    );
  }

  /** Fires the schedule's slots in `[from, to]` through the same path (a slot already decided keeps its record). */
  async backfill(name: string, from: Date, to: Date, overlap?: OverlapPolicy): Promise<RunDoc[]> {
    const s = await this.schedule(name);
    if (to.getTime() > this.now().getTime())
      throw new ValidationError('backfill range must end in the past', { path: 'to' });
    const slots = slotsBetween(s.cron, s.timezone, from, to, RANGE_LIMIT + 1);
    if (slots.length > RANGE_LIMIT)
      throw new ValidationError(`backfill range holds more than ${RANGE_LIMIT} slots`, { path: 'to' });
    const out: RunDoc[] = [];
    for (const slot of slots)
      out.push(
        await this.fireSlot(
          { pipeline: s.pipeline, schedule: s.name, slot, kind: 'backfill' },
          overlap ?? s.overlap,
          emptyPass(),
        ),
      );
    return out;
  }

  /** Unpauses: the slots due while paused are recorded as skipped (`paused`), then `nextSlot` moves to the next one after now. */
  async unpause(name: string): Promise<ScheduleDoc> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const s = await this.schedule(name);
      if (!s.paused) return s;
      const now = this.now();
      const run =
        s.nextSlot && s.nextFireAt && s.nextFireAt <= now
          ? await this.skipRange(s, 'paused', now, emptyPass())
          : null;
      const next = run ? following(s, run.lastSlot) : { nextSlot: s.nextSlot, nextFireAt: s.nextFireAt };
      const doc = await this.core.store.setSchedulePaused(name, false, null, { from: s.nextSlot, ...next });
      if (doc) return doc;
    }
    throw new ValidationError(`schedule ${JSON.stringify(name)} is being changed concurrently; try again`, {
      schedule: name,
    });
  }

  private async schedule(name: string): Promise<ScheduleDoc> {
    await this.core.ready();
    const s = await this.core.store.findSchedule(name);
    if (!s) throw new NotFoundError(`no schedule named ${JSON.stringify(name)}`, { schedule: name });
    return s;
  }
}

/** Options of `client.startScheduler()`. */
export interface SchedulerOptions {
  /** Time between passes. @defaultValue 1_000 */
  intervalMs?: number;
  /** Called with the report of every pass that decided, finished or repaired something (logging, metrics). */
  onPass?: (report: SchedulerReport) => void;
}

/** A running scheduler loop. */
export interface SchedulerHandle {
  /** Stops the loop; resolves when the pass in progress (if any) has ended. */
  stop(): Promise<void>;
  /** Runs one pass now (between the timer's passes); resolves to what it decided. */
  pass(): Promise<SchedulerReport>;
}

/** Runs {@link Scheduler.pass} every `intervalMs` until stopped. Transient database errors are reported as `db:unavailable` and retried on the next pass. */
export function startSchedulerLoop(
  core: Core,
  scheduler: Scheduler,
  options: SchedulerOptions = {},
): SchedulerHandle {
  if (options === null || typeof options !== 'object')
    throw new ValidationError('options must be an object', { path: 'options' });
  const intervalMs = options.intervalMs ?? 1_000;
  if (options.onPass !== undefined && typeof options.onPass !== 'function')
    throw new ValidationError('onPass must be a function', { path: 'onPass' });
  if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs < 10)
    throw new ValidationError('intervalMs must be a number of at least 10', { path: 'intervalMs' });
  return startPeriodic<SchedulerReport>({
    intervalMs,
    pass: () => scheduler.pass(),
    onResult: (r) => {
      core.notify.dbAvailable('scheduler');
      const busy =
        r.fired.length +
        r.skipped.length +
        r.buffered.length +
        r.finished.length +
        r.repaired.length +
        r.paused.length;
      if (busy > 0) options.onPass?.(r);
    },
    onError: (err) => {
      if (isTransient(err)) core.notify.dbUnavailable('scheduler', err);
      else process.emitWarning(`persistent-task-status: scheduler pass failed: ${err.message}`);
    },
  });
}
