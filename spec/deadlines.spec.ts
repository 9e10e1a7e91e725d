/**
 * Deadlines of an attempt (`timeoutMs`, `stallMs`): stored with the lease, enforced by the
 * database (a heartbeat past the deadline is refused in its one command; the sweep ends a running
 * attempt past it even while heartbeats still arrive) and by the runner (it aborts `ctx.signal`
 * with a typed reason and records the failure at once). Deterministic with an injected clock,
 * plus one real run: a child process whose handler awaits forever with its heartbeats firing.
 */
import path from 'node:path';
import { expect } from 'chai';
import mongoose from 'mongoose';
import {
  createClient,
  LeaseLostError,
  ManualClock,
  TaskStalledError,
  TaskTimeoutError,
  ValidationError,
  type Client,
  type PtsEventName,
  type TaskContainer,
} from '../lib';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';
import { runPts, startTs, type StartedChild } from './helpers/child';

const T0 = Date.parse('2026-06-01T00:00:00Z');

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('deadlines (timeoutMs, stallMs)', function () {
  this.timeout(60_000);
  const db = useTestDatabase();
  let clock: ManualClock;
  let client: Client;
  let n = 0;
  const tasks = () => db.connection.collection('pts_tasks');
  const raw = (container: string, name: string) => tasks().findOne({ container, name });

  beforeEach(function () {
    clock = new ManualClock(T0);
    client = createClient({ connection: db.connection, clock, leaseMs: 60_000, workerId: 'spec' });
  });
  afterEach(async function () {
    await client.close();
  });

  const container = (opts = {}): Promise<TaskContainer> => client.getOrCreateTaskContainer(`dl-${++n}`, opts);
  const claim = async (c: TaskContainer, owner = 'w1') => (await client.claimNext({ container: c.name() }, { owner }))!;

  describe('specs and defaults', function () {
    it('stores timeoutMs/stallMs only when set; spec > container > client default; null opts out', async function () {
      const withDefaults = createClient({ connection: db.connection, clock, taskTimeoutMs: 9_000, taskStallMs: 8_000 });
      const c = await withDefaults.getOrCreateTaskContainer(`dl-${++n}`, { taskTimeoutMs: 7_000 });
      await c.addTasks([{ name: 'inherit' }, { name: 'own', timeoutMs: 100, stallMs: 50 }, { name: 'none', timeoutMs: null, stallMs: null }]);
      const get = async (name: string) => (await c.getTask(name))!.toJSON();
      expect([(await get('inherit')).timeoutMs, (await get('inherit')).stallMs]).to.deep.equal([7_000, 8_000]);
      expect([(await get('own')).timeoutMs, (await get('own')).stallMs]).to.deep.equal([100, 50]);
      expect([(await get('none')).timeoutMs, (await get('none')).stallMs]).to.deep.equal([null, null]);
      const doc = await raw(c.name(), 'none');
      expect(doc).to.not.have.property('timeoutMs');
      expect(doc).to.not.have.property('stallMs');
      const plain = await container();
      await plain.addTask('x');
      expect(await raw(plain.name(), 'x')).to.not.have.property('timeoutMs');
      await withDefaults.close();
    });

    it('a spawned child keeps the limits its spec sets', async function () {
      const c = await container();
      await c.addTask('parent');
      const p = await claim(c);
      await p.spawn([{ name: 'child', timeoutMs: 2_000, stallMs: 500 }]);
      const child = (await c.getTask('child'))!.toJSON();
      expect([child.timeoutMs, child.stallMs]).to.deep.equal([2_000, 500]);
      const l = (await client.claimNext({ container: c.name(), names: ['child'] }, { owner: 'w2' }))!;
      expect(l.deadline?.getTime()).to.equal(T0 + 500);
    });

    it('spawned children get the defaults added tasks get: spec > container > client; null opts out', async function () {
      const withDefaults = createClient({ connection: db.connection, clock, leaseMs: 60_000, taskTimeoutMs: 9_000, taskStallMs: 8_000 });
      try {
        const c = await withDefaults.getOrCreateTaskContainer(`dl-${++n}`, { taskTimeoutMs: 7_000 });
        await c.addTask('parent');
        const p = (await withDefaults.claimNext({ container: c.name() }, { owner: 'w1' }))!;
        await p.spawn([{ name: 'inherit' }, { name: 'own', timeoutMs: 100, stallMs: 50 }, { name: 'none', timeoutMs: null, stallMs: null }]);
        const get = async (name: string) => (await c.getTask(name))!.toJSON();
        expect([(await get('inherit')).timeoutMs, (await get('inherit')).stallMs]).to.deep.equal([7_000, 8_000]);
        expect([(await get('own')).timeoutMs, (await get('own')).stallMs]).to.deep.equal([100, 50]);
        expect([(await get('none')).timeoutMs, (await get('none')).stallMs]).to.deep.equal([null, null]);
        // The stored defaults are enforced: the claim of an inheriting child carries the deadline.
        const l = (await withDefaults.claimNext({ container: c.name(), names: ['inherit'] }, { owner: 'w2' }))!;
        expect(l.deadline?.getTime()).to.equal(T0 + 7_000);
        // A client without defaults spawning into a container without them: no limits.
        const plain = await container();
        await plain.addTask('parent');
        await (await claim(plain)).spawn([{ name: 'x' }]);
        expect(await raw(plain.name(), 'x')).to.not.have.property('timeoutMs');
        expect(await raw(plain.name(), 'x')).to.not.have.property('stallMs');
      } finally {
        await withDefaults.close();
      }
    });

    it('bad values are a ValidationError with nothing written', async function () {
      const c = await container();
      for (const bad of [0, -1, 1.5, '10', Number.NaN, 366 * 86_400_000]) {
        const err = await rejection(c.addTasks([{ name: 'ok' }, { name: 'bad', timeoutMs: bad as number }]));
        expect(err).to.be.instanceOf(ValidationError);
        expect(err.details?.path).to.equal('tasks[1].timeoutMs');
        const err2 = await rejection(c.addTasks([{ name: 'bad', stallMs: bad as number }]));
        expect(err2.details?.path).to.equal('tasks[0].stallMs');
      }
      expect(await tasks().countDocuments({ container: c.name() })).to.equal(0);
      expect(() => createClient({ connection: db.connection, taskTimeoutMs: 0 })).to.throw(ValidationError);
      const err = await rejection(client.getOrCreateTaskContainer(`dl-${++n}`, { taskStallMs: -5 }));
      expect(err).to.be.instanceOf(ValidationError);
      expect(await db.connection.collection('pts_containers').countDocuments({ name: `dl-${n}` })).to.equal(0);
    });
  });

  describe('the lease carries the deadline; the database enforces it', function () {
    it('claim: deadline = claim time + the sooner limit; no limits, no deadline', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', timeoutMs: 10_000, stallMs: 4_000 }]);
      const l = await claim(c);
      expect(l.deadline?.getTime()).to.equal(T0 + 4_000);
      expect(l.task.lease?.timeoutAt?.getTime()).to.equal(T0 + 10_000);
      expect(l.task.lease?.stallAt?.getTime()).to.equal(T0 + 4_000);
      const d = await raw(c.name(), 'a');
      expect((d!.lease.deadline as Date).getTime()).to.equal(T0 + 4_000);
      const free = await container();
      await free.addTask('b');
      const fl = await claim(free);
      expect(fl.deadline).to.equal(null);
      expect(fl.task.lease?.deadline).to.equal(null);
      expect((await raw(free.name(), 'b'))!.lease).to.not.have.property('deadline');
    });

    it('a heartbeat after the timeout is refused (TaskTimeoutError, PTS_TASK_TIMEOUT), nothing written', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', timeoutMs: 5_000 }]);
      const l = await claim(c);
      clock.advance(4_999);
      await l.heartbeat({ percentageComplete: 10 });
      clock.advance(1);
      const before = await raw(c.name(), 'a');
      const err = await rejection(l.heartbeat({ percentageComplete: 20 }));
      expect(err).to.be.instanceOf(TaskTimeoutError);
      expect(err).to.be.instanceOf(LeaseLostError);
      expect(err.code).to.equal('PTS_TASK_TIMEOUT');
      expect(err.details?.kind).to.equal('timeout');
      expect(await raw(c.name(), 'a')).to.deep.equal(before);
      // succeed and fail after the deadline are refused too
      expect(await rejection(l.succeed('late'))).to.be.instanceOf(TaskTimeoutError);
      expect(await rejection(l.fail(new Error('late')))).to.be.instanceOf(TaskTimeoutError);
      expect(await raw(c.name(), 'a')).to.deep.equal(before);
    });

    it('stall: progress, status or checkpoint moves the stall deadline; a bare heartbeat does not', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', stallMs: 1_000, timeoutMs: 10_000 }]);
      const l = await claim(c);
      clock.advance(600);
      await l.heartbeat({ percentageComplete: 5 });
      expect(l.deadline?.getTime()).to.equal(T0 + 1_600);
      clock.advance(600);
      await l.heartbeat({ statusText: 'still going' });
      expect(l.deadline?.getTime()).to.equal(T0 + 2_200);
      clock.advance(600);
      await l.heartbeat({ processingData: { at: 3 } });
      expect(l.deadline?.getTime()).to.equal(T0 + 2_800);
      expect(((await raw(c.name(), 'a'))!.lease.stallAt as Date).getTime()).to.equal(T0 + 2_800);
      clock.advance(600);
      await l.heartbeat(); // bare: renews the lease, not the stall deadline
      expect(l.deadline?.getTime()).to.equal(T0 + 2_800);
      expect(((await raw(c.name(), 'a'))!.lease.stallAt as Date).getTime()).to.equal(T0 + 2_800);
      clock.advance(400);
      const err = await rejection(l.heartbeat({ percentageComplete: 50 }));
      expect(err).to.be.instanceOf(TaskStalledError);
      expect(err.code).to.equal('PTS_TASK_STALLED');
    });

    it('the stall part never moves the deadline past the timeout', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', stallMs: 1_000, timeoutMs: 1_500 }]);
      const l = await claim(c);
      clock.advance(900);
      await l.heartbeat({ percentageComplete: 5 });
      expect(l.deadline?.getTime()).to.equal(T0 + 1_500);
      clock.advance(600);
      expect(await rejection(l.heartbeat({ percentageComplete: 6 }))).to.be.instanceOf(TaskTimeoutError);
    });

    it('a heartbeat with deadlines is still exactly one command (progress and deadline in the same update)', async function () {
      const conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
      try {
        const c2 = createClient({ connection: conn, clock, leaseMs: 60_000 });
        const c = await c2.getOrCreateTaskContainer(`dl-${++n}`);
        await c.addTasks([{ name: 'a', timeoutMs: 10_000, stallMs: 2_000 }]);
        const l = (await c2.claimNext({ container: c.name() }, { owner: 'w' }))!;
        const commands: string[] = [];
        conn.getClient().on('commandStarted', (e) => commands.push(e.commandName));
        clock.advance(1_000);
        await l.heartbeat({ percentageComplete: 30 });
        expect(commands).to.deep.equal(['update']);
        commands.length = 0;
        await l.heartbeat();
        expect(commands).to.deep.equal(['update']);
        expect(l.deadline?.getTime()).to.equal(T0 + 3_000);
        await c2.close();
      } finally {
        await conn.close();
      }
    });
  });

  describe('the sweep ends an attempt past its deadline', function () {
    it('even while heartbeats keep arriving: failure kind timeout, code TASK_TIMEOUT, retried after the backoff', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', timeoutMs: 5_000, retryDelayMs: 2_000, backoff: 'fixed', maxRetries: 2 }]);
      const events: string[] = [];
      for (const e of ['task:timeout', 'task:stalled', 'task:retrying', 'task:failed', 'lease:expired'] as PtsEventName[]) client.on(e, () => events.push(e));
      const l = await claim(c, 'wedged');
      for (let i = 0; i < 4; i++) {
        clock.advance(1_000);
        await l.heartbeat(); // a wedged process whose timer still fires
      }
      expect((await client.recoverStale({ container: c.name() })).recovered).to.deep.equal([]);
      clock.advance(1_000);
      const report = await client.recoverStale({ container: c.name() });
      expect(report.recovered).to.deep.equal([{ container: c.name(), task: 'a', owner: 'wedged', state: 'pending' }]);
      expect(events).to.deep.equal(['task:timeout', 'task:retrying']);
      const t = (await c.getTask('a'))!.toJSON();
      expect(t.state).to.equal('pending');
      expect(t.lease).to.equal(null);
      expect(t.runAfter.getTime()).to.equal(T0 + 5_000 + 2_000);
      expect(t.failures).to.have.length(1);
      expect(t.failures[0]).to.include({ kind: 'timeout', code: 'TASK_TIMEOUT', workerId: 'wedged', attempt: 1 });
      // The wedged holder is fenced off, and told why.
      const err = await rejection(l.heartbeat());
      expect(err).to.be.instanceOf(TaskTimeoutError);
      expect(await rejection(l.succeed('late'))).to.be.instanceOf(TaskTimeoutError);
      expect(await rejection(client.lease(c.name(), 'a', l.token))).to.be.instanceOf(TaskTimeoutError);
      // Not claimable before the backoff; then another worker gets attempt 2 with a fresh deadline.
      expect(await client.claimNext({ container: c.name() }, { owner: 'w2' })).to.equal(null);
      clock.advance(2_000);
      const next = await claim(c, 'w2');
      expect(next.task.attempts).to.equal(2);
      expect(next.deadline?.getTime()).to.equal(clock.now().getTime() + 5_000);
      await next.succeed('ok');
      expect((await c.getTask('a'))!.state()).to.equal('succeeded');
    });

    it('stalled out of retries: failed for good, kind stalled, the container fails', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', stallMs: 1_000, maxRetries: 0 }]);
      const events: string[] = [];
      client.on('task:stalled', (e) => events.push(`stalled ${e.task.name} ${e.failure.code}`));
      client.on('container:failed', () => events.push('container:failed'));
      const l = await claim(c);
      clock.advance(1_000);
      await client.recoverStale({ container: c.name() });
      const t = (await c.getTask('a'))!.toJSON();
      expect(t.state).to.equal('failed');
      expect(t.failures[0]).to.include({ kind: 'stalled', code: 'TASK_STALLED' });
      expect(events).to.deep.equal(['stalled a TASK_STALLED', 'container:failed']);
      expect(await rejection(l.heartbeat({ percentageComplete: 1 }))).to.be.instanceOf(TaskStalledError);
    });

    it('frees the key slot of a keyed task it ends, so the next task with that key can run', async function () {
      const c = await container();
      const key = `dl-key-${n}`;
      await c.addTasks([
        { name: 'first', key, timeoutMs: 1_000, maxRetries: 0 },
        { name: 'second', key },
      ]);
      const first = (await client.claimNext({ container: c.name(), key }, { owner: 'w1' }))!;
      expect(first.task.name).to.equal('first');
      expect(await client.claimNext({ container: c.name(), key }, { owner: 'w2' }), 'the key (limit 1) is taken').to.equal(null);
      clock.advance(1_000);
      await client.recoverStale({ container: c.name() });
      const second = (await client.claimNext({ container: c.name(), key }, { owner: 'w2' }))!;
      expect(second.task.name).to.equal('second');
      await second.succeed('ok');
      expect((await c.getTask('first'))!.toJSON().failures.map((f) => f.kind)).to.deep.equal(['timeout']);
    });

    it('counts attempts ended by a deadline in pts_task_transitions_total', async function () {
      const { createMetrics } = await import('../lib/metrics');
      const m = createMetrics(client);
      try {
        const c = await container();
        await c.addTasks([{ name: 'a', timeoutMs: 100 }, { name: 'b', stallMs: 100 }]);
        await claim(c);
        await claim(c);
        clock.advance(100);
        await client.recoverStale({ container: c.name() });
        const text = await m.text();
        expect(text).to.match(/pts_task_transitions_total\{transition="timeout"\} 1\b/);
        expect(text).to.match(/pts_task_transitions_total\{transition="stalled"\} 1\b/);
        expect(text).to.not.match(/pts_lease_expiries_total [1-9]/);
      } finally {
        m.close();
      }
    });

    it('a progress heartbeat that lands first wins over the sweep', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', stallMs: 1_000 }]);
      const l = await claim(c);
      clock.advance(999);
      await l.heartbeat({ percentageComplete: 1 });
      clock.advance(999);
      expect((await client.recoverStale({ container: c.name() })).recovered).to.deep.equal([]);
      expect((await c.getTask('a'))!.state()).to.equal('running');
      await l.succeed('ok');
    });
  });

  describe('container.run()', function () {
    it('aborts ctx.signal with TaskTimeoutError at the deadline, records it at once, retries and succeeds', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', timeoutMs: 5_000, retryDelayMs: 0, maxRetries: 1 }]);
      const reasons: unknown[] = [];
      let deadlineSeen: Date | null = null;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let lateReturned = false;
      const r = await c.run(
        {
          a: async (ctx) => {
            if (ctx.attempt === 1) {
              deadlineSeen = ctx.deadline;
              ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
              clock.advance(5_000);
              await gate; // ignores the abort: the runner does not wait for it
              ctx.progress(99, 'late');
              lateReturned = true;
              return 'late';
            }
            return 'second time';
          },
        },
        { heartbeatMs: 20, pollIntervalMs: 20, progressIntervalMs: 0 },
      );
      const settled = await raw(c.name(), 'a');
      release();
      while (!lateReturned) await new Promise((res) => setTimeout(res, 5));
      await new Promise((res) => setTimeout(res, 100));
      expect(await raw(c.name(), 'a'), 'the late return and its progress wrote nothing').to.deep.equal(settled);
      expect(r.status).to.equal('succeeded');
      expect(r.attempts).to.deep.equal({ a: 2 });
      expect(deadlineSeen!.getTime()).to.equal(T0 + 5_000);
      expect(reasons).to.have.length(1);
      expect(reasons[0]).to.be.instanceOf(TaskTimeoutError);
      const t = (await c.getTask('a'))!.toJSON();
      expect(t.result).to.equal('second time');
      expect(t.failures.map((f) => [f.kind, f.code, f.workerId])).to.deep.equal([['timeout', 'TASK_TIMEOUT', 'spec']]);
    });

    it('stall: a handler that keeps reporting runs on; once it stops it is ended with TaskStalledError', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', stallMs: 1_000, maxRetries: 0 }]);
      let reason: unknown = null;
      const r = await c.run(
        async (ctx) => {
          for (let i = 1; i <= 5; i++) {
            clock.advance(800);
            ctx.progress(i * 10);
            await ctx.flush();
          }
          ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason));
          clock.advance(1_000);
          await new Promise(() => undefined);
        },
        { heartbeatMs: 20, pollIntervalMs: 20, progressIntervalMs: 0 },
      );
      expect(r.status).to.equal('failed');
      expect(r.failed).to.deep.equal(['a']);
      expect(reason).to.be.instanceOf(TaskStalledError);
      const t = (await c.getTask('a'))!.toJSON();
      expect(t.percentageComplete).to.equal(50);
      expect(t.failures.map((f) => f.kind)).to.deep.equal(['stalled']);
    });

    it('a handler that returns after its deadline is fenced off: the attempt is a timeout', async function () {
      const c = await container();
      await c.addTasks([{ name: 'a', timeoutMs: 5_000, maxRetries: 0 }]);
      const r = await c.run(
        async () => {
          clock.advance(5_000);
          return 'too late';
        },
        { heartbeatMs: 60_000, pollIntervalMs: 20 },
      );
      expect(r.status).to.equal('failed');
      const t = (await c.getTask('a'))!.toJSON();
      expect(t.result).to.equal(null);
      expect(t.failures.map((f) => f.kind)).to.deep.equal(['timeout']);
    });
  });

  describe('HTTP worker protocol', function () {
    it('the claim reply shows the deadline; a heartbeat after it is 409 PTS_TASK_TIMEOUT', async function () {
      const { startServer } = await import('../lib/http/server');
      const server = await startServer({ client, auth: false, dashboard: false, pollMs: 50 });
      const untrack = trackResource(`http server ${server.url}`, () => server.close());
      const call = async (method: string, url: string, body?: unknown) => {
        const res = await fetch(server.url + url, {
          method,
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        return { statusCode: res.status, body: text, json: () => JSON.parse(text) };
      };
      try {
        const c = await container();
        await c.addTasks([{ name: 'a', timeoutMs: 5_000, stallMs: 3_000 }]);
        const post = (url: string, body: unknown) => call('POST', url, body);
        const claimed = await post('/api/v1/claim', { container: c.name(), owner: 'http-w' });
        expect(claimed.statusCode).to.equal(200);
        const body = claimed.json();
        expect(body.deadline).to.equal(new Date(T0 + 3_000).toISOString());
        expect(body.task.lease.deadline).to.equal(new Date(T0 + 3_000).toISOString());
        expect(body.task.timeoutMs).to.equal(5_000);
        const hbUrl = `/api/v1/containers/${c.name()}/tasks/a/heartbeat`;
        clock.advance(2_000);
        const hb = await post(hbUrl, { token: body.token, percentageComplete: 10 });
        expect(hb.statusCode, hb.body).to.equal(200);
        expect(hb.json().deadline).to.equal(new Date(T0 + 5_000).toISOString());
        clock.advance(3_000);
        const late = await post(hbUrl, { token: body.token });
        expect(late.statusCode).to.equal(409);
        expect(late.json().error.code).to.equal('PTS_TASK_TIMEOUT');
        await client.recoverStale({ container: c.name() });
        const swept = await post(hbUrl, { token: body.token });
        expect(swept.statusCode).to.equal(409);
        expect(swept.json().error.code).to.equal('PTS_TASK_TIMEOUT');
        const t = await call('GET', `/api/v1/containers/${c.name()}/tasks/a`);
        expect(t.json().failures[0].kind).to.equal('timeout');
        // Container defaults and per-task limits through the admin routes.
        const cname = `dl-http-${++n}`;
        const put = await call('PUT', `/api/v1/containers/${cname}`, { taskTimeoutMs: 7_000, taskStallMs: 2_000 });
        expect(put.statusCode, put.body).to.equal(201);
        expect([put.json().container.taskTimeoutMs, put.json().container.taskStallMs]).to.deep.equal([7_000, 2_000]);
        const add = await post(`/api/v1/containers/${cname}/tasks`, {
          tasks: [{ name: 'inherit' }, { name: 'own', timeoutMs: 100, stallMs: null }],
        });
        expect(add.statusCode, add.body).to.equal(200);
        expect(add.json().tasks.map((x: { timeoutMs: number | null; stallMs: number | null }) => [x.timeoutMs, x.stallMs])).to.deep.equal([
          [7_000, 2_000],
          [100, null],
        ]);
        const bad = await post(`/api/v1/containers/${cname}/tasks`, { tasks: [{ name: 'bad', timeoutMs: 0 }] });
        expect(bad.statusCode).to.equal(400);
        expect(bad.json().error.code).to.equal('PTS_VALIDATION');
      } finally {
        await server.close();
        untrack();
      }
    });
  });

  describe('pts status', function () {
    it('shows the deadline of a running task and the kind of a failure ended by one', async function () {
      const real = createClient({ connection: db.connection, workerId: 'cli-w' });
      const name = `dl-cli-${++n}`;
      const c = await real.getOrCreateTaskContainer(name);
      await c.addTasks([
        { name: 'slow', timeoutMs: 600_000 },
        { name: 'hung', stallMs: 1_000, maxRetries: 0 },
      ]);
      await real.claimNext({ container: name, names: ['slow'] });
      // The stall ended by a sweep on a clock moved past it.
      const moved = createClient({ connection: db.connection, clock: new ManualClock(Date.now()) });
      await moved.claimNext({ container: name, names: ['hung'] });
      (moved.core.ctx.clock as ManualClock).advance(1_000);
      await moved.recoverStale({ container: name });
      const run = await pts(['status', name], { MONGODB_URI: db.uri });
      expect(run.code, run.stderr).to.equal(0);
      expect(run.stdout).to.match(/⏱ slow deadline in (9m 5\ds|10m 00s) \(timeout\)/);
      expect(run.stdout).to.include('hung failed after 1 attempt(s) (stalled): attempt 1 reported no progress for 1000 ms');
      const json = JSON.parse((await pts(['status', name, '--json'], { MONGODB_URI: db.uri })).stdout) as {
        tasks: Array<{ name: string; lease: { deadline: string } | null; failures: Array<{ kind: string; code: string }> }>;
      };
      expect(json.tasks.find((t) => t.name === 'slow')!.lease!.deadline).to.be.a('string');
      expect(json.tasks.find((t) => t.name === 'hung')!.failures[0]).to.include({ kind: 'stalled', code: 'TASK_STALLED' });
      await real.close();
      await moved.close();
    });
  });

  describe('real processes', function () {
    it('a child whose handler awaits forever (heartbeats firing) is failed within timeoutMs + one sweep interval and retried by another process', async function () {
      this.timeout(60_000);
      const TIMEOUT_MS = 1_500;
      const SWEEP_MS = 250;
      const name = `dl-real-${++n}`;
      const setup = createClient({ uri: db.uri });
      const c = await setup.getOrCreateTaskContainer(name);
      await c.addTasks([{ name: 'hang', timeoutMs: TIMEOUT_MS, retryDelayMs: 0, maxRetries: 2 }]);
      const child = startChild([db.uri, name]);
      // Closed in finally: a failed assertion must not leave its sweeper and connection open.
      let rescuer: { close(): Promise<void> } | null = null;
      try {
        // The child claims and hangs; wait until it holds the task.
        let started: Date | null = null;
        for (let i = 0; i < 200 && !started; i++) {
          const t = await c.getTask('hang');
          started = t?.state() === 'running' ? (t.toJSON().lease?.timeoutAt ?? null) : null;
          if (!started) await new Promise((r) => setTimeout(r, 50));
        }
        expect(started, 'the child claimed the task').to.not.equal(null);
        const claimedAt = started!.getTime() - TIMEOUT_MS;
        // Its heartbeats keep the lease (10 s, renewed every 100 ms) far from expiring: only the
        // deadline can end this attempt.
        const live = (await c.getTask('hang'))!.toJSON();
        expect(live.state).to.equal('running');
        expect(live.lease!.expiresAt.getTime(), 'the lease outlasts the deadline').to.be.above(started!.getTime() + 5_000);
        // A second process: a sweeper and a runner. The child is alive, its heartbeats firing.
        const other = createClient({ uri: db.uri, sweepIntervalMs: SWEEP_MS, workerId: 'rescuer' });
        rescuer = other;
        const ended = new Promise<number>((resolve) => other.on('task:timeout', () => resolve(Date.now())));
        const oc = (await other.getTaskContainer(name))!;
        const run = oc.run({ hang: async () => 'rescued' }, { pollIntervalMs: 100 });
        const endedAt = await ended;
        const r = await run;
        expect(child.alive(), 'the child is still alive').to.equal(true);
        const refused = (await c.getTask('hang'))!.toJSON().failures[0];
        console.log(
          `[deadlines] the wedged child's attempt was ended ${endedAt - started!.getTime()} ms after its deadline (sweep every ${SWEEP_MS} ms; recorded ${refused.at.getTime() - started!.getTime()} ms after it), while its heartbeats kept coming`,
        );
        expect(endedAt - claimedAt, 'failed within timeoutMs + one sweep interval (+ slack for a loaded machine)').to.be.below(TIMEOUT_MS + SWEEP_MS + 2_000);
        expect(r.status).to.equal('succeeded');
        const t = (await oc.getTask('hang'))!.toJSON();
        expect(t.result).to.equal('rescued');
        expect(t.failures.map((f) => [f.kind, f.workerId?.startsWith('deadline-child:')])).to.deep.equal([['timeout', true]]);
        // The child's heartbeats kept coming until the deadline: its lease had not expired.
        expect(t.failures[0].at.getTime()).to.be.at.least(started!.getTime());
      } finally {
        await rescuer?.close();
        await child.kill();
        await setup.close();
      }
    });
  });
});

/** Runs the `pts` CLI as a real process. */
function pts(args: string[], env: Record<string, string>) {
  return runPts(args, { env: { PTS_CONNECT_TIMEOUT_MS: '1500', ...env } });
}

/** The wedged worker (fixtures/deadline-worker.ts), its output passed through. */
function startChild(args: string[]): StartedChild {
  return startTs(path.join(__dirname, 'fixtures', 'deadline-worker.ts'), args, {
    inherit: true,
    label: 'deadline child',
  });
}
