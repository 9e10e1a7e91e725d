import path from 'node:path';
import { expect } from 'chai';
import mongoose from 'mongoose';
import {
  createClient,
  DuplicateError,
  LeaseLostError,
  ManualClock,
  ValidationError,
  type Client,
  type TaskContainer,
} from '../lib';
import { useTestDatabase } from './helpers/db';
import { expectConsistent } from './helpers/consistency';
import { runPts, startTs } from './helpers/child';
import { readLogs, tempDir } from './reliability/helpers';
import { BATCHES, fanOutHandlers, KILL_BATCH, PER_BATCH, type SpawnLogLine } from './fixtures/spawn-worker';
import { startFixture } from './http/support';
import { SPAWN_BATCH } from '../lib/spawn';

describe('spawn (dynamic fan-out)', function () {
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let clock: ManualClock;

  before(async function () {
    conn = await mongoose.createConnection(db.uri).asPromise();
    clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    client = createClient({ connection: conn, clock, leaseMs: 10_000, workerId: 'w1' });
    await client.ensureIndexes();
  });
  after(async function () {
    await conn.close();
  });

  /** split → join: split spawns the children; join depends on split only. */
  async function pipeline(name: string): Promise<TaskContainer> {
    const c = await client.getOrCreateTaskContainer(name);
    await c.addTasks([{ name: 'split' }, { name: 'join', dependsOn: ['split'] }]);
    return c;
  }
  const state = async (c: TaskContainer, name: string) => (await c.getTask(name))!.toJSON();
  const claim = async (c: TaskContainer, names?: string[]) =>
    (await client.claimNext({ container: c.name(), names }, { owner: 'w1' }))!;

  it('container.run(): children run, the parent’s dependents wait for all of them, counters include them', async function () {
    const c = await pipeline('run fan-out');
    const order: string[] = [];
    const res = await c.run(
      {
        split: async (ctx) => {
          const a = await ctx.spawn([{ name: 'part/1' }, { name: 'part/2', dependsOn: ['part/1'] }]);
          expect(a.created).to.equal(2);
          expect(a.tasks.map((t) => [t.name, t.parent])).to.deep.equal([
            ['part/1', 'split'],
            ['part/2', 'split'],
          ]);
          // a second batch may depend on the first
          await ctx.spawn([{ name: 'part/3', dependsOn: ['part/2'], weight: 2 }]);
          const s = await c.summary();
          expect(s.total).to.equal(5);
          expect(s.weightTotal).to.equal(6);
          order.push('split');
        },
        'split/*': async (ctx) => {
          order.push(ctx.name);
        },
        join: async () => {
          order.push('join');
        },
      },
      { concurrency: 4 },
    );
    expect(res.status).to.equal('succeeded');
    expect(order.indexOf('join')).to.equal(order.length - 1);
    expect(order.filter((n) => n.startsWith('part/'))).to.deep.equal(['part/1', 'part/2', 'part/3']);
    const split = await state(c, 'split');
    expect(split.spawned).to.equal(true);
    expect(split.parent).to.equal(null);
    expect(await c.children('split')).to.deep.include({ parent: 'split', total: 3, done: 3 });
    const top = await c.listTasks({ parent: null });
    expect(top.items.map((t) => t.name)).to.deep.equal(['split', 'join']);
    // Pages of children go by `_id` (docs/schema.md): the order of adding within one spawn call,
    // not across calls — part/3's single-task add gets its `_id` from the server, which may sort
    // before the client-made ones of part/1 and part/2 in the same second. Two pages: all three
    // children, each once, in `_id` order.
    const kids = await c.listTasks({ parent: 'split', limit: 2 });
    expect(kids.items).to.have.length(2);
    expect(kids.nextCursor).to.be.a('string');
    const rest = await c.listTasks({ parent: 'split', cursor: kids.nextCursor });
    expect(rest.nextCursor).to.equal(null);
    const paged = [...kids.items, ...rest.items];
    expect(paged.map((t) => t.name).sort()).to.deep.equal(['part/1', 'part/2', 'part/3']);
    expect(paged.map((t) => t.id)).to.deep.equal(paged.map((t) => t.id).sort());
    // within the first call, the order given
    const names = paged.map((t) => t.name);
    expect(names.indexOf('part/1')).to.be.below(names.indexOf('part/2'));
    await expectConsistent(c);
  });

  it('the parent’s dependents stay blocked after the parent succeeded until the last child did (either order)', async function () {
    for (const last of ['child', 'parent'] as const) {
      const c = await pipeline(`order ${last}`);
      const p = await claim(c, ['split']);
      await p.spawn([{ name: 'a' }, { name: 'b' }]);
      const a = await claim(c, ['a']);
      await a.succeed();
      const b = await claim(c, ['b']);
      if (last === 'child') {
        await p.succeed();
        expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
        // the sweep does not release it either: a child is still running
        await client.recoverStale({ container: c.name() });
        expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
        await b.succeed();
      } else {
        await b.succeed();
        expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
        await p.succeed();
      }
      expect((await state(c, 'join')).waitingOn).to.deep.equal([]);
      const s = await c.summary();
      expect(s.counts.succeeded).to.equal(3);
      expect(s.percentageComplete).to.equal((3 * 100) / 4);
      await expectConsistent(c);
    }
  });

  it('is idempotent by name across retries of the parent: the same names create nothing new', async function () {
    const c = await pipeline('idempotent');
    const specs = [{ name: 'x/1' }, { name: 'x/2', dependsOn: ['x/1'] }];
    const first = await claim(c, ['split']);
    expect((await first.spawn(specs)).created).to.equal(2);
    expect((await first.spawn(specs)).created).to.equal(0);
    await first.fail(new Error('boom'));
    clock.advance(60_000);
    const second = await claim(c, ['split']);
    expect(second.token).to.be.greaterThan(first.token);
    const again = await second.spawn([...specs, { name: 'x/3' }]);
    expect(again.created).to.equal(1);
    expect(again.tasks.map((t) => t.name)).to.deep.equal(['x/1', 'x/2', 'x/3']);
    const s = await c.summary();
    expect(s.total).to.equal(5);
    expect((await c.children('split')).total).to.equal(3);
    await expectConsistent(c);
  });

  it('is fenced: a parent whose lease was lost cannot spawn, and nothing is written', async function () {
    const c = await pipeline('fenced');
    const stale = await claim(c, ['split']);
    clock.advance(11_000);
    await client.recoverStale({ container: c.name() });
    const err = await stale.spawn([{ name: 'late' }]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(LeaseLostError);
    expect((err as LeaseLostError).details.op).to.equal('spawn');
    expect(await c.getTask('late')).to.equal(null);
    expect((await state(c, 'split')).spawned).to.equal(false);
    expect((await c.summary()).total).to.equal(2);
    // the new holder can
    const fresh = await claim(c, ['split']);
    expect((await fresh.spawn([{ name: 'late' }])).created).to.equal(1);
    await expectConsistent(c);
  });

  it('a failed child blocks the parent’s dependents like a failed dependency; retrying it releases them', async function () {
    const c = await pipeline('failed child');
    const p = await claim(c, ['split']);
    await p.spawn([{ name: 'ok' }, { name: 'bad', maxRetries: 0 }]);
    await p.succeed();
    await (await claim(c, ['ok'])).succeed();
    await (await claim(c, ['bad'])).fail(new Error('no'));
    const s = await c.summary();
    expect(s.status).to.equal('failed');
    expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
    await client.recoverStale({ container: c.name() });
    expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
    expect(await c.children('split')).to.deep.include({ total: 2, done: 1 });
    await c.retry('bad');
    await (await claim(c, ['bad'])).succeed();
    expect((await state(c, 'join')).waitingOn).to.deep.equal([]);
    // skipping a child counts as done too
    await (await claim(c, ['join'])).succeed();
    expect((await c.summary()).status).to.equal('succeeded');
    await expectConsistent(c);
  });

  it('skipping the last open child releases the parent’s dependents', async function () {
    const c = await pipeline('skip child');
    const p = await claim(c, ['split']);
    await p.spawn([{ name: 'k' }]);
    await p.succeed();
    expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
    await c.skip('k');
    expect((await state(c, 'join')).waitingOn).to.deep.equal([]);
  });

  it('the sweep repairs a crash between the last child’s write and the parent’s release', async function () {
    const c = await pipeline('crash repair');
    const p = await claim(c, ['split']);
    await p.spawn([{ name: 'only' }]);
    await p.succeed();
    await (await claim(c, ['only'])).succeed();
    // as if the process died right after the child's succeed write: join still waits on split
    await conn
      .collection('pts_tasks')
      .updateOne({ container: c.name(), name: 'join' }, { $set: { waitingOn: ['split'] } });
    expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
    const r = await client.recoverStale({ container: c.name() });
    expect(r.unblocked).to.equal(1);
    expect((await state(c, 'join')).waitingOn).to.deep.equal([]);
  });

  it('a dependent added after the parent succeeded still waits for open children', async function () {
    const c = await pipeline('late dependent');
    const p = await claim(c, ['split']);
    await p.spawn([{ name: 'kid' }]);
    await p.succeed();
    await c.addTasks([{ name: 'late', dependsOn: ['split'] }]);
    expect((await state(c, 'late')).waitingOn).to.deep.equal(['split']);
    // a reset of a dependent meanwhile waits for the children too
    await c.reset('join');
    expect((await state(c, 'join')).waitingOn).to.deep.equal(['split']);
    await (await claim(c, ['kid'])).succeed();
    expect((await state(c, 'late')).waitingOn).to.deep.equal([]);
    expect((await state(c, 'join')).waitingOn).to.deep.equal([]);
  });

  it('refuses bad spawns with a typed error and writes nothing', async function () {
    const c = await pipeline('refusals');
    await c.addTasks([{ name: 'other' }]);
    const p = await claim(c, ['split']);
    const refused = async (specs: unknown, type: new (...a: never[]) => Error, code: string) => {
      const e = await p.spawn(specs as never).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e, JSON.stringify(specs)).to.be.instanceOf(type);
      expect((e as { code: string }).code).to.equal(code);
    };
    await refused([{ name: 'c1', dependsOn: ['other'] }], ValidationError, 'PTS_VALIDATION');
    await refused([{ name: 'c1', dependsOn: ['join'] }], ValidationError, 'PTS_VALIDATION');
    await refused(
      [
        { name: 'c1', dependsOn: ['c2'] },
        { name: 'c2', dependsOn: ['c1'] },
      ],
      ValidationError,
      'PTS_VALIDATION',
    );
    await refused([{ name: 'other' }], DuplicateError, 'PTS_DUPLICATE');
    await refused([{ name: 'split' }], ValidationError, 'PTS_VALIDATION');
    await refused([{ name: '' }], ValidationError, 'PTS_VALIDATION');
    await refused('nope', ValidationError, 'PTS_VALIDATION');
    expect((await c.summary()).total).to.equal(3);
    expect((await state(c, 'split')).spawned).to.equal(false);
    // a spawned child cannot spawn
    await p.spawn([{ name: 'kid' }]);
    const kid = await claim(c, ['kid']);
    const e = await kid.spawn([{ name: 'grandkid' }]).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).to.be.instanceOf(ValidationError);
    expect(await c.getTask('grandkid')).to.equal(null);
    // same name, other dependencies
    await p.spawn([{ name: 'kid2' }]);
    await refused([{ name: 'kid2', dependsOn: ['kid'] }], DuplicateError, 'PTS_DUPLICATE');
    await expectConsistent(c);
  });

  it('spawns in batches, each fenced (batches of 100 here: 150 children, one summary)', async function () {
    this.timeout(180_000);
    SPAWN_BATCH.size = 100; // 1000 in production; FerretDB scans on every insert
    try {
      const c = await pipeline('batches');
      const p = await claim(c, ['split']);
      const r = await p.spawn(Array.from({ length: 150 }, (_, i) => ({ name: `n/${i}` })));
      expect(r.created).to.equal(150);
      expect(r.tasks[149].name).to.equal('n/149');
      const s = await c.summary();
      expect(s.total).to.equal(152);
      expect(s.counts.pending).to.equal(151);
      expect(await c.children(['split', 'join'])).to.deep.equal([
        {
          parent: 'split',
          counts: { pending: 150, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 },
          total: 150,
          done: 0,
        },
        {
          parent: 'join',
          counts: { pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 },
          total: 0,
          done: 0,
        },
      ]);
    } finally {
      SPAWN_BATCH.size = 1000;
    }
  });

  it('fences every batch: a lease lost between two batches keeps the first, refuses the second', async function () {
    this.timeout(180_000);
    SPAWN_BATCH.size = 100; // 1000 in production; FerretDB scans on every insert
    const c = await client.getOrCreateTaskContainer('fence per batch');
    // The parent's attempt deadline (timeoutMs) makes "the lease is lost now" deterministic: the
    // clock passes it right after the first batch is in (its task:added events), before the second.
    await c.addTasks([
      { name: 'split', timeoutMs: 60_000 },
      { name: 'join', dependsOn: ['split'] },
    ]);
    const p = await claim(c, ['split']);
    let moved = false;
    const onAdded = (e: { container: string }) => {
      if (e.container !== c.name() || moved) return;
      moved = true;
      clock.advance(61_000);
    };
    client.on('task:added', onAdded);
    try {
      const err = await p.spawn(Array.from({ length: 120 }, (_, i) => ({ name: `f/${i}` }))).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(LeaseLostError);
      expect((err as LeaseLostError).details.op).to.equal('spawn');
    } finally {
      client.off('task:added', onAdded);
      SPAWN_BATCH.size = 1000;
    }
    expect((await c.children('split')).total).to.equal(100);
    expect(await c.getTask('f/99')).to.not.equal(null);
    expect(await c.getTask('f/100')).to.equal(null);
    await expectConsistent(c);
  });

  it('HTTP: POST …/tasks/:task/spawn under the lease token (idempotent, stale token 409), children listed and counted', async function () {
    const f = await startFixture(db);
    try {
      const w = f.token.worker;
      expect((await f.call('PUT', '/api/v1/containers/http-fan', { body: {} })).status).to.be.oneOf([
        200, 201,
      ]);
      await f.call('POST', '/api/v1/containers/http-fan/tasks', {
        body: { tasks: [{ name: 'split' }, { name: 'join', dependsOn: ['split'] }] },
      });
      const claimed = await f.call('POST', '/api/v1/claim', {
        token: w,
        body: { container: 'http-fan', names: ['split'], owner: 'h1' },
      });
      expect(claimed.status).to.equal(200);
      const token = claimed.body.token as number;
      const url = '/api/v1/containers/http-fan/tasks/split/spawn';
      const tasks = [{ name: 'h/1' }, { name: 'h/2', dependsOn: ['h/1'] }];
      const first = await f.call('POST', url, { token: w, body: { token, tasks } });
      expect(first.status, JSON.stringify(first.body)).to.equal(200);
      expect(first.body.created).to.equal(2);
      expect(first.body.tasks.map((t: { name: string; parent: string }) => [t.name, t.parent])).to.deep.equal(
        [
          ['h/1', 'split'],
          ['h/2', 'split'],
        ],
      );
      expect((await f.call('POST', url, { token: w, body: { token, tasks } })).body.created).to.equal(0);
      // a read token may not spawn; a bad spec is a 400 naming the path; a stale token is a 409
      expect((await f.call('POST', url, { token: f.token.read, body: { token, tasks } })).status).to.equal(
        403,
      );
      const bad = await f.call('POST', url, {
        token: w,
        body: { token, tasks: [{ name: 'h/3', dependsOn: ['join'] }] },
      });
      expect(bad.status).to.equal(400);
      expect(bad.body.error.code).to.equal('PTS_VALIDATION');
      const stale = await f.call('POST', url, {
        token: w,
        body: { token: token + 1, tasks: [{ name: 'h/9' }] },
      });
      expect(stale.status).to.equal(409);
      expect(stale.body.error.code).to.equal('PTS_LEASE_LOST');
      const counts = await f.call('GET', '/api/v1/containers/http-fan/tasks/split/children', {
        token: f.token.read,
      });
      expect(counts.status).to.equal(200);
      expect(counts.body).to.deep.include({ parent: 'split', total: 2, done: 0 });
      const top = await f.call('GET', '/api/v1/containers/http-fan/tasks?topLevel=true', {
        token: f.token.read,
      });
      expect(top.body.items.map((t: { name: string }) => t.name)).to.deep.equal(['split', 'join']);
      expect(top.body.items[0].spawned).to.equal(true);
      const kids = await f.call('GET', '/api/v1/containers/http-fan/tasks?parent=split', {
        token: f.token.read,
      });
      expect(kids.body.items.map((t: { name: string }) => t.name)).to.deep.equal(['h/1', 'h/2']);
      const doc = (await f.call('GET', '/openapi.json', { token: null })).body;
      expect(doc.paths['/api/v1/containers/{name}/tasks/{task}/spawn'].post.responses).to.include.keys(
        '200',
        '400',
        '403',
        '404',
        '409',
      );
      expect(doc.paths['/api/v1/containers/{name}/tasks/{task}/children'].get.responses).to.include.keys(
        '200',
        '404',
      );
      expect(await client.getTaskContainer('http-fan').then((c) => c!.getTask('h/9'))).to.equal(null);
    } finally {
      await f.close();
    }
  });

  it('CLI: pts status lists children under their parent ("N of M done"), --parent lists them', async function () {
    this.timeout(90_000);
    const c = await pipeline('cli fan-out');
    const p = await claim(c, ['split']);
    await p.spawn(Array.from({ length: 30 }, (_, i) => ({ name: `c/${i}` })));
    await p.succeed();
    for (let i = 0; i < 3; i++) await (await claim(c, [`c/${i}`])).succeed();
    const pts = (args: string[]) => runPts(args, { env: { MONGODB_URI: db.uri } });
    const [text, kids, json] = await Promise.all([
      pts(['status', 'cli fan-out']),
      pts(['status', 'cli fan-out', '--parent', 'split', '--limit', '5']),
      pts(['status', 'cli fan-out', '--json']),
    ]);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout, text.stdout).to.match(/CHILDREN/);
    expect(text.stdout, text.stdout).to.match(/^split\s.*3 of 30 done/m);
    expect(text.stdout).to.not.match(/c\/1\b/);
    expect(text.stdout).to.contain('pts status cli fan-out --parent split');
    expect(kids.code, kids.stderr).to.equal(0);
    expect(kids.stdout).to.contain('children of split');
    expect(kids.stdout).to.match(/c\/4\b/);
    expect(kids.stdout).to.not.match(/c\/5\b/);
    expect(kids.stdout).to.contain('--parent split --cursor');
    const body = JSON.parse(json.stdout) as {
      tasks: Array<{ name: string }>;
      children: Array<{ parent: string; done: number; total: number }>;
    };
    expect(body.tasks.map((t) => t.name)).to.deep.equal(['split', 'join']);
    expect(body.children).to.deep.equal([
      {
        parent: 'split',
        counts: { pending: 27, running: 0, succeeded: 3, failed: 0, skipped: 0, cancelled: 0 },
        total: 30,
        done: 3,
      },
    ]);
  });

  it('crash: a parent SIGKILLed mid-spawn and resumed by another process ends with each child exactly once', async function () {
    this.timeout(150_000); // ~15 s alone; the margin is for a loaded CI machine
    const tmp = tempDir('spawn-crash');
    const name = 'crash fan-out';
    const TOTAL = BATCHES * PER_BATCH;
    // The resuming process is this one: a client of its own on the real clock.
    const resumer = createClient({ connection: conn, leaseMs: 30_000, workerId: 'resumer' });
    try {
      // The first process spawns batches 0 … KILL_BATCH-1 and SIGKILLs itself the moment the insert
      // of batch KILL_BATCH is acknowledged: its children exist, the spawn call never returned.
      const t0 = Date.now();
      const first = startTs(
        path.join(__dirname, 'fixtures', 'spawn-worker.ts'),
        [db.uri, name, path.join(tmp.dir, 'killed.jsonl')],
        { label: 'spawn worker' },
      );
      const exit = await first.exited;
      const killedAt = Date.now();
      expect(exit.signal, first.stderr()).to.equal('SIGKILL');
      const c = (await resumer.getTaskContainer(name))!;
      const mid = (await c.getTask('split'))!.toJSON();
      expect(mid.state, 'the parent was killed while running').to.equal('running');
      expect(mid.spawned).to.equal(true);
      const before = (await c.children('split')).total;
      expect(before, 'killed right after the insert of batch KILL_BATCH').to.equal(
        (KILL_BATCH + 1) * PER_BATCH,
      );
      const killed = readLogs<SpawnLogLine>(tmp.dir);
      expect(killed.filter((l) => l.ev === 'batch').map((l) => l.b)).to.deep.equal([
        ...Array(KILL_BATCH).keys(),
      ]);
      expect(killed.filter((l) => l.ev === 'join')).to.have.length(0);

      // Its leases (30 s) are backdated instead of waited for; one sweep ends them (the parent's
      // and any child's it was running), as a sweep past their expiry would.
      await conn
        .collection('pts_tasks')
        .updateMany({ container: name, state: 'running' }, { $set: { 'lease.expiresAt': new Date(0) } });
      const swept = await resumer.recoverStale({ container: name });
      expect(swept.recovered.map((r) => r.task)).to.include('split');
      const res = await c.run(fanOutHandlers(path.join(tmp.dir, 'resumed.jsonl')), {
        concurrency: 2,
        progressIntervalMs: 0,
        pollIntervalMs: 50,
      });
      expect(res.status).to.equal('succeeded');
      console.log(
        `[spawn] crash: the killed process ran ${killedAt - t0} ms (start, connect, ${KILL_BATCH} batches and the insert of one more); the resume ${Date.now() - killedAt} ms`,
      );

      const lines = readLogs<SpawnLogLine>(tmp.dir);
      const resumed = lines.filter((l) => l.ev === 'batch' && l.pid === process.pid);
      // the retried parent re-spawned every batch; only what the first process had not inserted was new
      expect(resumed.map((l) => [l.b, l.created, l.attempt])).to.deep.equal(
        [...Array(BATCHES).keys()].map((b) => [b, b <= KILL_BATCH ? 0 : PER_BATCH, 2]),
      );

      const tasks = (await c.getTasks()).map((t) => t.toJSON());
      const kids = tasks.filter((t) => t.parent === 'split');
      expect(kids.length).to.equal(TOTAL);
      expect(new Set(kids.map((t) => t.name)).size).to.equal(TOTAL);
      expect(kids.every((t) => t.state === 'succeeded')).to.equal(true);
      // every child's handler ran (a child the killed process was running ran again: at least once)
      expect(new Set(lines.filter((l) => l.ev === 'child').map((l) => l.task)).size).to.equal(TOTAL);
      const split = tasks.find((t) => t.name === 'split')!;
      expect(split.invokeCount).to.equal(2);
      expect(split.failures.some((f) => f.code === 'LEASE_EXPIRED')).to.equal(true);
      const join = tasks.find((t) => t.name === 'join')!;
      expect(join.state).to.equal('succeeded');
      const lastChild = Math.max(...kids.map((t) => t.endedAt!.getTime()));
      expect(join.startedAt!.getTime(), 'join started after the last child ended').to.be.at.least(lastChild);
      expect(lines.filter((l) => l.ev === 'join')).to.have.length(1);
      const s = await c.summary();
      expect(s.status).to.equal('succeeded');
      expect(s.total).to.equal(TOTAL + 2);
      await expectConsistent(c);
      tmp.remove();
    } finally {
      await resumer.close();
    }
  });
});
