import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, ValidationError, type Client } from '../lib';
import { useTestDatabase } from './helpers/db';
import { CommandCounter, expectConsistent } from './helpers/consistency';

describe('runner', function () {
  const db = useTestDatabase();
  let client: Client;
  before(function () {
    client = createClient({ connection: db.connection, leaseMs: 5000 });
  });

  it('runs independent branches in parallel up to concurrency, dependents after their dependencies', async function () {
    const c = await client.getOrCreateTaskContainer('parallel');
    await c.addTasks([
      { name: 'root' },
      { name: 'left', dependsOn: ['root'] },
      { name: 'right', dependsOn: ['root'] },
      { name: 'join', dependsOn: ['left', 'right'] },
    ]);
    const spans: Record<string, [number, number]> = {};
    let running = 0;
    let maxRunning = 0;
    const h = async (ctx: { name: string }) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      const start = Date.now();
      await new Promise((r) => setTimeout(r, 300));
      spans[ctx.name] = [start, Date.now()];
      running--;
    };
    const res = await c.run(h, { concurrency: 4 });
    expect(res.status).to.equal('succeeded');
    expect(res.succeeded.sort()).to.deep.equal(['join', 'left', 'right', 'root']);
    expect(maxRunning).to.equal(2);
    expect(spans.left[0]).to.be.at.least(spans.root[1]);
    expect(spans.join[0]).to.be.at.least(Math.max(spans.left[1], spans.right[1]));
    // left and right overlapped
    expect(spans.left[0]).to.be.below(spans.right[1]);
    expect(spans.right[0]).to.be.below(spans.left[1]);
    // a second run does nothing: succeeded tasks never run again
    let again = 0;
    const res2 = await c.run(async () => void again++);
    expect(again).to.equal(0);
    expect(res2.attempts).to.deep.equal({});
    await expectConsistent(c);
  });

  it("'continue' runs independent branches after a permanent failure; 'fail-fast' stops claiming", async function () {
    for (const policy of ['continue', 'fail-fast'] as const) {
      const c = await client.getOrCreateTaskContainer(`policy ${policy}`, { failurePolicy: policy });
      await c.addTasks([
        { name: 'bad', maxRetries: 0 },
        { name: 'after-bad', dependsOn: ['bad'] },
        { name: 'other1', dependsOn: ['slow'] },
        { name: 'slow' },
      ]);
      const ran: string[] = [];
      const res = await c.run(
        async (ctx) => {
          ran.push(ctx.name);
          if (ctx.name === 'bad') throw Object.assign(new Error('bad input file'), { code: 'E_BAD' });
          await new Promise((r) => setTimeout(r, 100));
        },
        { concurrency: 2 },
      );
      expect(res.status, policy).to.equal('failed');
      expect(res.failed).to.deep.equal(['bad']);
      expect(ran).to.not.include('after-bad');
      if (policy === 'continue') expect(ran.sort()).to.deep.equal(['bad', 'other1', 'slow']);
      else expect(ran).to.not.include('other1');
      const bad = (await c.getTask('bad'))!;
      expect(bad.failures()[0]).to.include({ message: 'bad input file', code: 'E_BAD', attempt: 1 });
      expect(bad.failures()[0].stack).to.include('bad input file');
      expect((await c.getTask('after-bad'))!.state()).to.equal('pending');
      await expectConsistent(c);
    }
  });

  it('throttles a progress flood, always persisting the last value, and retries a failing step', async function () {
    const conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    try {
      const counter = new CommandCounter(conn.getClient() as never);
      const mc = createClient({ connection: conn, leaseMs: 5000, progressIntervalMs: 100 });
      const c = await mc.getOrCreateTaskContainer('flood');
      await c.addTask('hot loop', null, { retryDelayMs: 50 });
      let attempt = 0;
      counter.reset();
      const res = await c.run(
        {
          'hot loop': async (ctx) => {
            attempt++;
            for (let i = 0; i < 50_000; i++) {
              ctx.progress((i / 50_000) * 99, `row ${i}`);
              if (i % 5000 === 0) await new Promise((r) => setImmediate(r));
            }
            ctx.progress(99.5, 'almost');
            if (attempt === 1) throw new Error('transient');
            return 'done';
          },
        },
        { pollIntervalMs: 50 },
      );
      const updates = counter.commands.filter((x) => x.name === 'update' && x.collection === 'pts_tasks').length;
      counter.stop();
      expect(res.status).to.equal('succeeded');
      expect(res.attempts).to.deep.equal({ 'hot loop': 2 });
      expect(updates, 'progress writes sent for 100k reports').to.be.below(100);
      const t = (await c.getTask('hot loop'))!;
      expect(t.statusText()).to.equal('almost');
      expect(t.percentageComplete()).to.equal(100);
      expect(t.failures().map((f) => f.message)).to.deep.equal(['transient']);
    } finally {
      await conn.close();
    }
  });

  it('hands an interrupted task its checkpoint and gives saveCheckpoint durability', async function () {
    const c = await client.getOrCreateTaskContainer('checkpoint');
    await c.addTask('copy', { files: 10 }, { retryDelayMs: 0 });
    const seen: unknown[] = [];
    await c.run({
      copy: async (ctx) => {
        seen.push(ctx.checkpoint);
        if (!ctx.checkpoint) {
          await ctx.saveCheckpoint({ done: 4 });
          expect(((await c.getTask('copy'))!.processingData() as { done: number }).done).to.equal(4);
          throw new Error('disk full');
        }
        return { copied: 10 };
      },
    });
    expect(seen).to.deep.equal([null, { done: 4 }]);
  });

  it('rejects handlers missing for pending tasks before running anything', async function () {
    const c = await client.getOrCreateTaskContainer('no handler');
    await c.addTasks([{ name: 'a' }, { name: 'b' }]);
    try {
      await c.run({ a: async () => 1 });
      expect.fail('ran without a handler for b');
    } catch (err) {
      expect(err).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).details.missing).to.deep.equal(['b']);
    }
    expect((await c.summary()).counts.pending).to.equal(2);
  });

  it('a handler whose lease is taken over sees its signal abort and its result is not written', async function () {
    const c = await client.getOrCreateTaskContainer('abort');
    await c.addTask('long', null);
    let aborted = false;
    const res = await c.run(
      {
        long: async (ctx) => {
          await c.cancel('long');
          await new Promise<void>((resolve) => {
            ctx.signal.addEventListener('abort', () => resolve());
            ctx.progress(10);
          });
          aborted = ctx.signal.aborted;
          return 'should not be stored';
        },
      },
      { progressIntervalMs: 0 },
    );
    expect(aborted).to.equal(true);
    const t = (await c.getTask('long'))!;
    expect(t.state()).to.equal('cancelled');
    expect(t.result()).to.equal(null);
    expect(res.status).to.equal('cancelled');
  });
});

describe('claimNext with concurrency keys', function () {
  const db = useTestDatabase();

  it('never runs more than the key limit at once across workers, and frees slots on completion', async function () {
    const client = createClient({ connection: db.connection, leaseMs: 5000 });
    await client.setKeyLimit('db-host-1', 2);
    const c = await client.getOrCreateTaskContainer('keyed');
    await c.addTasks(Array.from({ length: 6 }, (_, i) => ({ name: `k${i}`, key: 'db-host-1' })).concat([{ name: 'free', key: undefined as never }]));
    const held = [];
    for (let i = 0; i < 5; i++) {
      const l = await client.claimNext({ container: 'keyed' }, { owner: `w${i}` });
      if (l) held.push(l);
    }
    expect(held.map((l) => l.task.name).sort()).to.deep.equal(['free', 'k0', 'k1']);
    const running = await db.connection.collection('pts_tasks').countDocuments({ container: 'keyed', key: 'db-host-1', state: 'running' });
    expect(running).to.equal(2);
    await held[1].succeed();
    const next = await client.claimNext({ container: 'keyed', key: 'db-host-1' }, { owner: 'w9' });
    expect(next?.task.name).to.equal('k2');
    expect(await client.claimNext({ container: 'keyed', key: 'db-host-1' }, { owner: 'w10' })).to.equal(null);
  });
});
