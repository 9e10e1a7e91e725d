/**
 * ETA of a running pipeline run (lib/eta.ts, lib/store/eta.ts), deterministically: a ManualClock
 * gives the earlier runs known step durations (the scheduler records them on the run record when
 * it sees the run finish), then the estimate of a running run is exact — per-step medians along
 * the critical path, a running step by its elapsed time or its percentage — and what it costs:
 * one `pts_runs` read more than any other summary when a task is running.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, ManualClock, type Client } from '../lib';
import { estimateFinish, expectedDurations } from '../lib/eta';
import { CommandCounter } from './helpers/consistency';
import { useTestDatabase } from './helpers/db';

describe('eta', function () {
  const db = useTestDatabase();
  let clock: ManualClock;
  let client: Client;
  let n = 0;
  let name: string;
  /** fetch → (compare ∥ report) → final */
  const define = (c: Client): void => {
    c.definePipeline(name, {
      tasks: [
        { name: 'fetch' },
        { name: 'compare', dependsOn: ['fetch'] },
        { name: 'report', dependsOn: ['fetch'] },
        { name: 'final', dependsOn: ['compare', 'report'] },
      ],
    });
  };
  /** Triggers a run and runs it to the end, each step taking `ms[step]` on the clock. */
  async function pastRun(ms: Record<string, number>): Promise<void> {
    const run = await client.triggerSchedule(name);
    const c = await client.getTaskContainer(run.container);
    await c!.run(
      async (ctx) => {
        clock.advance(ms[ctx.task.name]);
      },
      { concurrency: 1 },
    );
    clock.advance(60_000);
    await client.runSchedulerPass(); // sees it finish: records the durations
  }

  beforeEach(async function () {
    clock = new ManualClock(Date.parse('2026-05-01T00:30:00Z'));
    client = createClient({ connection: db.connection, clock, workerId: 'w' });
    await client.ensureIndexes();
    name = `eta${++n}`;
    define(client);
    await client.schedule(name, { cron: '0 0 1 1 *', overlap: 'allowAll' });
  });
  afterEach(async function () {
    await client.close();
  });

  it('pure: medians per step; critical path through the unfinished steps; null without history or a step without one', function () {
    const { expected, runs } = expectedDurations([
      [{ name: 'a', durationMs: 10 }],
      [{ name: 'a', durationMs: 30 }, { name: 'b', durationMs: 7 }],
      [{ name: 'a', durationMs: 20 }],
    ]);
    expect(runs).to.equal(3);
    expect([...expected]).to.deep.equal([['a', 20], ['b', 7]]);
    const now = new Date(1_000_000);
    const steps = [
      { name: 'a', state: 'succeeded' as const, dependsOn: [], startedAt: null, percentageComplete: 100 },
      { name: 'b', state: 'running' as const, dependsOn: ['a'], startedAt: new Date(999_998), percentageComplete: 0 },
      { name: 'c', state: 'pending' as const, dependsOn: ['b'], startedAt: null, percentageComplete: 0 },
    ];
    const hist = [[{ name: 'a', durationMs: 5 }, { name: 'b', durationMs: 7 }, { name: 'c', durationMs: 100 }]];
    expect(estimateFinish(steps, hist, now)).to.deep.equal({ at: new Date(1_000_105), remainingMs: 105, basis: { runs: 1 } });
    expect(estimateFinish(steps, [], now)).to.equal(null);
    expect(estimateFinish(steps, [[{ name: 'a', durationMs: 5 }, { name: 'b', durationMs: 7 }]], now)).to.equal(null);
  });

  it('a running run: expected minus elapsed for a running step, then the longest branch; by percentage once reported', async function () {
    await pastRun({ fetch: 1000, compare: 2000, report: 4000, final: 500 });
    await pastRun({ fetch: 3000, compare: 2000, report: 2000, final: 500 });
    // medians of two: fetch 2000, compare 2000, report 3000, final 500
    const run = await client.triggerSchedule(name);
    const c = (await client.getTaskContainer(run.container))!;
    expect((await c.summary()).eta).to.equal(null); // pending: not running yet
    const lease = (await client.claimNext({ container: run.container, names: ['fetch'] }))!;
    clock.advance(500);
    const now = clock.now().getTime();
    // fetch: 2000 − 500 = 1500; then max(compare 2000, report 3000); then final 500
    expect((await c.summary()).eta).to.deep.equal({ at: new Date(now + 5000), remainingMs: 5000, basis: { runs: 2 } });
    await lease.heartbeat({ percentageComplete: 50 });
    // fetch by its percentage: 500 ms for 50 % → 500 more
    expect((await c.summary()).eta).to.deep.equal({ at: new Date(now + 4000), remainingMs: 4000, basis: { runs: 2 } });
    await lease.succeed();
    const compare = (await client.claimNext({ container: run.container, names: ['compare'] }))!;
    clock.advance(2500);
    // compare overran (0 left); report pending 3000; final 500
    expect((await c.summary()).eta).to.include({ remainingMs: 3500 });
    await compare.succeed();
    // the HTTP record and client.summary() carry the same value
    expect((await client.summary(run.container))!.eta).to.deep.equal((await c.summary()).eta);
  });

  it('null for a pipeline without finished history and for containers that are not pipeline runs', async function () {
    const run = await client.triggerSchedule(name);
    await client.claimNext({ container: run.container });
    expect((await client.summary(run.container))!.eta).to.equal(null);
    const plain = await client.getOrCreateTaskContainer('plain', { metadata: {} });
    await plain.addTasks([{ name: 't' }]);
    await client.claimNext({ container: 'plain' });
    expect((await plain.summary()).eta).to.equal(null);
  });

  it('round trips: a running pipeline run’s summary reads pts_runs once more; its tasks read replaces the running one', async function () {
    await pastRun({ fetch: 1000, compare: 1000, report: 1000, final: 1000 });
    const run = await client.triggerSchedule(name);
    await client.claimNext({ container: run.container, names: ['fetch'] });
    const conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    const counter = new CommandCounter(conn.getClient() as never);
    try {
      const c = createClient({ connection: conn, clock, workerId: 'counted' });
      const h = (await c.getTaskContainer(run.container))!;
      counter.reset();
      const s = await h.summary();
      expect(s.eta).to.include({ remainingMs: 3000 });
      expect(counter.commands.map((x) => `${x.name} ${String(x.collection)}`)).to.deep.equal([
        'find pts_containers',
        'find pts_runs',
        'find pts_tasks',
      ]);
      const plain = await c.getOrCreateTaskContainer('plain2');
      await plain.addTasks([{ name: 't' }]);
      await c.claimNext({ container: 'plain2' });
      counter.reset();
      await plain.summary();
      expect(counter.commands.map((x) => `${x.name} ${String(x.collection)}`)).to.deep.equal([
        'find pts_containers',
        'find pts_tasks',
      ]);
    } finally {
      counter.stop();
      await conn.close();
    }
  });
});
