import { expect } from 'chai';
import mongoose from 'mongoose';
import { CONTAINER_RECHECK_MS } from '../lib/client';
import { createClient, DuplicateError, InvalidTransitionError, LeaseLostError, ManualClock, NotFoundError, type Client, type TaskContainer } from '../lib';
import { useTestDatabase } from './helpers/db';
import { CommandCounter, expectConsistent } from './helpers/consistency';

describe('transitions', function () {
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let clock: ManualClock;
  let counter: CommandCounter;

  before(async function () {
    conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    client = createClient({ connection: conn, clock, leaseMs: 10_000, workerId: 'w1' });
    await client.ensureIndexes();
    counter = new CommandCounter(conn.getClient() as never);
  });
  after(async function () {
    counter.stop();
    await conn.close();
  });

  async function fresh(name: string, n = 3): Promise<TaskContainer> {
    const c = await client.getOrCreateTaskContainer(name);
    await c.addTasks(Array.from({ length: n }, (_, i) => ({ name: `t${i}`, retryDelayMs: 1000, maxRetries: 1 })));
    return c;
  }

  describe('round trips (driver command monitoring)', function () {
    it('heartbeat/progress is exactly one command', async function () {
      const c = await fresh('rt heartbeat');
      const lease = (await client.claimNext({ container: c.name() }, { owner: 'w1' }))!;
      counter.reset();
      await lease.heartbeat({ percentageComplete: 10, statusText: 'ten', processingData: { offset: 10 } });
      expect(counter.names()).to.deep.equal(['update']);
      counter.reset();
      await lease.heartbeat();
      expect(counter.names()).to.deep.equal(['update']);
    });

    it('claim, succeed and fail are at most two commands (task, then counters)', async function () {
      const c = await fresh('rt transitions');
      const owner = { owner: 'w1' };
      // The first claim also moves the container pending -> running, in the same counter write.
      counter.reset();
      await client.claimNext({ container: c.name() }, owner);
      expect(counter.commands.filter((x) => x.name !== 'find').map((x) => x.collection)).to.deep.equal(['pts_tasks', 'pts_containers']);
      expect((await c.summary()).status).to.equal('running');
      // the container's id is remembered from the first claim: just the two writes
      counter.reset();
      const lease = (await client.claimNext({ container: c.name() }, owner))!;
      expect(counter.commands.map((x) => [x.name, x.collection])).to.deep.equal([
        ['findAndModify', 'pts_tasks'],
        ['findAndModify', 'pts_containers'],
      ]);
      counter.reset();
      await lease.fail(new Error('boom'));
      expect(counter.names()).to.deep.equal(['findAndModify', 'findAndModify']);
      clock.advance(5_000);
      const again = (await client.claimNext({ container: c.name() }, owner))!;
      counter.reset();
      await again.succeed({ rows: 1 });
      expect(counter.names()).to.deep.equal(['findAndModify', 'findAndModify']);
      await expectConsistent(c);
    });

    it('finishing a task that others depend on adds one write that unblocks them', async function () {
      const c = await client.getOrCreateTaskContainer('rt dependents');
      await c.addTasks([{ name: 'up' }, { name: 'down', dependsOn: ['up'] }]);
      const l = (await client.claimNext({ container: c.name() }, { owner: 'w1' }))!;
      counter.reset();
      await l.succeed();
      expect(counter.commands.map((x) => [x.name, x.collection])).to.deep.equal([
        ['findAndModify', 'pts_tasks'],
        ['findAndModify', 'pts_containers'],
        ['update', 'pts_tasks'],
      ]);
      expect((await c.getTask('down'))!.toJSON().waitingOn).to.deep.equal([]);
    });

    it('a dependency added on a task that already succeeded does not block', async function () {
      const c = await client.getOrCreateTaskContainer('late dependent');
      await c.addTask('early', null);
      await (await client.claimNext({ container: c.name() }, { owner: 'w1' }))!.succeed();
      const [late] = await c.addTasks([{ name: 'late', dependsOn: ['early'] }]);
      expect(late.toJSON().waitingOn).to.deep.equal([]);
      expect((await client.claimNext({ container: c.name() }, { owner: 'w1' }))!.task.name).to.equal('late');
      await expectConsistent(c);
    });
  });

  describe('fencing', function () {
    it('a stale worker whose lease expired and was taken over gets LeaseLostError and changes nothing', async function () {
      const c = await fresh('fencing', 1);
      const old = (await client.claimNext({ container: c.name() }, { owner: 'old', leaseMs: 1000 }))!;
      await old.heartbeat({ percentageComplete: 30, processingData: { offset: 30 } });
      clock.advance(1001);
      const report = await client.recoverStale({ container: c.name() });
      expect(report.recovered.map((r) => [r.task, r.owner, r.state])).to.deep.equal([['t0', 'old', 'pending']]);
      const fresh2 = (await client.claimNext({ container: c.name() }, { owner: 'new' }))!;
      expect(fresh2.token).to.be.greaterThan(old.token);
      expect(fresh2.task.processingData).to.deep.equal({ offset: 30 });
      const before = await db.connection.collection('pts_tasks').findOne({ container: 'fencing' });
      for (const attempt of [() => old.succeed('late'), () => old.heartbeat({ percentageComplete: 99 }), () => old.fail(new Error('late'))]) {
        try {
          await attempt();
          expect.fail('stale write accepted');
        } catch (err) {
          expect(err).to.be.instanceOf(LeaseLostError);
          expect((err as LeaseLostError).code).to.equal('PTS_LEASE_LOST');
        }
      }
      expect(await db.connection.collection('pts_tasks').findOne({ container: 'fencing' })).to.deep.equal(before);
      const t = (await c.getTask('t0'))!;
      expect(t.state()).to.equal('running');
      expect(t.invokeCount()).to.equal(2);
      expect(t.failures()).to.have.length(1);
      expect(t.failures()[0]).to.include({ code: 'LEASE_EXPIRED', kind: 'interrupted', workerId: 'old', attempt: 1 });
      await fresh2.succeed('done');
      await expectConsistent(c);
    });

    it('a heartbeat that lands before the sweep keeps the lease', async function () {
      const c = await fresh('heartbeat wins', 1);
      const lease = (await client.claimNext({ container: c.name() }, { owner: 'w', leaseMs: 1000 }))!;
      clock.advance(900);
      await lease.heartbeat({ percentageComplete: 50 });
      clock.advance(500);
      expect((await client.recoverStale({ container: c.name() })).recovered).to.have.length(0);
      await lease.succeed();
      expect((await c.getTask('t0'))!.state()).to.equal('succeeded');
    });

    it('cancelling a running task revokes its lease', async function () {
      const c = await fresh('cancel running', 1);
      const lease = (await client.claimNext({ container: c.name() }, { owner: 'w' }))!;
      await c.cancel('t0');
      try {
        await lease.heartbeat({ percentageComplete: 1 });
        expect.fail('heartbeat after cancel accepted');
      } catch (err) {
        expect(err).to.be.instanceOf(LeaseLostError);
      }
      expect((await c.summary()).status).to.equal('cancelled');
      await expectConsistent(c);
    });
  });

  describe('state rules', function () {
    it('retries with exponential backoff, then fails for good with the whole history', async function () {
      const c = await client.getOrCreateTaskContainer('backoff');
      await c.addTask('flaky', null, { maxRetries: 2, retryDelayMs: 1000, backoff: 'exponential' });
      const runAfters: number[] = [];
      for (let attempt = 1; attempt <= 3; attempt++) {
        const lease = (await client.claimNext({ container: 'backoff' }, { owner: 'w' }))!;
        expect(lease, `attempt ${attempt} claimable`).to.not.equal(null);
        const err = Object.assign(new Error(`fail ${attempt}`), { code: 'E_FLAKY' });
        const after = await lease.fail(err);
        if (attempt < 3) {
          expect(after.state).to.equal('pending');
          runAfters.push(after.runAfter.getTime() - clock.now().getTime());
          expect(await client.claimNext({ container: 'backoff' }, { owner: 'w' }), 'claimable before backoff').to.equal(null);
          clock.advance(after.runAfter.getTime() - clock.now().getTime());
        } else expect(after.state).to.equal('failed');
      }
      expect(runAfters).to.deep.equal([1000, 2000]);
      const t = (await c.getTask('flaky'))!;
      expect(t.hasFailed()).to.equal(true);
      expect(t.failures().map((f) => [f.attempt, f.message, f.code, f.workerId])).to.deep.equal([
        [1, 'fail 1', 'E_FLAKY', 'w'],
        [2, 'fail 2', 'E_FLAKY', 'w'],
        [3, 'fail 3', 'E_FLAKY', 'w'],
      ]);
      expect(t.failures()[0].stack).to.match(/fail 1/);
      expect((await c.summary()).status).to.equal('failed');
      await c.retry('flaky');
      expect((await c.getTask('flaky'))!.state()).to.equal('pending');
      await expectConsistent(c);
    });

    it('keeps only the newest failures once the history limit is reached', async function () {
      const small = createClient({ connection: conn, clock, failureHistoryLimit: 3 });
      const c = await small.getOrCreateTaskContainer('history cap');
      await c.addTask('t', null, { maxRetries: 10, retryDelayMs: 0 });
      for (let i = 1; i <= 5; i++) await (await small.claimNext({ container: 'history cap' }, { owner: 'w' }))!.fail(new Error(`e${i}`));
      const t = (await c.getTask('t'))!.toJSON();
      expect(t.failureCount).to.equal(5);
      expect(t.failures.map((f) => f.message)).to.deep.equal(['e3', 'e4', 'e5']);
    });

    it('rejects invalid transitions with a typed error and changes nothing', async function () {
      const c = await fresh('invalid', 2);
      await c.updateTask('t0', { isComplete: true });
      const snapshot = await db.connection.collection('pts_tasks').find({ container: 'invalid' }).toArray();
      const cases: Array<[() => Promise<unknown>, unknown]> = [
        [() => c.retry('t0'), InvalidTransitionError],
        [() => c.cancel('t0'), InvalidTransitionError],
        [() => c.skip('t0'), InvalidTransitionError],
        [() => c.updateTask('t0', { percentageComplete: 5 }), InvalidTransitionError],
        [() => c.retry('nope'), NotFoundError],
      ];
      for (const [fn, type] of cases) {
        try {
          await fn();
          expect.fail('accepted');
        } catch (err) {
          expect(err).to.be.instanceOf(type as never);
        }
      }
      // The original API: deleting a missing name is not an error, it resolves null (nothing written).
      expect(await c.deleteTask('nope')).to.equal(null);
      expect(await db.connection.collection('pts_tasks').find({ container: 'invalid' }).toArray()).to.deep.equal(snapshot);
    });

    it('re-adding a task is idempotent, but not with different dependencies', async function () {
      const c = await client.getOrCreateTaskContainer('re-add');
      await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }]);
      const again = await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }, { name: 'c', dependsOn: ['b'] }]);
      expect(again.map((t) => t.name())).to.deep.equal(['a', 'b', 'c']);
      const snapshot = await db.connection.collection('pts_tasks').find({ container: 're-add' }).toArray();
      try {
        await c.addTasks([{ name: 'd' }, { name: 'b' }]);
        expect.fail('conflicting definition accepted');
      } catch (err) {
        expect(err).to.be.instanceOf(DuplicateError);
        expect((err as DuplicateError).code).to.equal('PTS_DUPLICATE');
      }
      expect(await db.connection.collection('pts_tasks').find({ container: 're-add' }).toArray()).to.deep.equal(snapshot);
      await expectConsistent(c);
    });

    it('skip unblocks dependents; reset makes them wait again', async function () {
      const c = await client.getOrCreateTaskContainer('skip reset');
      await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }]);
      expect(await client.claimNext({ container: 'skip reset', names: ['b'] }, { owner: 'w' })).to.equal(null);
      await c.skip('a');
      expect((await c.getTask('b'))!.toJSON().waitingOn).to.deep.equal([]);
      await c.reset('a');
      expect((await c.getTask('b'))!.toJSON().waitingOn).to.deep.equal(['a']);
      await expectConsistent(c);
    });

    it('cancel, retry and reset of a whole container keep the counters right', async function () {
      const c = await fresh('bulk ops', 5);
      const l = (await client.claimNext({ container: 'bulk ops' }, { owner: 'w' }))!;
      await l.heartbeat({ percentageComplete: 60 });
      expect(await c.cancel()).to.equal(5);
      await expectConsistent(c);
      expect((await c.summary()).status).to.equal('cancelled');
      expect(await c.retry()).to.equal(5);
      await expectConsistent(c);
      expect((await c.summary()).counts.pending).to.equal(5);
      expect((await c.summary()).percentageComplete).to.equal(12);
      expect(await c.reset()).to.equal(5);
      await expectConsistent(c);
      expect((await c.summary()).percentageComplete).to.equal(0);
    });
  });

  describe('workers outside the runner', function () {
    it('release hands a task back without charging a failure', async function () {
      const c = await fresh('release', 1);
      const l = (await client.claimNext({ container: 'release' }, { owner: 'w' }))!;
      await l.heartbeat({ processingData: { offset: 7 } });
      const after = await l.release({ statusText: 'shutting down' });
      expect(after.state).to.equal('pending');
      expect(after.attempts).to.equal(0);
      expect(after.failureCount).to.equal(0);
      const again = (await client.claimNext({ container: 'release' }, { owner: 'w2' }))!;
      expect(again.task.processingData).to.deep.equal({ offset: 7 });
      expect(again.task.attempts).to.equal(1);
      await expectConsistent(c);
    });

    it('a permanent failure that blocks every pending task gives the container its final status', async function () {
      const c = await client.getOrCreateTaskContainer('blocked');
      await c.addTasks([{ name: 'a', maxRetries: 0 }, { name: 'b', dependsOn: ['a'] }]);
      const statuses: string[] = [];
      client.on('container:failed', (e) => statuses.push(e.container));
      const l = (await client.claimNext({ container: 'blocked' }, { owner: 'w' }))!;
      await l.fail(new Error('no such file'));
      expect((await c.summary()).status).to.equal('failed');
      expect(statuses).to.include('blocked');
      await c.retry('a');
      const l2 = (await client.claimNext({ container: 'blocked' }, { owner: 'w' }))!;
      await l2.succeed();
      const l3 = (await client.claimNext({ container: 'blocked' }, { owner: 'w' }))!;
      expect(l3.task.name).to.equal('b');
      await l3.succeed();
      expect((await c.summary()).status).to.equal('succeeded');
      await expectConsistent(c);
    });

    it('claimNext by name follows a container that was deleted and created again', async function () {
      const first = await fresh('reborn', 1);
      await (await client.claimNext({ container: 'reborn' }, { owner: 'w' }))!.succeed();
      expect(await client.claimNext({ container: 'reborn' }, { owner: 'w' })).to.equal(null);
      await client.deleteTaskContainer('reborn');
      const second = await fresh('reborn', 1);
      expect(second.id).to.not.equal(first.id);
      const l = (await client.claimNext({ container: 'reborn' }, { owner: 'w' }))!;
      expect(l.task.containerId).to.equal(second.id);
    });

    it('claimNext by name: an idle poll is one command; a container re-created by another process is found after CONTAINER_RECHECK_MS', async function () {
      const other = createClient({ connection: conn, clock, workerId: 'other' });
      const first = await fresh('reborn elsewhere', 1);
      await (await client.claimNext({ container: 'reborn elsewhere' }, { owner: 'w' }))!.succeed();
      // Past the bound, an empty claim looks the name up again; within it, further empty polls
      // send no container command (one claim command each).
      clock.advance(CONTAINER_RECHECK_MS);
      expect(await client.claimNext({ container: 'reborn elsewhere' }, { owner: 'w' })).to.equal(null);
      counter.reset();
      expect(await client.claimNext({ container: 'reborn elsewhere' }, { owner: 'w' })).to.equal(null);
      expect(counter.commands.filter((x) => x.collection === 'pts_containers')).to.deep.equal([]);
      // Deleted and re-created through another client: this one still holds the old id.
      await other.deleteTaskContainer('reborn elsewhere');
      const second = await other.getOrCreateTaskContainer('reborn elsewhere');
      await second.addTasks([{ name: 'again' }]);
      expect(second.id).to.not.equal(first.id);
      expect(await client.claimNext({ container: 'reborn elsewhere' }, { owner: 'w' })).to.equal(null);
      clock.advance(CONTAINER_RECHECK_MS);
      const l = (await client.claimNext({ container: 'reborn elsewhere' }, { owner: 'w' }))!;
      expect(l.task.containerId).to.equal(second.id);
      expect(l.task.name).to.equal('again');
      await l.succeed();
    });

    it('lease() re-attaches a stateless worker by token and renews by the claimed duration', async function () {
      const c = await fresh('reattach', 1);
      const l = (await client.claimNext({ container: 'reattach' }, { owner: 'http-worker', leaseMs: 2_000 }))!;
      const again = await client.lease('reattach', 't0', l.token);
      const exp = await again.heartbeat({ percentageComplete: 5 });
      expect(exp.getTime() - clock.now().getTime()).to.equal(2_000);
      try {
        await client.lease('reattach', 't0', l.token + 1);
        expect.fail('wrong token accepted');
      } catch (err) {
        expect(err).to.be.instanceOf(LeaseLostError);
      }
      await again.succeed();
      await expectConsistent(c);
    });

    it('lease() renews by the length stored with the lease, whatever other writes happened since', async function () {
      const c = await fresh('lease length', 1);
      const l = (await client.claimNext({ container: 'lease length' }, { owner: 'http-worker', leaseMs: 60_000 }))!;
      // Another write to the running task (an admin's status text) 40 s into the lease: with the
      // length inferred as expiresAt - updatedAt, the next renewal would be 20 s long.
      clock.advance(40_000);
      await c.updateTask('t0', { statusText: 'looked at by an admin' });
      const raw = await conn.collection('pts_tasks').findOne({ containerId: c._id, name: 't0' });
      expect(raw?.lease?.ms).to.equal(60_000);
      const again = await client.lease('lease length', 't0', l.token);
      expect(again.leaseMs).to.equal(60_000);
      const exp = await again.heartbeat();
      expect(exp.getTime() - clock.now().getTime()).to.equal(60_000);
      // A renewal with another length is stored too.
      await again.heartbeat(undefined, 30_000);
      expect((await client.lease('lease length', 't0', l.token)).leaseMs).to.equal(30_000);
      await again.succeed();
      await expectConsistent(c);
    });
  });
});
