/**
 * Batch claims (lib/store/claims.ts `claimSeveral`, transitions.ts `claimTasks`): a runner with
 * several free slots claims as many ready tasks in three commands — a read of the candidates, one
 * `update` command of one fenced conditional update per task, one counter `$inc` — each task
 * still fenced on its own. Command counts are asserted by command monitoring, so a regression
 * fails here.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, type Client } from '../lib';
import type { ResolvedClaim } from '../lib/store';
import { useTestDatabase } from './helpers/db';
import { CommandCounter, expectConsistent } from './helpers/consistency';

function tally(counter: CommandCounter): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of counter.commands) {
    const k = `${c.name}:${String(c.collection)}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

describe('claims (batch)', function () {
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let counter: CommandCounter;
  before(async function () {
    conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    counter = new CommandCounter(conn.getClient() as never);
    client = createClient({ connection: conn, leaseMs: 30_000 });
  });
  after(async function () {
    counter.stop();
    await client.close();
    await conn.close();
  });

  async function claimer(container: string): Promise<ResolvedClaim> {
    const doc = await client.core.store.findContainer(container);
    return { containerId: doc!._id, owner: 'spec', leaseMs: 30_000 };
  }

  it('container.run of 8 tasks at concurrency 8: all claimed in one round trip (3 commands instead of 16)', async function () {
    const k = await client.getOrCreateTaskContainer('run-8');
    await k.addTasks(Array.from({ length: 8 }, (_, i) => ({ name: `t${i}` })));
    let started = 0;
    let release!: () => void;
    const all = new Promise<void>((r) => (release = r));
    counter.reset();
    const r = await k.run(
      async (ctx) => {
        if (++started === 8) release();
        await all; // every handler runs at once: they were claimed together
        for (const p of [25, 50, 75]) {
          ctx.progress(p);
          await ctx.flush();
        }
        return 1;
      },
      { concurrency: 8, progressIntervalMs: 0 },
    );
    expect(r.status).to.equal('succeeded');
    const t = tally(counter);
    const bulk = counter.commands.filter(
      (c) =>
        c.name === 'update' && c.collection === 'pts_tasks' && (c.command.updates as unknown[]).length > 1,
    );
    expect(bulk, 'one update command claims all 8').to.have.length(1);
    expect((bulk[0].command.updates as unknown[]).length).to.equal(8);
    const sets = (c: CommandCounter['commands'][number]): string | undefined =>
      (c.command.update as { $set?: { state?: string } } | undefined)?.$set?.state;
    const fam = counter.commands.filter((c) => c.name === 'findAndModify' && c.collection === 'pts_tasks');
    expect(
      fam.filter((c) => sets(c) === 'succeeded'),
      'one write per succeed',
    ).to.have.length(8);
    // The runner looks again whenever a slot frees; a look that finds nothing is one
    // findAndModify + the key lookup (one free slot) or two finds (several free: the batch read).
    const single = fam.length - 8;
    const batchLooks = (t['find:pts_tasks'] - 4 - single) / 2; // 4: handler check, sweep, the batch's read, the summary
    expect(
      Number.isInteger(batchLooks) && batchLooks >= 0,
      `finds ${t['find:pts_tasks']}, single looks ${single}`,
    ).to.equal(true);
    const looks = single + batchLooks;
    expect(looks, 'empty looks: at most one per handler end').to.be.within(1, 8);
    // Before batch claims: 8 × (findAndModify task + findAndModify container) = 16 claim commands.
    // The succeeds' counter deltas are held back for the next claim; a look that claims nothing
    // is followed by one counter write of what was held (runner.ts flushCarry): at most one per look.
    const flushes = t['findAndModify:pts_containers'] - 2; // less the batch claim's and the final status
    expect(flushes, `held-back counter writes (looks ${looks})`).to.be.within(1, looks);
    expect({ ...t, 'find:pts_tasks': 0, 'findAndModify:pts_tasks': 0, 'findAndModify:pts_containers': 0 }).to.deep.equal({
      'find:pts_tasks': 0,
      'find:pts_containers': 4,
      'aggregate:pts_tasks': 1,
      'update:pts_tasks': 25, // 24 progress heartbeats + the batch claim
      'findAndModify:pts_containers': 0,
      'findAndModify:pts_tasks': 0,
    });
    // 44 = 3 for the batch claim + 24 progress + 8 succeeds + the reads + the final status; then
    // the held-back counter writes and the empty looks. Before: a counter write per succeed (52 + 2 × looks).
    expect(counter.commands.length).to.equal(44 + flushes + 2 * looks);
    await expectConsistent(k);
  });

  it('concurrency 1 claims one at a time as before (claimNext: one findAndModify + one counter write)', async function () {
    const k = await client.getOrCreateTaskContainer('run-1');
    await k.addTasks(Array.from({ length: 4 }, (_, i) => ({ name: `t${i}` })));
    counter.reset();
    const r = await k.run(async () => 1, { concurrency: 1 });
    expect(r.status).to.equal('succeeded');
    const t = tally(counter);
    expect(t['findAndModify:pts_tasks'], '4 claims + 4 succeeds + the final empty claim').to.equal(9);
    expect(t['update:pts_tasks'] ?? 0, 'no batch').to.equal(0);
    // Each success's counter delta rides on the next claim's counter write; the last one is
    // written alone after the final empty claim, then the container's status (before: 4 + 4 + 1).
    expect(t['findAndModify:pts_containers'], '4 claims + the last success + the final status').to.equal(6);
    const claimWrites = counter.commands.filter((c) => c.name === 'findAndModify' && c.collection === 'pts_containers');
    const inc = (i: number) => (claimWrites[i].command.update as { $inc: Record<string, number> }).$inc;
    expect(inc(0)).to.deep.include({ 'counts.pending': -1, 'counts.running': 1 });
    expect(inc(1)).to.deep.include({ 'counts.pending': -1, 'counts.succeeded': 1 }); // claim of t1 + success of t0
    expect(inc(1)['counts.running'] ?? 0).to.equal(0);
    expect(inc(4)).to.deep.include({ 'counts.running': -1, 'counts.succeeded': 1 }); // the last success alone
    await expectConsistent(k);
  });

  it('takes the first ready tasks in claim order, fences each on its own, one counter write', async function () {
    const k = await client.getOrCreateTaskContainer('order');
    await k.addTasks([
      { name: 'low', priority: -1 },
      { name: 'a' },
      { name: 'b' },
      { name: 'high', priority: 5 },
      { name: 'c' },
    ]);
    const q = await claimer('order');
    counter.reset();
    const out = await client.core.store.claimSeveral(q, 3);
    expect(out.claimed.map((r) => r.task.name)).to.deep.equal(['high', 'a', 'b']);
    expect(tally(counter)).to.deep.equal({
      'find:pts_tasks': 1,
      'update:pts_tasks': 1,
      'findAndModify:pts_containers': 1,
    });
    for (const r of out.claimed) {
      const stored = (await k.getTask(r.task.name))!.toJSON();
      expect(stored.state).to.equal('running');
      expect(r.task.fence, `${r.task.name}: token as stored`).to.equal(
        (await conn.collection('pts_tasks').findOne({ _id: r.task._id }))!.fence,
      );
      expect(r.task.attempts).to.equal(1);
      expect(r.task.lease!.claim, 'the batch claim id').to.not.equal(undefined);
    }
    expect(out.claimed[0].container.statusChange).to.deep.equal({ from: 'pending', to: 'running' });
    expect(out.claimed.slice(1).every((r) => r.container.statusChange === null)).to.equal(true);
    // A stale token is refused as before: the fence is per task.
    await k.cancel('a');
    await k.retry('a');
    const again = await client.core.store.claimSeveral(q, 5);
    expect(again.claimed.map((r) => r.task.name)).to.deep.equal(['a', 'c', 'low']);
    const staleA = out.claimed[1].task;
    let refused: unknown = null;
    await client.core.store.succeedTask({ ...staleA }, 'late').catch((e: unknown) => (refused = e));
    expect((refused as { code?: string } | null)?.code).to.equal('PTS_LEASE_LOST');
    await expectConsistent(k);
  });

  it('racing batch claimers: every task held once, by exactly one of them; counters agree', async function () {
    const k = await client.getOrCreateTaskContainer('race');
    await k.addTasks(Array.from({ length: 30 }, (_, i) => ({ name: `t${i}` })));
    const q = await claimer('race');
    const others = [
      createClient({ connection: conn, leaseMs: 30_000 }),
      createClient({ connection: conn, leaseMs: 30_000 }),
    ];
    try {
      const stores = [client.core.store, ...others.map((o) => o.core.store)];
      const held = new Map<string, { owner: string; fence: number }>();
      const dup: string[] = [];
      await Promise.all(
        stores.map(async (s, i) => {
          for (;;) {
            const r = await s.claimSeveral({ ...q, owner: `w${i}` }, 2 + i * 2);
            if (r.claimed.length === 0) return;
            for (const c of r.claimed) {
              if (held.has(c.task.name)) dup.push(c.task.name);
              held.set(c.task.name, { owner: `w${i}`, fence: c.task.fence });
            }
          }
        }),
      );
      expect(dup, 'claimed twice').to.deep.equal([]);
      expect(held.size).to.equal(30);
      for (const t of await conn.collection('pts_tasks').find({ containerId: q.containerId }).toArray()) {
        expect(t.state).to.equal('running');
        expect({ owner: t.lease.owner, fence: t.fence }).to.deep.equal(held.get(t.name));
      }
      await expectConsistent(k);
    } finally {
      await Promise.all(others.map((o) => o.close()));
    }
  });

  it('tasks with a deadline: each gets its fenced second write (lease.deadline), still one counter write', async function () {
    const k = await client.getOrCreateTaskContainer('deadlines');
    await k.addTasks([{ name: 'x', timeoutMs: 60_000 }, { name: 'y' }, { name: 'z', stallMs: 60_000 }]);
    const q = await claimer('deadlines');
    counter.reset();
    const out = await client.core.store.claimSeveral(q, 3);
    expect(out.claimed).to.have.length(3);
    expect(tally(counter)).to.deep.equal({
      'find:pts_tasks': 1,
      'update:pts_tasks': 1,
      'findAndModify:pts_tasks': 2,
      'findAndModify:pts_containers': 1,
    });
    const byName = Object.fromEntries(out.claimed.map((r) => [r.task.name, r.task]));
    expect(byName.x.lease!.deadline).to.be.instanceOf(Date);
    expect(byName.y.lease!.deadline).to.equal(undefined);
    expect(byName.z.lease!.deadline).to.be.instanceOf(Date);
    await expectConsistent(k);
  });

  it('a paused container: nothing claimed', async function () {
    const k = await client.getOrCreateTaskContainer('paused');
    await k.addTasks([{ name: 'a' }, { name: 'b' }]);
    await k.pause();
    const out = await client.core.store.claimSeveral(await claimer('paused'), 2);
    expect(out.claimed).to.deep.equal([]);
    expect((await k.summary()).counts.pending).to.equal(2);
  });
});
