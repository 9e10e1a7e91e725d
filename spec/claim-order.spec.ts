/**
 * The claim order (issue #14, item 9): higher `priority` first, then the creation number the
 * database hands out per batch (`pts_sequences`), never the tasks' ObjectIds — which, made by
 * different generators (the server for a single `addTask`, each client process for a batch),
 * do not sort by creation time.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, ValidationError, type Client } from '../lib';
import { CommandCounter } from './helpers/consistency';
import { useTestDatabase } from './helpers/db';
import { startFixture } from './http/support';

/** Runs `fn` with `Date.now()` shifted by `ms`: the ObjectIds a client makes then carry that time. */
async function withShiftedClock<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const real = Date.now;
  Date.now = () => real() + ms;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

describe('claim order: priority, then the database-allocated creation sequence', function () {
  const db = useTestDatabase();
  let client: Client;

  before(async function () {
    client = createClient({ connection: db.connection, workerId: 'w' });
    await client.ensureIndexes();
  });
  after(async function () {
    await client.close();
  });

  async function drain(container?: string): Promise<string[]> {
    const names: string[] = [];
    for (;;) {
      const lease = await client.claimNext(container === undefined ? {} : { container }, { owner: 'w' });
      if (!lease) return names;
      names.push(container === undefined ? `${lease.task.container}/${lease.task.name}` : lease.task.name);
      await lease.succeed();
    }
  }

  it('claims higher priority first, then in the order the tasks were added', async function () {
    const c = await client.getOrCreateTaskContainer('prio');
    await c.addTasks([
      { name: 'a0' },
      { name: 'b5', priority: 5 },
      { name: 'c-1', priority: -1 },
      { name: 'd5', priority: 5 },
    ]);
    await c.addTask('e0', null);
    await c.addTask('f1000', null, { priority: 1000 });
    await c.addTasks([{ name: 'g-1000', priority: -1000 }, { name: 'h0' }]);
    expect((await c.getTask('b5'))!.toJSON().priority).to.equal(5);
    expect((await c.getTask('a0'))!.toJSON().priority).to.equal(0);
    expect(await drain('prio')).to.deep.equal(['f1000', 'b5', 'd5', 'a0', 'e0', 'h0', 'c-1', 'g-1000']);
  });

  it('follows the order of adding, not of ObjectIds from different generators (the fuzz seed 3277266035 case)', async function () {
    const c = await client.getOrCreateTaskContainer('generators');
    // A batch whose client-made ObjectIds carry a time an hour ahead (another process's clock, or
    // simply ids that do not sort by creation), then a single add whose _id the server makes now.
    await withShiftedClock(3_600_000, () => c.addTasks([{ name: 't0' }, { name: 't1' }]));
    await c.addTask('t2', null);
    await withShiftedClock(-3_600_000, () => c.addTasks([{ name: 't3' }, { name: 't4' }]));
    const ids = Object.fromEntries((await c.getTasks()).map((t) => [t.name(), t.toJSON().id]));
    // The ids sort t3, t4, t2, t0, t1 (or t2 anywhere, as the server chose): not the order of adding.
    expect(ids.t3 < ids.t0 && ids.t4 < ids.t1, 'the shifted ObjectIds sort against the order of adding').to.equal(true);
    expect(await drain('generators')).to.deep.equal(['t0', 't1', 't2', 't3', 't4']);
  });

  it('orders claims across processes by the one database sequence', async function () {
    const other = await mongoose.createConnection(db.uri).asPromise();
    try {
      const second = createClient({ connection: other, workerId: 'p2' });
      const here = await client.getOrCreateTaskContainer('procs');
      const there = await second.getOrCreateTaskContainer('procs');
      await withShiftedClock(600_000, () => here.addTask('first', null));
      await there.addTasks([{ name: 'second' }, { name: 'third' }]);
      await withShiftedClock(600_000, () => here.addTasks([{ name: 'fourth' }, { name: 'fifth' }]));
      await there.addTask('sixth', null);
      expect(await drain('procs')).to.deep.equal(['first', 'second', 'third', 'fourth', 'fifth', 'sixth']);
      await second.close();
    } finally {
      await other.close();
    }
  });

  it('concurrent adds from two connections get distinct creation numbers, each batch a contiguous range in batch order', async function () {
    const other = await mongoose.createConnection(db.uri).asPromise();
    try {
      const second = createClient({ connection: other, workerId: 'p2' });
      const a = await client.getOrCreateTaskContainer('concurrent');
      const b = await second.getOrCreateTaskContainer('concurrent');
      await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).addTasks(Array.from({ length: 5 }, (_, j) => ({ name: `b${i}-${j}` })))),
      );
      const docs = await db.connection.collection('pts_tasks').find({ containerId: a._id }).toArray();
      const seqs = docs.map((d) => d.seq as number);
      expect(new Set(seqs).size, 'distinct').to.equal(50);
      for (let i = 0; i < 10; i++) {
        const batch = [0, 1, 2, 3, 4].map((j) => docs.find((d) => d.name === `b${i}-${j}`)!.seq as number);
        expect(batch, `batch ${i}`).to.deep.equal([0, 1, 2, 3, 4].map((j) => batch[0] + j));
      }
      // Claimed batch by batch, in the order their reservations ran.
      const byBatch = [...new Set((await drain('concurrent')).map((n) => n.split('-')[0]))];
      const reservationOrder = [...new Set(docs.sort((x, y) => (x.seq as number) - (y.seq as number)).map((d) => (d.name as string).split('-')[0]))];
      expect(byBatch).to.deep.equal(reservationOrder);
      await second.close();
    } finally {
      await other.close();
    }
  });

  it('across containers (claimNext without a container): the same order over every container', async function () {
    const x = await client.getOrCreateTaskContainer('across-x');
    const y = await client.getOrCreateTaskContainer('across-y');
    await withShiftedClock(3_600_000, () => y.addTasks([{ name: 'y1' }, { name: 'y2', priority: 2 }]));
    await x.addTask('x1', null);
    await y.addTask('y3', null, { priority: 2 });
    await x.addTasks([{ name: 'x2', priority: -3 }, { name: 'x3' }]);
    expect(await drain()).to.deep.equal(['across-y/y2', 'across-y/y3', 'across-y/y1', 'across-x/x1', 'across-x/x3', 'across-x/x2']);
  });

  it('keyed claims: unkeyed tasks first, then keyed ones with a free slot, each in claim order', async function () {
    const c = await client.getOrCreateTaskContainer('keyed');
    await c.addTasks([
      { name: 'k-low', key: 'ka' },
      { name: 'u-low' },
      { name: 'k-high', key: 'kb', priority: 9 },
      { name: 'u-high', priority: 1 },
      { name: 'k-mid', key: 'kc', priority: 3 },
    ]);
    expect(await drain('keyed')).to.deep.equal(['u-high', 'u-low', 'k-high', 'k-mid', 'k-low']);
    // With a key: only that key's tasks, in claim order.
    await c.addTasks([{ name: 'ka-1', key: 'ka' }, { name: 'ka-2', key: 'ka', priority: 4 }]);
    const l = (await client.claimNext({ container: 'keyed', key: 'ka' }, { owner: 'w' }))!;
    expect(l.task.name).to.equal('ka-2');
    await l.succeed();
  });

  it('a retried or reset task keeps its place (priority and creation number), not the time it came back', async function () {
    const c = await client.getOrCreateTaskContainer('comeback');
    await c.addTasks([{ name: 'old', maxRetries: 0 }, { name: 'new1' }]);
    const l = (await client.claimNext({ container: 'comeback' }, { owner: 'w' }))!;
    expect(l.task.name).to.equal('old');
    await l.fail(new Error('once'));
    await c.addTask('new2', null);
    await c.retry('old');
    expect(await drain('comeback')).to.deep.equal(['old', 'new1', 'new2']);
  });

  it('refuses a priority that is not an integer from -1000 to 1000, writing nothing', async function () {
    const c = await client.getOrCreateTaskContainer('bad priority');
    const cols = ['pts_tasks', 'pts_sequences', 'pts_containers'];
    const dump = async (): Promise<string> =>
      JSON.stringify(await Promise.all(cols.map((n) => db.connection.collection(n).find().sort({ _id: 1 }).toArray())));
    const before = await dump();
    for (const priority of [1.5, 1001, -1001, '1', null, Number.NaN, Infinity]) {
      let err: unknown = null;
      try {
        await c.addTasks([{ name: 'ok' }, { name: 'p', priority: priority as number }]);
      } catch (e) {
        err = e;
      }
      expect(err, `priority ${String(priority)}`).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
      expect((err as ValidationError).details.path).to.equal('tasks[1].priority');
    }
    expect(await dump()).to.equal(before);
  });

  describe('round trips (driver command monitoring)', function () {
    let conn: mongoose.Connection;
    let mc: Client;
    let counter: CommandCounter;
    before(async function () {
      conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
      mc = createClient({ connection: conn, workerId: 'rt' });
      await mc.ensureIndexes();
      counter = new CommandCounter(conn.getClient() as never);
    });
    after(async function () {
      counter.stop();
      await mc.close();
      await conn.close();
    });

    it('a batch reserves its creation numbers with ONE command; an add of existing names with none; a claim stays two', async function () {
      const c = await mc.getOrCreateTaskContainer('rt-order');
      counter.reset();
      await c.addTasks(Array.from({ length: 50 }, (_, i) => ({ name: `t${i}`, priority: i % 3 })));
      const seqCalls = counter.commands.filter((x) => x.collection === 'pts_sequences');
      expect(seqCalls.map((x) => x.name)).to.deep.equal(['findAndModify']);
      counter.reset();
      await c.addTask('single', null);
      expect(counter.commands.filter((x) => x.collection === 'pts_sequences').map((x) => x.name)).to.deep.equal(['findAndModify']);
      counter.reset();
      await c.addTasks(Array.from({ length: 50 }, (_, i) => ({ name: `t${i}`, priority: i % 3 })));
      expect(counter.commands.filter((x) => x.collection === 'pts_sequences'), 'an idempotent re-add reserves nothing').to.deep.equal([]);
      await mc.claimNext({ container: 'rt-order' }, { owner: 'rt' });
      counter.reset();
      const lease = (await mc.claimNext({ container: 'rt-order' }, { owner: 'rt' }))!;
      expect(counter.commands.map((x) => [x.name, x.collection])).to.deep.equal([
        ['findAndModify', 'pts_tasks'],
        ['findAndModify', 'pts_containers'],
      ]);
      const sort = counter.commands[0].command.sort as Map<string, number> | Record<string, number>;
      expect(sort instanceof Map ? Object.fromEntries(sort) : sort).to.deep.equal({ priority: -1, seq: 1, _id: 1 });
      expect(lease.task.priority).to.equal(2);
    });

    it('each claim shape has an index whose keys are its equalities followed by the claim order', async function () {
      const indexes = await conn.collection('pts_tasks').indexes();
      const keys = Object.fromEntries(indexes.map((i) => [i.name, i.key]));
      expect(keys.container_state_priority_seq).to.deep.equal({ containerId: 1, state: 1, priority: -1, seq: 1, _id: 1 });
      expect(keys.state_key_priority_seq).to.deep.equal({ state: 1, key: 1, priority: -1, seq: 1, _id: 1 });
    });
  });

  it('tasks stored before priorities existed: backfilled to priority 0 once; without a creation number they go first among equals, by _id', async function () {
    const c = await client.getOrCreateTaskContainer('legacy');
    await c.addTasks([{ name: 'new0' }, { name: 'new1', priority: 1 }, { name: 'new-1', priority: -1 }]);
    // Two tasks as an older version stored them: no priority, no seq.
    const tasks = db.connection.collection('pts_tasks');
    const template = (await tasks.findOne({ containerId: c._id, name: 'new0' }))!;
    for (const name of ['old-a', 'old-b']) {
      const { _id, priority, seq, ...rest } = template;
      void _id;
      void priority;
      void seq;
      await tasks.insertOne({ ...rest, name, _id: new mongoose.Types.ObjectId() });
    }
    await db.connection.collection('pts_containers').updateOne({ _id: c._id }, { $inc: { total: 2, 'counts.pending': 2, 'weights.pending': 2, weightTotal: 2 } });
    // The marker says the backfill ran (when this database was first used): a new client does not scan again.
    const fresh = createClient({ connection: db.connection, workerId: 'w' });
    await fresh.ensureIndexes();
    expect((await tasks.findOne({ name: 'old-a' }))!.priority).to.equal(undefined);
    await fresh.close();
    // Without the marker (a database an older version wrote), the first client start backfills.
    await db.connection.collection('pts_sequences').updateOne({ _id: 'tasks' as never }, { $unset: { priorityBackfilled: '' } });
    const upgraded = createClient({ connection: db.connection, workerId: 'w' });
    await upgraded.ensureIndexes();
    await upgraded.close();
    expect((await tasks.findOne({ name: 'old-a' }))!.priority).to.equal(0);
    expect((await tasks.findOne({ name: 'old-b' }))!.seq).to.equal(undefined);
    expect((await db.connection.collection('pts_sequences').findOne({ _id: 'tasks' as never }))!.priorityBackfilled).to.equal(true);
    expect(await drain('legacy')).to.deep.equal(['new1', 'old-a', 'old-b', 'new0', 'new-1']);
  });

  it('HTTP: priority is accepted when adding, shown on the record, and decides the claim', async function () {
    const f = await startFixture(db);
    try {
      expect((await f.call('PUT', '/api/v1/containers/http-order', { body: {} })).status).to.be.oneOf([200, 201]);
      const add = await f.call('POST', '/api/v1/containers/http-order/tasks', {
        body: { tasks: [{ name: 'low' }, { name: 'high', priority: 7 }] },
      });
      expect(add.status, JSON.stringify(add.body)).to.be.oneOf([200, 201]);
      const bad = await f.call('POST', '/api/v1/containers/http-order/tasks', { body: { tasks: [{ name: 'x', priority: 0.5 }] } });
      expect(bad.status).to.equal(400);
      const claim = await f.call('POST', '/api/v1/claim', { token: f.token.worker, body: { container: 'http-order', owner: 'h' } });
      expect(claim.status).to.equal(200);
      expect(claim.body.task).to.include({ name: 'high', priority: 7 });
    } finally {
      await f.close();
    }
  });
});
