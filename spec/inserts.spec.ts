/**
 * lib/store/inserts.ts (issue 12, items 2 and 3): task documents are inserted lean (no field that
 * holds its default: null, or an empty array) and read back with the defaults filled in; a batch
 * `addTasks` is one `insertMany` carrying its sequence reservation's server stamp for the feed,
 * stamped again (`updateMany … $currentDate`) only when the insert ended past that stamp's second.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import { changes, createClient, type Change, type Client } from '../lib';
import { INSERT_STAMP } from '../lib/store/inserts';
import { CommandCounter } from './helpers/consistency';
import { useTestDatabase } from './helpers/db';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The fields a lean insert leaves out (documents.ts TASK_DEFAULTS). */
const DEFAULTED = [
  'dependsOn',
  'waitingOn',
  'statusText',
  'taskData',
  'processingData',
  'result',
  'failures',
  'lease',
  'key',
  'lastInvokedAt',
  'endedAt',
  'durationMs',
];

describe('inserts: lean task documents, the batch stamp', function () {
  this.timeout(60_000);
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let counter: CommandCounter;
  before(async function () {
    conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    client = createClient({ connection: conn, workerId: 'ins' });
    await client.ensureIndexes();
    counter = new CommandCounter(conn.getClient() as never);
  });
  after(async function () {
    counter.stop();
    await client.close();
    await conn.close();
  });
  const raw = (container: string, name: string) =>
    conn.db!.collection('pts_tasks').findOne({ container, name });

  it('a batch and a single add store no null or empty field; records read the defaults', async function () {
    const c = await client.getOrCreateTaskContainer('lean');
    await c.addTasks([
      { name: 'a', data: null },
      { name: 'b', data: { x: 1 }, key: 'k1', dependsOn: ['a'] },
    ]);
    await c.addTask('s', null);
    for (const name of ['a', 's']) {
      const d = (await raw('lean', name))!;
      for (const f of DEFAULTED) expect(d, `${name}.${f}`).to.not.have.property(f);
      // What is kept: the counters and numbers every query and $group reads.
      for (const f of [
        'weight',
        'percentageComplete',
        'attempts',
        'invokeCount',
        'failureCount',
        'fence',
        'runAfter',
        'priority',
        'seq',
        'hasDependents',
      ])
        expect(d, `${name}.${f}`).to.have.property(f);
    }
    const b = (await raw('lean', 'b'))!;
    expect(b.key).to.equal('k1');
    expect(b.dependsOn).to.deep.equal(['a']);
    expect(b.waitingOn).to.deep.equal(['a']);
    expect(b.taskData).to.deep.equal({ x: 1 });
    const a = (await c.getTask('a'))!.toJSON();
    expect({ ...a, allowedActions: undefined }).to.include({
      statusText: null,
      taskData: null,
      processingData: null,
      result: null,
      key: null,
      lastInvokedAt: null,
      endedAt: null,
      durationMs: null,
      lease: null,
    });
    expect(a.dependsOn).to.deep.equal([]);
    expect(a.waitingOn).to.deep.equal([]);
    expect(a.failures).to.deep.equal([]);
  });

  it('queries on absent fields stay right: unkeyed claim, keyed claim, failures ring, reconcile', async function () {
    const c = await client.getOrCreateTaskContainer('lean-q');
    await c.addTasks([
      { name: 'u1', maxRetries: 1, retryDelayMs: 0 },
      { name: 'k', key: 'lean-key' },
    ]);
    // A claim by key never takes an unkeyed (key-less) task, and one by container takes both.
    const byKey = (await client.claimNext({ key: 'lean-key' }, { owner: 'w' }))!;
    expect(byKey.task.name).to.equal('k');
    await byKey.succeed({ ok: 1 });
    expect(await client.claimNext({ key: 'lean-key' }, { owner: 'w' })).to.equal(null);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const l = (await client.claimNext({ container: 'lean-q' }, { owner: `w${attempt}` }))!;
      expect(l.task.name).to.equal('u1');
      await l.fail(new Error(`boom ${attempt}`));
    }
    const u1 = (await c.getTask('u1'))!.toJSON();
    expect(u1.state).to.equal('failed');
    expect(u1.failures.map((f) => f.message)).to.deep.equal(['boom 1', 'boom 2']);
    const before = await c.summary();
    await c.reconcile();
    const after = await c.summary();
    expect(after.counts).to.deep.equal(before.counts);
    expect(after.counts).to.include({ succeeded: 1, failed: 1 });
  });

  /** Waits until the server's clock is early in a second, so a small batch add finishes within it. */
  async function startOfASecond(): Promise<void> {
    for (;;) {
      const hello = (await conn.db!.admin().command({ hello: 1 })) as { localTime: Date };
      const ms = hello.localTime.getTime() % 1000;
      if (ms < 300) return;
      await sleep(1000 - ms + 5);
    }
  }
  const hellos = (): { count: number; stop: () => void } => {
    const c = conn.getClient();
    const h = { count: 0, stop: () => c.off('commandStarted', l) };
    const l = (e: { commandName: string }) => void (e.commandName === 'hello' && h.count++);
    c.on('commandStarted', l);
    return h;
  };

  it("a batch add is find + reservation + ONE insert + a hello + counter write: it keeps the reservation's server stamp", async function () {
    const c = await client.getOrCreateTaskContainer('stamp');
    await startOfASecond();
    counter.reset();
    const h = hellos();
    await c.addTasks(Array.from({ length: 20 }, (_, i) => ({ name: `t${i}` })));
    h.stop();
    expect(counter.commands.map((x) => [x.name, x.collection])).to.deep.equal([
      ['find', 'pts_tasks'],
      ['findAndModify', 'pts_sequences'],
      ['insert', 'pts_tasks'],
      ['findAndModify', 'pts_containers'],
    ]);
    expect(h.count, 'one hello: the server time after the insert').to.equal(1);
    const seq = await conn.db!.collection('pts_sequences').findOne({ _id: 'tasks' as never });
    const docs = await conn.db!.collection('pts_tasks').find({ container: 'stamp' }).toArray();
    expect(docs).to.have.length(20);
    expect(seq?.at?._bsontype, 'the reservation is stamped by the server').to.equal('Timestamp');
    for (const d of docs) expect(d.changedAt.equals(seq!.at), 'the reservation\'s stamp').to.equal(true);
  });

  it('an insert that ends past its reservation\'s second is stamped again by the server (updateMany $currentDate)', async function () {
    const c = await client.getOrCreateTaskContainer('stamp-late');
    const saved = INSERT_STAMP.marginMs;
    INSERT_STAMP.marginMs = 1000; // as if the insert had finished in the next second
    try {
      counter.reset();
      await c.addTasks(Array.from({ length: 5 }, (_, i) => ({ name: `t${i}` })));
    } finally {
      INSERT_STAMP.marginMs = saved;
    }
    expect(counter.commands.map((x) => [x.name, x.collection])).to.deep.equal([
      ['find', 'pts_tasks'],
      ['findAndModify', 'pts_sequences'],
      ['insert', 'pts_tasks'],
      ['update', 'pts_tasks'],
      ['findAndModify', 'pts_containers'],
    ]);
    const seq = await conn.db!.collection('pts_sequences').findOne({ _id: 'tasks' as never });
    const docs = await conn.db!.collection('pts_tasks').find({ container: 'stamp-late' }).toArray();
    expect(docs).to.have.length(5);
    for (const d of docs) expect(d.changedAt.greaterThan(seq!.at), 'restamped after the reservation').to.equal(true);
  });

  it('a feed reader (horizonMs 0) following during concurrent batch adds misses no task', async function () {
    this.timeout(60_000);
    const feed: Change[] = [];
    let since = '';
    let done = false;
    const reader = (async () => {
      for (;;) {
        const page = await changes(client, { prefixes: ['feed-b/'], since, limit: 500, horizonMs: 0 });
        feed.push(...page.changes);
        since = page.next;
        if (page.changes.length === 0) {
          if (done) return;
          await sleep(50);
        }
      }
    })();
    const writers = Array.from({ length: 3 }, async (_, w) => {
      const c = await client.getOrCreateTaskContainer(`feed-b/${w}`);
      for (let b = 0; b < 4; b++) {
        await c.addTasks(Array.from({ length: 10 }, (_, i) => ({ name: `b${b}-t${i}` })));
        await sleep(150);
      }
    });
    await Promise.all(writers);
    // Entries show up once the server's clock passed the second of their stamp.
    await sleep(2_200);
    done = true;
    await reader;
    const seen = new Set(feed.filter((ch) => ch.kind === 'task').map((ch) => `${ch.container}/${ch.task}`));
    expect(seen.size).to.equal(3 * 4 * 10);
  });
});
