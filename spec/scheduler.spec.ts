/**
 * The scheduler, deterministically: a ManualClock moves time, `runSchedulerPass()` is one pass
 * (what `startScheduler()` runs on its timer). Every overlap policy, catch-up inside and outside
 * the window, daylight-saving changes in Europe/Berlin, pause / unpause / pauseOnFailure,
 * backfill, trigger, several schedulers deciding the same slots, and the repair of a slot whose
 * firer died between the record and the container.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import {
  createClient,
  ManualClock,
  ValidationError,
  type Client,
  type PtsEventName,
  type RunRecord,
} from '../lib';
import { CommandCounter } from './helpers/consistency';
import { useTestDatabase } from './helpers/db';

const H = 3_600_000;
const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

describe('scheduler', function () {
  const db = useTestDatabase();
  let clock: ManualClock;
  let client: Client;
  let n = 0;
  let name: string;

  const at = (t: string): void => clock.set(Date.parse(t));
  const pass = () => client.runSchedulerPass();
  const runs = async (c: Client = client): Promise<RunRecord[]> =>
    (await c.listRuns(name, { limit: 1000 })).items.slice().reverse();
  /** Runs a started run's container to the end (every task succeeds, or fails for good). */
  async function finish(container: string, ok = true): Promise<void> {
    const c = await client.getTaskContainer(container);
    await c!.run(() => {
      if (!ok) throw Object.assign(new Error('boom'), { retryable: false });
    });
  }
  function pipeline(c: Client = client): void {
    c.definePipeline(name, { tasks: [{ name: 'fetch' }, { name: 'load', dependsOn: ['fetch'] }] });
  }

  beforeEach(async function () {
    clock = new ManualClock(Date.parse('2026-05-01T00:30:00Z'));
    client = createClient({ connection: db.connection, clock, workerId: 'w' });
    await client.ensureIndexes();
    name = `p${++n}`;
    pipeline();
  });

  it('refuses bad schedules with a typed error and writes nothing', async function () {
    for (const bad of [
      { cron: '61 * * * *' },
      { cron: '* * * *' },
      { cron: '0 0 * * * * *' },
      { cron: '0 * * * *', timezone: 'Mars/Olympus' },
      { cron: '0 * * * *', overlap: 'bufferAll' },
      { cron: '0 * * * *', catchupWindowMs: 10 },
      { cron: '0 * * * *', jitterMs: -1 },
      { cron: '0 * * * *', paused: 'yes' },
      { cron: '0 * * * *', every: '1h' },
    ]) {
      const err = await client.schedule(name, bad as never).catch((e: unknown) => e);
      expect(err, JSON.stringify(bad)).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
    }
    expect(await client.listSchedules({ pipeline: name })).to.deep.equal([]);
    expect(() => client.definePipeline('a@b', { tasks: [] })).to.throw(ValidationError);
  });

  it('bad calls of the other schedule methods: typed errors, nothing written', async function () {
    await client.schedule(name, { cron: '0 * * * *' });
    const before = JSON.stringify(await client.listSchedules());
    const codes = async (p: Promise<unknown>): Promise<string> =>
      (
        (await p.then(
          () => null,
          (e: unknown) => e,
        )) as { code?: string } | null
      )?.code ?? 'resolved';
    expect(await codes(client.triggerSchedule('nope'))).to.equal('PTS_NOT_FOUND');
    expect(await codes(client.backfillSchedule('nope', { from: new Date(0), to: new Date(1) }))).to.equal(
      'PTS_NOT_FOUND',
    );
    expect(await codes(client.backfillSchedule(name, { from: new Date(2), to: new Date(1) }))).to.equal(
      'PTS_VALIDATION',
    );
    expect(
      await codes(
        client.backfillSchedule(name, { from: new Date(0), to: new Date(1), overlap: 'nope' as never }),
      ),
    ).to.equal('PTS_VALIDATION');
    expect(
      await codes(client.backfillSchedule(name, { from: new Date(0), to: new Date('2026-04-30T00:00:00Z') })),
    ).to.equal('PTS_VALIDATION'); // > 10 000 slots
    expect(await codes(client.backfillSchedule(name, null as never))).to.equal('PTS_VALIDATION');
    expect(await codes(client.unpauseSchedule('nope'))).to.equal('PTS_NOT_FOUND');
    expect(await codes(client.pauseSchedule(name, 5 as never))).to.equal('PTS_VALIDATION');
    expect(await codes(client.listRuns(name, { limit: 0 }))).to.equal('PTS_VALIDATION');
    expect(await codes(client.listRuns('', {}))).to.equal('PTS_VALIDATION');
    expect(await codes(client.schedule({} as never, { cron: '0 * * * *' }))).to.equal('PTS_VALIDATION');
    expect(() => client.work(name, 5 as never)).to.throw(ValidationError);
    expect(() => client.work(name, () => undefined, { concurrency: -1 })).to.throw(ValidationError);
    expect(() => client.startScheduler({ intervalMs: 0 })).to.throw(ValidationError);
    expect(() => client.definePipeline('x', { tasks: 'a' as never })).to.throw(ValidationError);
    expect(() => client.definePipeline('x', { tasks: [], failurePolicy: 'x' as never })).to.throw(
      ValidationError,
    );
    expect(JSON.stringify(await client.listSchedules())).to.equal(before);
    expect(await runs()).to.deep.equal([]);
  });

  it('fires each slot once into a container named <pipeline>@<slot>, recording the slot and the definition hash', async function () {
    const s = await client.schedule(name, { cron: '0 * * * *' });
    expect(iso(s.nextSlot)).to.equal('2026-05-01T01:00:00.000Z');
    expect((await pass()).fired).to.deep.equal([]);
    at('2026-05-01T01:00:00Z');
    const r = await pass();
    expect(r.fired.map((x) => x.container)).to.deep.equal([`${name}@2026-05-01T01:00:00.000Z`]);
    expect((await pass()).fired).to.deep.equal([]);
    const [run] = await runs();
    expect(run).to.include({
      pipeline: name,
      schedule: name,
      status: 'started',
      kind: 'scheduled',
      containerStatus: 'pending',
    });
    expect(run.definitionHash).to.match(/^[0-9a-f]{16}$/);
    expect(run.steps.map((x) => [x.name, x.dependsOn])).to.deep.equal([
      ['fetch', []],
      ['load', ['fetch']],
    ]);
    const c = await client.getTaskContainer(run.container);
    expect((await c!.getTasks()).map((t) => t.name())).to.deep.equal(['fetch', 'load']);
    expect(iso((await client.getSchedule(name))!.nextSlot)).to.equal('2026-05-01T02:00:00.000Z');
    // calling schedule() again (every process does at start-up) keeps the next slot
    at('2026-05-01T01:30:00Z');
    await client.schedule(name, { cron: '0 * * * *', pauseOnFailure: true });
    expect(iso((await client.getSchedule(name))!.nextSlot)).to.equal('2026-05-01T02:00:00.000Z');
  });

  it('restating a schedule keeps its pause; a new cron starts from now; jitter delays the slot the same in every process; delete', async function () {
    await client.schedule(name, { cron: '0 * * * *' });
    await client.pauseSchedule(name);
    await client.schedule(name, { cron: '0 * * * *' });
    expect((await client.getSchedule(name))!.paused).to.equal(true);
    await client.unpauseSchedule(name);
    at('2026-05-01T00:40:00Z');
    const s = await client.schedule(name, { cron: '0 */6 * * *', jitterMs: 600_000 });
    expect(iso(s.nextSlot)).to.equal('2026-05-01T06:00:00.000Z');
    const delay = s.nextFireAt!.getTime() - s.nextSlot!.getTime();
    expect(delay).to.be.within(0, 599_999);
    const other = createClient({ connection: db.connection, clock, workerId: 'other' });
    expect((await other.getSchedule(name))!.nextFireAt).to.deep.equal(s.nextFireAt);
    clock.set(s.nextSlot!.getTime() + delay - 1);
    expect((await pass()).fired).to.deep.equal([]);
    clock.set(s.nextSlot!.getTime() + delay);
    expect((await pass()).fired.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T06:00:00.000Z']);
    expect(await client.deleteSchedule(name)).to.equal(true);
    expect(await client.deleteSchedule(name)).to.equal(false);
    expect(await client.listSchedules({ pipeline: name })).to.deep.equal([]);
    expect((await runs()).length).to.equal(1); // the history stays
  });

  it('tasks as a function of the slot: the run gets that slot', async function () {
    client.definePipeline(name, {
      tasks: (slot) => [{ name: 'day', data: { day: slot.toISOString().slice(0, 10) } }],
    });
    await client.schedule(name, { cron: '0 0 * * *' });
    at('2026-05-02T00:00:01Z');
    const [fired] = (await pass()).fired;
    const t = await (await client.getTaskContainer(fired.container))!.getTask('day');
    expect(t!.taskData()).to.deep.equal({ day: '2026-05-02' });
  });

  it('a definition that cannot be resolved records the run as error (the slot is decided, nothing half-made)', async function () {
    client.definePipeline(name, { tasks: () => [{ name: 'a', dependsOn: ['missing'] }] });
    await client.schedule(name, { cron: '0 * * * *' });
    at('2026-05-01T01:00:00Z');
    await pass();
    const [run] = await runs();
    expect(run.status).to.equal('error');
    expect(run.reason).to.match(/^definition: .*missing/);
    expect(await client.getTaskContainer(run.container)).to.equal(null);
    expect(iso((await client.getSchedule(name))!.nextSlot)).to.equal('2026-05-01T02:00:00.000Z');
  });

  it('a slot whose container already holds another definition is recorded as error with the conflict, not a bare DuplicateError', async function () {
    const c = await client.getOrCreateTaskContainer(`${name}@2026-05-01T01:00:00.000Z`);
    await c.addTasks([{ name: 'fetch' }, { name: 'load' }]);
    await client.schedule(name, { cron: '0 * * * *' });
    at('2026-05-01T01:00:00Z');
    const r = await pass();
    expect(r.fired).to.deep.equal([]);
    const [run] = await runs();
    expect(run.status).to.equal('error');
    expect(run.reason).to.match(
      /^the container already holds a different definition: task "load" already exists with different dependencies/,
    );
  });

  it('close() stops the scheduler and worker loops the client started', async function () {
    const c = createClient({ connection: db.connection, clock, workerId: 'closing' });
    pipeline(c);
    const h = c.startScheduler({ intervalMs: 10 });
    const w = c.work(name, () => undefined, { pollIntervalMs: 10 });
    let ended = false;
    void w.done.then(() => (ended = true));
    await h.pass();
    await c.close();
    expect(ended).to.equal(true);
    await h.stop(); // stopping again is harmless
  });

  it('three schedulers passing at once: every slot decided by exactly one of them, each once', async function () {
    const others = [1, 2].map((i) => createClient({ connection: db.connection, clock, workerId: `s${i}` }));
    others.forEach((c) => pipeline(c));
    const all = [client, ...others];
    const events: string[] = [];
    for (const c of all) c.on('schedule:fired', (e) => events.push(iso(e.slot)!));
    await client.schedule(name, { cron: '*/10 * * * *', overlap: 'allowAll' });
    for (let i = 1; i <= 12; i++) {
      clock.set(Date.parse('2026-05-01T00:30:00Z') + i * 600_000);
      const reports = await Promise.all(all.map((c) => c.runSchedulerPass()));
      expect(reports.flatMap((r) => r.fired).length, `slot ${i}`).to.equal(1);
    }
    const list = await runs();
    expect(list.map((r) => r.status)).to.deep.equal(Array(12).fill('started'));
    expect(new Set(list.map((r) => r.container)).size).to.equal(12);
    expect(events.length).to.equal(12);
    expect(new Set(events).size).to.equal(12);
    expect((await client.listContainers({ namePrefix: `${name}@`, limit: 100 })).items.length).to.equal(12);
  });

  describe('overlap policies', function () {
    it("'skip': a slot while the previous run is unfinished is recorded as skipped (reason overlap); the next after it ends fires", async function () {
      const skipped: unknown[] = [];
      client.on('schedule:skipped', (e) => skipped.push(e));
      await client.schedule(name, { cron: '0 * * * *' });
      at('2026-05-01T01:00:00Z');
      const [first] = (await pass()).fired;
      at('2026-05-01T02:00:00Z');
      const r2 = await pass();
      expect(r2.fired).to.deep.equal([]);
      expect(r2.skipped.map((x) => [iso(x.slot), x.reason])).to.deep.equal([
        ['2026-05-01T02:00:00.000Z', 'overlap'],
      ]);
      expect(skipped).to.have.length(1);
      await finish(first.container);
      at('2026-05-01T03:00:00Z');
      const r3 = await pass();
      expect(r3.finished.map((x) => x.container)).to.deep.equal([first.container]);
      expect(r3.fired.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T03:00:00.000Z']);
      expect((await runs()).map((x) => x.status)).to.deep.equal(['finished', 'skipped', 'started']);
    });

    it("'bufferOne': one slot waits and starts when the run ends; a second one meanwhile is skipped", async function () {
      await client.schedule(name, { cron: '0 * * * *', overlap: 'bufferOne' });
      at('2026-05-01T01:00:00Z');
      const [first] = (await pass()).fired;
      at('2026-05-01T02:00:00Z');
      expect((await pass()).buffered.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T02:00:00.000Z']);
      at('2026-05-01T03:00:00Z');
      expect((await pass()).skipped.map((x) => [iso(x.slot), x.reason])).to.deep.equal([
        ['2026-05-01T03:00:00.000Z', 'overlap'],
      ]);
      expect(await client.getTaskContainer(`${name}@2026-05-01T02:00:00.000Z`)).to.equal(null);
      await finish(first.container);
      at('2026-05-01T03:10:00Z');
      const r = await pass();
      expect(r.finished.map((x) => x.container)).to.deep.equal([first.container]);
      expect(r.fired.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T02:00:00.000Z']);
      expect(await client.getTaskContainer(`${name}@2026-05-01T02:00:00.000Z`)).to.not.equal(null);
      expect((await runs()).map((x) => x.status)).to.deep.equal(['finished', 'started', 'skipped']);
    });

    it("'cancelOther': the unfinished run is cancelled and the slot starts", async function () {
      await client.schedule(name, { cron: '0 * * * *', overlap: 'cancelOther' });
      at('2026-05-01T01:00:00Z');
      const [first] = (await pass()).fired;
      at('2026-05-01T02:00:00Z');
      const r = await pass();
      expect(r.fired.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T02:00:00.000Z']);
      expect((await client.summary(first.container))!.status).to.equal('cancelled');
      at('2026-05-01T02:01:00Z');
      expect((await pass()).finished.map((x) => x.container)).to.deep.equal([first.container]);
      const list = await runs();
      expect(list.map((x) => [x.status, x.containerStatus])).to.deep.equal([
        ['finished', 'cancelled'],
        ['started', 'pending'],
      ]);
    });

    it("'allowAll': slots start while earlier runs are unfinished", async function () {
      await client.schedule(name, { cron: '0 * * * *', overlap: 'allowAll' });
      for (const h of ['01', '02', '03']) {
        at(`2026-05-01T${h}:00:00Z`);
        expect((await pass()).fired).to.have.length(1);
      }
      expect((await runs()).map((x) => [x.status, x.containerStatus])).to.deep.equal(
        Array(3).fill(['started', 'pending']),
      );
    });
  });

  describe('catch-up after downtime', function () {
    it('slots inside catchupWindowMs are fired late, in order', async function () {
      await client.schedule(name, { cron: '0 * * * *', overlap: 'allowAll', catchupWindowMs: 3 * H });
      at('2026-05-01T03:30:00Z'); // down since 00:30: slots 01:00, 02:00, 03:00 are all inside 3 h
      const r = await pass();
      expect(r.fired.map((x) => iso(x.slot))).to.deep.equal([
        '2026-05-01T01:00:00.000Z',
        '2026-05-01T02:00:00.000Z',
        '2026-05-01T03:00:00.000Z',
      ]);
      expect(r.skipped).to.deep.equal([]);
    });

    it('slots older than the window are recorded as skipped (reason missed, one record for the range), the rest fire', async function () {
      const missed: unknown[] = [];
      client.on('schedule:missed', (e) => missed.push(e));
      await client.schedule(name, { cron: '0 * * * *', overlap: 'allowAll', catchupWindowMs: 2.5 * H });
      at('2026-05-01T10:30:00Z'); // slots 01:00…10:00; 08:00 and older are more than 2.5 h late
      const r = await pass();
      expect(r.skipped.map((x) => [iso(x.slot), iso(x.lastSlot), x.count, x.reason])).to.deep.equal([
        ['2026-05-01T01:00:00.000Z', '2026-05-01T07:00:00.000Z', 7, 'missed'],
      ]);
      expect(r.fired.map((x) => iso(x.slot))).to.deep.equal([
        '2026-05-01T08:00:00.000Z',
        '2026-05-01T09:00:00.000Z',
        '2026-05-01T10:00:00.000Z',
      ]);
      expect(missed).to.have.length(1);
      const hist = await runs();
      expect(hist[0]).to.include({ status: 'skipped', reason: 'missed', count: 7 });
      expect(iso((await client.getSchedule(name))!.nextSlot)).to.equal('2026-05-01T11:00:00.000Z');
    });

    it("under 'skip', the first late slot starts and the other late ones are skipped as overlapping", async function () {
      await client.schedule(name, { cron: '0 * * * *' });
      at('2026-05-01T03:30:00Z');
      const r = await pass();
      expect(r.fired.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T01:00:00.000Z']);
      expect(r.skipped.map((x) => [iso(x.slot), x.reason])).to.deep.equal([
        ['2026-05-01T02:00:00.000Z', 'overlap'],
        ['2026-05-01T03:00:00.000Z', 'overlap'],
      ]);
    });
  });

  describe('daylight-saving time (Europe/Berlin)', function () {
    async function daily(from: string, days: string[]): Promise<string[]> {
      clock.set(Date.parse(from));
      await client.schedule(name, { cron: '30 2 * * *', timezone: 'Europe/Berlin', overlap: 'allowAll' });
      const fired: string[] = [];
      for (const d of days) {
        at(d);
        fired.push(...(await pass()).fired.map((x) => iso(x.slot)!));
      }
      return fired;
    }

    it('spring forward (2026-03-29, 02:00 → 03:00): the 02:30 that does not exist fires at 03:00 CEST, once', async function () {
      const fired = await daily('2026-03-27T12:00:00Z', [
        '2026-03-28T12:00:00Z',
        '2026-03-29T12:00:00Z',
        '2026-03-30T12:00:00Z',
      ]);
      expect(fired).to.deep.equal([
        '2026-03-28T01:30:00.000Z',
        '2026-03-29T01:00:00.000Z',
        '2026-03-30T00:30:00.000Z',
      ]);
    });

    it('fall back (2026-10-25, 03:00 → 02:00): 02:30 happens twice, the slot fires once (the first, CEST)', async function () {
      const fired = await daily('2026-10-23T12:00:00Z', [
        '2026-10-24T12:00:00Z',
        '2026-10-25T12:00:00Z',
        '2026-10-26T12:00:00Z',
      ]);
      expect(fired).to.deep.equal([
        '2026-10-24T00:30:00.000Z',
        '2026-10-25T00:30:00.000Z',
        '2026-10-26T01:30:00.000Z',
      ]);
    });

    it('hourly on the fall-back day: 25 slots, one per real hour, none twice', async function () {
      clock.set(Date.parse('2026-10-24T21:59:00Z')); // 23:59 CEST
      await client.schedule(name, { cron: '0 * * * *', timezone: 'Europe/Berlin', overlap: 'allowAll' });
      const fired: string[] = [];
      for (let i = 1; i <= 25; i++) {
        clock.set(Date.parse('2026-10-24T22:00:00Z') + (i - 1) * H + 1000);
        fired.push(...(await pass()).fired.map((x) => iso(x.slot)!));
      }
      expect(fired).to.have.length(25);
      expect(new Set(fired).size).to.equal(25);
      expect(fired[0]).to.equal('2026-10-24T22:00:00.000Z'); // 00:00 CEST
      expect(fired[24]).to.equal('2026-10-25T22:00:00.000Z'); // 23:00 CET
    });
  });

  describe('pause', function () {
    it('a paused schedule records its slots as skipped (reason paused); unpause fires the next slot after now', async function () {
      await client.schedule(name, { cron: '0 * * * *', overlap: 'allowAll' });
      expect(await client.pauseSchedule(name, 'maintenance')).to.equal(true);
      expect(await client.pauseSchedule(name)).to.equal(false);
      expect((await client.getSchedule(name))!).to.include({ paused: true, note: 'maintenance' });
      at('2026-05-01T02:30:00Z');
      const r = await pass();
      expect(r.fired).to.deep.equal([]);
      expect(r.skipped.map((x) => [iso(x.slot), x.count, x.reason])).to.deep.equal([
        ['2026-05-01T01:00:00.000Z', 2, 'paused'],
      ]);
      at('2026-05-01T03:30:00Z');
      const s = await client.unpauseSchedule(name);
      expect(s.paused).to.equal(false);
      expect(iso(s.nextSlot)).to.equal('2026-05-01T04:00:00.000Z');
      expect((await pass()).fired).to.deep.equal([]);
      at('2026-05-01T04:00:00Z');
      expect((await pass()).fired.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T04:00:00.000Z']);
      expect((await runs()).map((x) => [iso(x.slot), x.status, x.reason])).to.deep.equal([
        ['2026-05-01T01:00:00.000Z', 'skipped', 'paused'],
        ['2026-05-01T03:00:00.000Z', 'skipped', 'paused'],
        ['2026-05-01T04:00:00.000Z', 'started', null],
      ]);
      const err = await client.pauseSchedule('nope').catch((e: unknown) => e);
      expect((err as ValidationError).code).to.equal('PTS_NOT_FOUND');
    });

    it('pauseOnFailure: a failed run pauses the schedule with the reason', async function () {
      const paused: unknown[] = [];
      client.on('schedule:paused', (e) => paused.push(e));
      await client.schedule(name, { cron: '0 * * * *', pauseOnFailure: true });
      at('2026-05-01T01:00:00Z');
      const [first] = (await pass()).fired;
      await finish(first.container, false);
      at('2026-05-01T02:00:00Z');
      const r = await pass();
      expect(r.paused).to.deep.equal([name]);
      expect(r.fired).to.deep.equal([]);
      expect(r.skipped.map((x) => x.reason)).to.deep.equal(['paused']);
      expect((await client.getSchedule(name))!).to.include({
        paused: true,
        note: `run failed: ${first.container}`,
      });
      expect(paused).to.deep.equal([{ schedule: name, reason: `run failed: ${first.container}` }]);
    });
  });

  describe('backfill and trigger', function () {
    it('backfill fires the slots of a past range through the same path; a slot already decided is not fired again', async function () {
      clock.set(Date.parse('2026-05-01T10:30:00Z'));
      await client.schedule(name, { cron: '0 * * * *', overlap: 'allowAll' });
      const b = await client.backfillSchedule(name, {
        from: new Date('2026-05-01T05:00:00Z'),
        to: new Date('2026-05-01T08:00:00Z'),
      });
      expect(b.map((x) => [iso(x.slot), x.status, x.kind])).to.deep.equal([
        ['2026-05-01T05:00:00.000Z', 'started', 'backfill'],
        ['2026-05-01T06:00:00.000Z', 'started', 'backfill'],
        ['2026-05-01T07:00:00.000Z', 'started', 'backfill'],
        ['2026-05-01T08:00:00.000Z', 'started', 'backfill'],
      ]);
      const again = await client.backfillSchedule(name, {
        from: new Date('2026-05-01T04:00:00Z'),
        to: new Date('2026-05-01T06:00:00Z'),
      });
      expect(again.map((x) => [iso(x.slot), x.id])).to.deep.equal([
        ['2026-05-01T04:00:00.000Z', again[0].id],
        ['2026-05-01T05:00:00.000Z', b[0].id],
        ['2026-05-01T06:00:00.000Z', b[1].id],
      ]);
      expect((await client.listContainers({ namePrefix: `${name}@`, limit: 100 })).items.length).to.equal(5);
      // under 'skip' the first backfilled slot starts, the others overlap it
      const skip = await client.backfillSchedule(name, {
        from: new Date('2026-05-01T01:00:00Z'),
        to: new Date('2026-05-01T02:00:00Z'),
        overlap: 'skip',
      });
      expect(skip.map((x) => [x.status, x.reason])).to.deep.equal([
        ['skipped', 'overlap'],
        ['skipped', 'overlap'],
      ]);
      for (const bad of [
        { from: new Date('2026-05-01T09:00:00Z'), to: new Date('2026-05-01T11:00:00Z') },
        { from: new Date('x'), to: new Date() },
      ]) {
        expect(await client.backfillSchedule(name, bad).catch((e: unknown) => e)).to.be.instanceOf(
          ValidationError,
        );
      }
    });

    it('trigger fires now, under the overlap policy', async function () {
      await client.schedule(name, { cron: '0 0 1 1 *' });
      at('2026-05-01T00:45:00Z');
      const t = await client.triggerSchedule(name);
      expect(t).to.include({
        status: 'started',
        kind: 'trigger',
        container: `${name}@2026-05-01T00:45:00.000Z`,
      });
      at('2026-05-01T00:46:00Z');
      expect(await client.triggerSchedule(name)).to.include({ status: 'skipped', reason: 'overlap' });
    });
  });

  it('a scheduler killed between claiming a slot and creating its container: the next pass creates it, once', async function () {
    await client.schedule(name, { cron: '0 * * * *' });
    at('2026-05-01T01:00:00Z');
    // What a firer leaves when killed right after its record insert: a `starting` record, the schedule not advanced.
    const { inserted } = await client.core.store.insertRun({
      pipeline: name,
      schedule: name,
      slot: new Date('2026-05-01T01:00:00Z'),
      lastSlot: new Date('2026-05-01T01:00:00Z'),
      count: 1,
      kind: 'scheduled',
      status: 'starting',
      reason: null,
      container: `${name}@2026-05-01T01:00:00.000Z`,
      definitionHash: null,
      steps: null,
    });
    expect(inserted).to.equal(true);
    const other = createClient({ connection: db.connection, clock, workerId: 'other' });
    pipeline(other);
    const fired: string[] = [];
    other.on('schedule:fired', (e) => fired.push(e.container));
    const r = await other.runSchedulerPass();
    expect(r.repaired.map((x) => x.container)).to.deep.equal([`${name}@2026-05-01T01:00:00.000Z`]);
    expect(fired).to.deep.equal([]); // the dead firer decided it; the repair does not fire it again
    expect((await runs()).map((x) => [x.status, x.containerStatus])).to.deep.equal([['started', 'pending']]);
    expect(iso((await client.getSchedule(name))!.nextSlot)).to.equal('2026-05-01T02:00:00.000Z');
    expect(
      (await (await client.getTaskContainer(`${name}@2026-05-01T01:00:00.000Z`))!.getTasks()).length,
    ).to.equal(2);
  });

  it('the run history shows definition changes (steps added, removed, dependencies changed) and step durations', async function () {
    await client.schedule(name, { cron: '0 * * * *', overlap: 'allowAll' });
    at('2026-05-01T01:00:00Z');
    const [r1] = (await pass()).fired;
    await finish(r1.container);
    client.definePipeline(name, {
      tasks: [{ name: 'fetch' }, { name: 'clean' }, { name: 'load', dependsOn: ['fetch', 'clean'] }],
    });
    at('2026-05-01T02:00:00Z');
    await pass();
    at('2026-05-01T03:00:00Z');
    await pass();
    client.definePipeline(name, {
      tasks: [{ name: 'fetch' }, { name: 'load', dependsOn: ['fetch'], maxRetries: 9 }],
    });
    at('2026-05-01T04:00:00Z');
    await pass();
    const page = await client.listRuns(name, { limit: 2 });
    expect(page.items.map((x) => iso(x.slot))).to.deep.equal([
      '2026-05-01T04:00:00.000Z',
      '2026-05-01T03:00:00.000Z',
    ]);
    expect(page.items[0].changes).to.deep.include({
      added: [],
      removed: ['clean'],
      settingsChanged: ['load'],
    });
    expect(page.items[0].changes!.dependenciesChanged).to.deep.equal([
      { name: 'load', from: ['clean', 'fetch'], to: ['fetch'] },
    ]);
    expect(page.items[1].changes).to.equal(null); // 03:00 has the same definition as 02:00
    const rest = await client.listRuns(name, { cursor: page.nextCursor });
    expect(rest.nextCursor).to.equal(null);
    expect(rest.items.map((x) => iso(x.slot))).to.deep.equal([
      '2026-05-01T02:00:00.000Z',
      '2026-05-01T01:00:00.000Z',
    ]);
    expect(rest.items[0].changes).to.deep.equal({
      fromHash: rest.items[1].definitionHash,
      toHash: rest.items[0].definitionHash,
      added: ['clean'],
      removed: [],
      dependenciesChanged: [{ name: 'load', from: ['fetch'], to: ['clean', 'fetch'] }],
      settingsChanged: [],
    });
    expect(rest.items[1].steps.map((s) => [s.name, s.state, s.durationMs])).to.deep.equal([
      ['fetch', 'succeeded', 0],
      ['load', 'succeeded', 0],
    ]);
    const d = await client.stepDurations(name);
    expect(Object.keys(d).sort()).to.deep.equal(['fetch', 'load']);
    expect(d.fetch.map((x) => iso(x.slot))).to.deep.equal(['2026-05-01T01:00:00.000Z']);
    expect(await client.listRuns(name, { cursor: 'x!' }).catch((e: unknown) => e)).to.be.instanceOf(
      ValidationError,
    );
  });

  it('work() runs the runs the scheduler creates, in another client; the next pass records them finished', async function () {
    const worker = createClient({ connection: db.connection, clock, workerId: 'worker' });
    const ran: string[] = [];
    const done: string[] = [];
    const w = worker.work(name, async (ctx) => void ran.push(ctx.name), {
      pollIntervalMs: 20,
      onRun: (c, r) => done.push(`${c}:${r.status}`),
    });
    try {
      await client.schedule(name, { cron: '0 * * * *', overlap: 'allowAll' });
      at('2026-05-01T02:00:00Z');
      const fired = (await pass()).fired.map((x) => x.container);
      expect(fired).to.have.length(2);
      while (done.length < 2) await new Promise((r) => setTimeout(r, 20));
      expect(done).to.deep.equal(fired.map((c) => `${c}:succeeded`));
      expect(ran).to.deep.equal(['fetch', 'load', 'fetch', 'load']);
      const events: PtsEventName[] = [];
      client.on('run:finished', () => events.push('run:finished'));
      expect((await pass()).finished.map((x) => x.outcome)).to.deep.equal(['succeeded', 'succeeded']);
      expect(events).to.have.length(2);
    } finally {
      await w.stop();
    }
  });

  it('round trips: an idle pass is 2 reads; firing a slot is the decision insert, the container, the tasks and the advance', async function () {
    const conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    const counter = new CommandCounter(conn.getClient() as never);
    try {
      const c = createClient({ connection: conn, clock, workerId: 'counted' });
      pipeline(c);
      await c.schedule(name, { cron: '0 * * * *', overlap: 'allowAll' });
      await c.runSchedulerPass();
      counter.reset();
      await c.runSchedulerPass();
      // the pipeline's schedules; its open runs (none)
      expect(counter.commands.map((x) => `${x.name} ${String(x.collection)}`)).to.deep.equal([
        'find pts_schedules',
        'find pts_runs',
      ]);
      at('2026-05-01T01:00:00Z');
      counter.reset();
      expect((await c.runSchedulerPass()).fired).to.have.length(1);
      const names = counter.commands.map((x) => `${x.name} ${String(x.collection)}`);
      expect(names.filter((x) => x === 'insert pts_runs')).to.have.length(1); // the one decision
      expect(names.filter((x) => x === 'update pts_schedules')).to.have.length(1); // the one advance
      expect(names.filter((x) => x.startsWith('findAndModify pts_containers'))).to.have.length.within(1, 3); // get-or-create, the counter write
      expect(names.length).to.be.at.most(14);
      counter.reset();
      await c.runSchedulerPass();
      // schedules; open runs (one started); its container's status
      expect(counter.commands.map((x) => `${x.name} ${String(x.collection)}`)).to.deep.equal([
        'find pts_schedules',
        'find pts_runs',
        'find pts_containers',
      ]);
    } finally {
      counter.stop();
      await conn.close();
    }
  });

  it('startScheduler() returns a handle whose stop() ends the loop', async function () {
    await client.schedule(name, { cron: '0 * * * *' });
    at('2026-05-01T01:00:00Z');
    const fired: string[] = [];
    client.on('schedule:fired', (e) => fired.push(e.container));
    const h = client.startScheduler({ intervalMs: 20 });
    while (fired.length === 0) await new Promise((r) => setTimeout(r, 10));
    await h.stop();
    expect(fired).to.deep.equal([`${name}@2026-05-01T01:00:00.000Z`]);
  });
});
