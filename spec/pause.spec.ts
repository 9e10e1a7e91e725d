/**
 * Pausing a container (lib/store/pause.ts, lib/store/holds.ts): no claim by any path while it is
 * paused, running tasks finish and are recorded, tasks added meanwhile wait, resume lets claims
 * go, pause/resume are idempotent, and a crash between a pause's two writes is repaired.
 */
import path from 'node:path';
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, ManualClock, ValidationError, type Client, type TaskContainer } from '../lib';
import { useTestDatabase } from './helpers/db';
import { decide } from '../lib/decide';
import { CommandCounter, expectConsistent } from './helpers/consistency';
import { startFixture, type HttpFixture } from './http/support';
import { runPts, runTs } from './helpers/child';

describe('pause', function () {
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let clock: ManualClock;
  let counter: CommandCounter;
  let n = 0;

  before(async function () {
    conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    counter = new CommandCounter(conn.getClient() as never);
  });
  after(async function () {
    counter.stop();
    await conn.close();
  });

  /** A client on its own collections, so unfiltered claims only see this test's tasks. */
  async function isolated(): Promise<{ client: Client; prefix: string }> {
    const prefix = `p${++n}_`;
    clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
    const client = createClient({
      connection: conn,
      clock,
      collectionPrefix: prefix,
      leaseMs: 60_000,
      workerId: 'w1',
    });
    await client.ensureIndexes();
    return { client, prefix };
  }

  async function pipeline(client: Client, name: string): Promise<TaskContainer> {
    const c = await client.getOrCreateTaskContainer(name);
    await c.addTasks([
      { name: 'a' },
      { name: 'b' },
      { name: 'c', dependsOn: ['a'] },
      { name: 'k1', key: 'host' },
      { name: 'k2', key: 'host' },
    ]);
    return c;
  }

  it('stops claims by every path: claimNext with and without a container, keyed claims, run()', async function () {
    const { client } = await isolated();
    const c = await pipeline(client, 'every path');
    const s = await c.pause({ by: 'ops@example' });
    expect(s.paused).to.equal(true);
    expect(s.pausedBy).to.equal('ops@example');
    expect(s.pausedAt!.toISOString()).to.equal('2026-03-01T00:00:00.000Z');
    expect(c.isPaused()).to.equal(true);

    expect(await client.claimNext({ container: 'every path' })).to.equal(null);
    expect(await client.claimNext({})).to.equal(null);
    expect(await client.claimNext({ key: 'host' })).to.equal(null);
    expect(await client.claimNext({ container: 'every path', key: 'host' })).to.equal(null);
    expect(await client.claimNext({ container: 'every path', names: ['a', 'b'] })).to.equal(null);
    const ran: string[] = [];
    const r = await c.run((ctx) => void ran.push(ctx.name), { whenPaused: 'return' });
    expect(r.paused).to.equal(true);
    expect(r.stopped).to.equal(false);
    expect(r.status).to.equal('pending');
    expect(ran).to.deep.equal([]);
    expect(r.summary.paused).to.equal(true);
    expect((await client.summary('every path'))!.counts.pending).to.equal(5);

    const after = await c.resume();
    expect(after.paused).to.equal(false);
    expect(after.pausedAt).to.equal(null);
    expect(after.pausedBy).to.equal(null);
    expect(c.isPaused()).to.equal(false);
    const lease = await client.claimNext({});
    expect(lease).to.not.equal(null);
    await lease!.succeed();
    const done = await c.run((ctx) => void ran.push(ctx.name), { whenPaused: 'return' });
    expect(done.status).to.equal('succeeded');
    expect(done.paused).to.equal(false);
    expect(ran.concat(lease!.task.name).sort()).to.deep.equal(['a', 'b', 'c', 'k1', 'k2']);
    await expectConsistent(c);
  });

  it('keeps a claim at two commands: the hold is in the ready filter, not an extra read', async function () {
    const { client } = await isolated();
    const c = await pipeline(client, 'round trips');
    await c.pause();
    await client.claimNext({ container: 'round trips' }); // caches the container id (null: paused)
    counter.reset();
    expect(await client.claimNext({ container: 'round trips' })).to.equal(null);
    // As for any container with nothing ready: the unkeyed claim and the ready keys (the cached
    // id is re-checked at most once per second, CONTAINER_RECHECK_MS). The pause adds no read.
    expect(
      counter.commands.map((x) => `${x.name} ${String(x.collection).replace(client.collectionPrefix, '')}`),
    ).to.deep.equal(['findAndModify tasks', 'find tasks']);
    await c.resume();
    counter.reset();
    const lease = await client.claimNext({ container: 'round trips' });
    expect(lease!.task.name).to.equal('a');
    expect(counter.names()).to.deep.equal(['findAndModify', 'findAndModify']);
  });

  it('lets running tasks finish and records them; a task that fails and retries comes back held', async function () {
    const { client } = await isolated();
    const c = await client.getOrCreateTaskContainer('running finish');
    await c.addTasks([
      { name: 'long', maxRetries: 2, retryDelayMs: 0 },
      { name: 'flaky', maxRetries: 2, retryDelayMs: 0 },
      { name: 'next' },
    ]);
    const long = (await client.claimNext({ container: 'running finish', names: ['long'] }))!;
    const flaky = (await client.claimNext({ container: 'running finish', names: ['flaky'] }))!;
    const s = await c.pause();
    expect(s.counts.running).to.equal(2);
    await long.heartbeat({ percentageComplete: 50 });
    const rec = await long.succeed({ ok: true });
    expect(rec.state).to.equal('succeeded');
    const failed = await flaky.fail(new Error('transient'));
    expect(failed.state).to.equal('pending');
    clock.advance(1000);
    expect(await client.claimNext({ container: 'running finish' })).to.equal(null);
    const sum = await c.summary();
    expect(sum.counts).to.include({ succeeded: 1, pending: 2, running: 0 });
    expect(sum.paused).to.equal(true);
    await expectConsistent(c);
    await c.resume();
    expect(
      (await client.claimNext({ container: 'running finish', names: ['flaky'] }))!.task.attempts,
    ).to.equal(2);
  });

  it('run() while paused polls with one read of the container per poll, no claim', async function () {
    const { client } = await isolated();
    const c = await client.getOrCreateTaskContainer('poll cost');
    await c.addTasks([{ name: 'x' }, { name: 'y', key: 'k' }]);
    await c.pause();
    const ac = new AbortController();
    counter.reset();
    const run = c.run(() => undefined, { pollIntervalMs: 20, signal: ac.signal });
    const reads = (): number =>
      counter.commands.filter(
        (x) => x.name === 'find' && x.collection === `${client.collectionPrefix}containers`,
      ).length;
    // The first claim attempt: with 4 free slots, the batch claim's read of ready unkeyed tasks
    // (claims.ts claimSeveral; `key: null` in its filter, unlike the ready keys' read).
    const claimAt = (): number =>
      counter.commands.findIndex(
        (x) =>
          x.name === 'find' &&
          x.collection === `${client.collectionPrefix}tasks` &&
          (x.command.filter as { key?: unknown; state?: unknown } | undefined)?.key === null &&
          (x.command.filter as { state?: unknown }).state === 'pending',
      );
    // Until four polls followed the first claim attempt.
    const afterClaim = (): number => {
      const at = claimAt();
      return at < 0
        ? 0
        : reads() -
            counter.commands
              .slice(0, at)
              .filter((x) => x.name === 'find' && x.collection === `${client.collectionPrefix}containers`)
              .length;
    };
    for (let i = 0; afterClaim() < 5 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await run;
    // The start (handler check, sweep), one claim attempt (the batch read + the ready keys), the
    // read that finds the container paused; from then on each poll is that one read, no claim.
    const names = counter.commands.map(
      (x) => `${x.name} ${String(x.collection).replace(client.collectionPrefix, '')}`,
    );
    const claim = claimAt();
    expect(claim, names.join(', ')).to.be.at.least(0);
    expect(names.slice(claim, claim + 3)).to.deep.equal(['find tasks', 'find tasks', 'find containers']);
    expect(names.slice(0, claim), 'no claim before it').to.not.include('findAndModify tasks');
    const polls = names.slice(claim + 3);
    expect(new Set(polls), names.join(', ')).to.deep.equal(new Set(['find containers']));
    expect(polls.length).to.be.at.least(4);
  });

  it('run(): handlers running when the pause lands finish; then it waits (polling) until resumed', async function () {
    const { client } = await isolated();
    const c = await client.getOrCreateTaskContainer('run waits');
    await c.addTasks([
      { name: 'first' },
      { name: 'second', dependsOn: ['first'] },
      { name: 'third', dependsOn: ['first'] },
    ]);
    const other = (await client.getTaskContainer('run waits'))!;
    const order: string[] = [];
    let resumed = false;
    const run = c.run(
      async (ctx) => {
        order.push(ctx.name);
        if (ctx.name === 'first') await other.pause({ by: 'handler' });
        else expect(resumed, `${ctx.name} ran while paused`).to.equal(true);
      },
      { concurrency: 1, pollIntervalMs: 20 },
    );
    let settled = false;
    void run.finally(() => (settled = true));
    // Wait until the runner has polled the paused container a few times (reads of the container document).
    const reads = (): number =>
      counter.commands.filter(
        (x) => x.name === 'find' && x.collection === `${client.collectionPrefix}containers`,
      ).length;
    counter.reset();
    for (let i = 0; reads() < 4 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    expect(reads()).to.be.at.least(4);
    expect(settled, 'run() returned while paused').to.equal(false);
    expect(order).to.deep.equal(['first']);
    expect((await c.summary()).counts).to.include({ succeeded: 1, pending: 2 });
    resumed = true;
    await other.resume();
    const r = await run;
    expect(r.status).to.equal('succeeded');
    expect(r.paused).to.equal(false);
    expect(order.slice(1).sort()).to.deep.equal(['second', 'third']);
    expect(c.isComplete()).to.equal(true);
  });

  it('run(): the signal stops a run that waits on a pause', async function () {
    const { client } = await isolated();
    const c = await client.getOrCreateTaskContainer('run stopped');
    await c.addTasks([{ name: 'x' }]);
    await c.pause();
    const ac = new AbortController();
    const run = c.run(() => undefined, { pollIntervalMs: 10_000, signal: ac.signal });
    counter.reset();
    for (let i = 0; counter.names().length < 3 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    const r = await run;
    expect(r.stopped).to.equal(true);
    expect(r.attempts).to.deep.equal({});
    try {
      await c.run(() => undefined, { whenPaused: 'later' as never });
      expect.fail('accepted whenPaused: later');
    } catch (err) {
      expect(err).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).details.path).to.equal('whenPaused');
    }
  });

  it('holds tasks added while paused, also by a handle that had not seen the pause', async function () {
    const { client } = await isolated();
    const c = await client.getOrCreateTaskContainer('add while paused');
    const stale = (await createClient({
      connection: conn,
      clock,
      collectionPrefix: client.collectionPrefix,
    }).getTaskContainer('add while paused'))!;
    await c.pause();
    expect(stale.isPaused()).to.equal(false);
    await c.addTask('mine', null);
    await stale.addTasks([{ name: 'theirs' }, { name: 'theirs2' }]);
    expect(stale.isPaused(), 'the add showed the handle the pause').to.equal(true);
    expect(await client.claimNext({})).to.equal(null);
    const tasks = conn.collection(`${client.collectionPrefix}tasks`);
    expect(await tasks.countDocuments({ container: 'add while paused', pause: { $exists: true } })).to.equal(
      3,
    );
    // A handle that still thinks it is paused adds after the resume: its task is released.
    const stale2 = (await createClient({
      connection: conn,
      clock,
      collectionPrefix: client.collectionPrefix,
    }).getTaskContainer('add while paused'))!;
    expect(stale2.isPaused()).to.equal(true);
    await c.resume();
    await stale2.addTask('late', null);
    expect(await tasks.countDocuments({ container: 'add while paused', pause: { $exists: true } })).to.equal(
      0,
    );
    const names: string[] = [];
    for (let l = await client.claimNext({}); l; l = await client.claimNext({})) names.push(l.task.name);
    expect(names.sort()).to.deep.equal(['late', 'mine', 'theirs', 'theirs2']);
    await expectConsistent(c);
  });

  it('pause and resume are idempotent: one event, one container write, same pausedAt', async function () {
    const { client } = await isolated();
    const c = await pipeline(client, 'idempotent');
    const events: string[] = [];
    client.on('container:paused', (e) => events.push(`paused ${e.container} by ${e.by}`));
    client.on('container:resumed', (e) => events.push(`resumed ${e.container}`));
    const first = await c.pause({ by: 'a' });
    clock.advance(5000);
    const second = await c.pause({ by: 'b' });
    expect(second.pausedAt!.getTime()).to.equal(first.pausedAt!.getTime());
    expect(second.pausedBy).to.equal('a');
    expect(second.rev).to.equal(first.rev);
    await c.resume();
    const r2 = await c.resume();
    expect(r2.paused).to.equal(false);
    expect(events).to.deep.equal(['paused idempotent by a', 'resumed idempotent']);
    // Resuming a container that was never paused changes nothing.
    const never = await client.getOrCreateTaskContainer('never paused');
    const rev = (await never.summary()).rev;
    expect((await never.resume()).rev).to.equal(rev);
    try {
      await c.pause({ who: 'x' } as never);
      expect.fail('accepted an unknown option');
    } catch (err) {
      expect(err).to.be.instanceOf(ValidationError);
    }
  });

  it('the changes feed carries the pause; a paused container is not finalized as blocked', async function () {
    const { client } = await isolated();
    const c = await client.getOrCreateTaskContainer('feed and finalize');
    await c.addTasks([{ name: 'bad', maxRetries: 0 }, { name: 'ok' }]);
    const bad = (await client.claimNext({ container: 'feed and finalize', names: ['bad'] }))!;
    const before = await client.changes({ container: 'feed and finalize' });
    await c.pause();
    await bad.fail(new Error('boom'));
    // Feed entries show up once their second is behind the safety horizon (docs/api.md): follow until it does.
    let entry: { paused?: boolean } | undefined;
    for (let i = 0, since = before.next; !entry && i < 40; i++) {
      const page = await client.changes({ container: 'feed and finalize', since, horizonMs: 0 });
      entry = page.changes.find((e) => e.kind === 'container' && e.paused === true);
      since = page.next;
      if (!entry) await new Promise((r) => setTimeout(r, 100));
    }
    expect(entry, 'a container entry with paused: true').to.not.equal(undefined);
    // `ok` is held, not blocked for good: the sweep must not give the container its final status.
    await client.recoverStale({ container: 'feed and finalize' });
    const r = await c.run(() => undefined, { whenPaused: 'return' });
    expect(r.paused).to.equal(true);
    expect(r.status).to.not.equal('failed');
    await c.resume();
    const end = await c.run(() => undefined);
    expect(end.status).to.equal('failed'); // bad failed for good, ok succeeded
    expect(end.succeeded).to.deep.equal(['ok']);
  });

  it('repairs a crash between the container write and the task write (sweep, reconcile, a repeated call)', async function () {
    const { client, prefix } = await isolated();
    const c = await pipeline(client, 'crash');
    const containers = conn.collection(`${prefix}containers`);
    const tasks = conn.collection(`${prefix}tasks`);
    // A pause that crashed after its container write: the container says paused, the tasks are not held.
    await containers.updateOne(
      { name: 'crash' },
      { $set: { paused: true, pausedAt: clock.now(), pausedBy: null }, $inc: { pauseSeq: 1, rev: 1 } },
    );
    expect(await c.reconcile()).to.equal(true);
    expect(await client.claimNext({})).to.equal(null);
    expect(await c.reconcile()).to.equal(false);
    // A resume that crashed after its container write: the tasks stay held until the sweep.
    await containers.updateOne(
      { name: 'crash' },
      { $set: { paused: false, pausedAt: null }, $inc: { pauseSeq: 1, rev: 1 } },
    );
    expect(await client.claimNext({})).to.equal(null);
    const r = await c.run(() => undefined); // nothing ready: its sweep repairs the holds, then it runs everything
    expect(r.status).to.equal('succeeded');
    expect(await tasks.countDocuments({ pause: { $exists: true } })).to.equal(0);
    // A claim that finds the container paused (its counter write returns the container) holds the rest.
    const c3 = await pipeline(client, 'crash 3');
    await containers.updateOne(
      { name: 'crash 3' },
      { $set: { paused: true }, $inc: { pauseSeq: 1, rev: 1 } },
    );
    const slipped = await client.claimNext({ container: 'crash 3' });
    expect(slipped, 'the one claim the crashed pause let through').to.not.equal(null);
    expect(await client.claimNext({ container: 'crash 3' })).to.equal(null);
    expect(await tasks.countDocuments({ container: 'crash 3', pause: { $exists: false } })).to.equal(0);
    await slipped!.succeed();
    expect((await c3.summary()).counts.succeeded).to.equal(1);
    // A repeated pause() re-applies the hold even though the container already says paused.
    const c2 = await pipeline(client, 'crash 2');
    await containers.updateOne(
      { name: 'crash 2' },
      { $set: { paused: true }, $inc: { pauseSeq: 1, rev: 1 } },
    );
    await c2.pause();
    expect(await tasks.countDocuments({ container: 'crash 2', pause: { $exists: false } })).to.equal(0);
    expect(await client.claimNext({})).to.equal(null);
  });

  it('the unscoped sweep finds a crashed pause/resume in a container where nothing runs (the pauseUnsynced marker)', async function () {
    const { client, prefix } = await isolated();
    const c = await pipeline(client, 'idle crash');
    const other = await pipeline(client, 'bystander');
    const containers = conn.collection(`${prefix}containers`);
    const tasks = conn.collection(`${prefix}tasks`);
    const { writePauseIntent } = await import('../lib/store/pause');
    const marker = async (name: string) => (await containers.findOne({ name }))?.pauseUnsynced;
    // A pause and a resume that complete leave no marker.
    await other.pause();
    await other.resume();
    expect(await marker('bystander')).to.equal(undefined);
    // A resume that crashed after its container write (only the store's first write): nothing
    // runs, no lease expires, the tasks stay held — only the marker says so.
    await c.pause();
    expect(await writePauseIntent(client.core.ctx, c._id, false)).to.not.equal(null);
    expect(await marker('idle crash')).to.not.equal(undefined);
    expect(await client.claimNext({ container: 'idle crash' })).to.equal(null);
    const swept = await client.recoverStale({});
    expect(swept.reconciled).to.deep.equal(['idle crash']);
    expect(await marker('idle crash')).to.equal(undefined);
    expect(await tasks.countDocuments({ container: 'idle crash', pause: { $exists: true } })).to.equal(0);
    expect(await client.claimNext({ container: 'idle crash' })).to.not.equal(null);
    // A pause that crashed the same way: the sweep holds the tasks.
    expect(await writePauseIntent(client.core.ctx, c._id, true, 'doomed')).to.not.equal(null);
    expect((await client.recoverStale({})).reconciled).to.deep.equal(['idle crash']);
    expect(await marker('idle crash')).to.equal(undefined);
    expect(
      await tasks.countDocuments({ container: 'idle crash', state: 'pending', pause: { $exists: false } }),
    ).to.equal(0);
    expect(await client.claimNext({ container: 'idle crash' })).to.equal(null);
    // Nothing unsynced left: the next sweep visits no container.
    expect((await client.recoverStale({})).reconciled).to.deep.equal([]);
    expect(await marker('bystander')).to.equal(undefined);
  });

  it('a real crash (SIGKILL) between the container write and the task write: repaired by the next claim, or by a run', async function () {
    this.timeout(120_000);
    const { client, prefix } = await isolated();
    const c = await pipeline(client, 'killed');
    const tasks = conn.collection(`${prefix}tasks`);
    const crash = async (verb: 'pause' | 'resume') => {
      const r = await runTs(
        path.join(__dirname, 'fixtures', 'pause-crash.ts'),
        [db.uri, prefix, 'killed', verb],
        {
          label: `pause-crash ${verb}`,
        },
      );
      return { signal: r.signal, out: r.stdout + r.stderr };
    };
    const p = await crash('pause');
    expect(p.signal, p.out).to.equal('SIGKILL');
    // The crash state: the container says paused, no task is held.
    expect((await c.summary()).paused).to.equal(true);
    expect(await tasks.countDocuments({ pause: { $exists: true } })).to.equal(0);
    // The first claim that lands sees the paused container in its counter write and holds the rest.
    const slipped = await client.claimNext({});
    expect(slipped).to.not.equal(null);
    expect(await client.claimNext({})).to.equal(null);
    await slipped!.succeed();
    const r = await crash('resume');
    expect(r.signal, r.out).to.equal('SIGKILL');
    // The crash state: the container says not paused, its tasks are still held.
    expect((await c.summary()).paused).to.equal(false);
    expect(await client.claimNext({})).to.equal(null);
    const run = await c.run(() => undefined); // nothing ready: its sweep releases the holds
    expect(run.status).to.equal('succeeded');
    expect(await tasks.countDocuments({ pause: { $exists: true } })).to.equal(0);
    await expectConsistent(c);
  });

  it('a hold written late, after a resume released (racing writers), is lifted by the same writer', async function () {
    const { client, prefix } = await isolated();
    const c = await pipeline(client, 'late hold');
    const tasks = conn.collection(`${prefix}tasks`);
    const id = (await conn.collection(`${prefix}containers`).findOne({ name: 'late hold' }))!._id;
    await c.pause(); // pauseSeq 1
    await c.resume(); // pauseSeq 2: released
    // The hold write of pause 1 arriving only now (its writer was slow): it re-reads the
    // container, sees the resume, and lifts what it just held.
    const { applyToTasks, alignAdded } = await import('../lib/store/holds');
    await applyToTasks(client.core.ctx, id, true, 1);
    expect(await tasks.countDocuments({ pause: { $exists: true } })).to.equal(0);
    expect(await client.claimNext({})).to.not.equal(null);
    // The same for an add that saw a paused container in its counter write, then a resume landed.
    const t = await tasks.findOne({ name: 'b' });
    const paused = {
      ...(await conn.collection(`${prefix}containers`).findOne({ _id: id }))!,
      paused: true,
      pauseSeq: 1,
    };
    await alignAdded(client.core.ctx, paused as never, [{ _id: t!._id }]);
    expect(await tasks.countDocuments({ pause: { $exists: true } })).to.equal(0);
  });

  describe('the runner decides (decide.ts)', function () {
    const idle = {
      stopping: false,
      failFast: false,
      active: 0,
      concurrency: 2,
      claimsExhausted: true,
      claimMayBeOrphaned: false,
      counts: { pending: 2, running: 0, succeeded: 1, failed: 0, skipped: 0, cancelled: 0 },
      paused: true,
      now: 0,
      pollMs: 500,
    };
    it('waits (polling) or returns when paused and idle; finishes running handlers first; finishes when nothing is left', function () {
      expect(decide({ ...idle, waitWhenPaused: true })).to.deep.equal({
        kind: 'sleep',
        ms: 500,
        sweep: false,
      });
      expect(decide({ ...idle, waitWhenPaused: false })).to.deep.equal({ kind: 'paused' });
      expect(decide({ ...idle, counts: { ...idle.counts, running: 1 }, waitWhenPaused: true })).to.deep.equal(
        { kind: 'sleep', ms: 500, sweep: true },
      );
      expect(
        decide({ ...idle, counts: { ...idle.counts, running: 1 }, claimMayBeOrphaned: true }),
      ).to.deep.equal({ kind: 'adopt' });
      expect(decide({ ...idle, active: 1, waitWhenPaused: false })).to.deep.equal({ kind: 'wait', ms: 500 });
      expect(decide({ ...idle, counts: { ...idle.counts, pending: 0 } })).to.deep.equal({ kind: 'finish' });
      expect(decide({ ...idle, paused: false, waitWhenPaused: false })).to.deep.equal({
        kind: 'read',
        what: 'nextReadyAt',
      });
      // Paused at the last look: read again before any claim; still paused, no claim even with room.
      const next = { ...idle, counts: undefined, paused: undefined, claimsExhausted: false, wasPaused: true };
      expect(decide(next)).to.deep.equal({ kind: 'read', what: 'counts' });
      expect(decide({ ...next, counts: idle.counts, paused: true })).to.deep.equal({
        kind: 'sleep',
        ms: 500,
        sweep: false,
      });
      expect(decide({ ...next, counts: idle.counts, paused: false })).to.deep.equal({ kind: 'claim' });
    });
  });

  describe('over HTTP', function () {
    let f: HttpFixture;
    before(async function () {
      f = await startFixture(db);
    });
    after(async function () {
      await f?.close();
    });

    it('pause/unpause routes (admin), long-poll claims see the pause, GET shows it', async function () {
      const c = await f.client.getOrCreateTaskContainer('http-paused');
      await c.addTasks([{ name: 'one' }]);
      expect(
        (await f.call('POST', '/api/v1/containers/http-paused/actions/pause', { token: f.token.worker }))
          .status,
      ).to.equal(403);
      const p = await f.call('POST', '/api/v1/containers/http-paused/actions/pause');
      expect(p.status).to.equal(200);
      expect(p.body.paused).to.equal(true);
      expect(p.body.pausedBy).to.be.a('string').and.not.equal('');
      expect((await f.call('POST', '/api/v1/containers/http-paused/actions/pause')).body.pausedAt).to.equal(
        p.body.pausedAt,
      );
      const claim = await f.call('POST', '/api/v1/claim', {
        token: f.token.worker,
        body: { container: 'http-paused', owner: 'hw', waitMs: 200 },
      });
      expect(claim.status).to.equal(204);
      expect(
        (await f.call('POST', '/api/v1/claim', { token: f.token.worker, body: { owner: 'hw' } })).status,
      ).to.equal(204);
      const got = await f.call('GET', '/api/v1/containers/http-paused', { token: f.token.read });
      expect(got.body.paused).to.equal(true);
      // Serialized whole: the library's summary, pause fields included, as JSON.
      expect(got.body).to.deep.equal(JSON.parse(JSON.stringify(await c.summary())));
      expect(p.body).to.deep.equal(got.body);
      const doc = (await f.call('GET', '/openapi.json', { token: null })).body as {
        paths: Record<string, { post?: { responses: Record<string, unknown> } }>;
      };
      for (const action of ['pause', 'unpause'])
        expect(
          doc.paths[`/api/v1/containers/{name}/actions/${action}`]?.post?.responses,
          action,
        ).to.have.property('200');
      // A long-poll that starts while paused gets the task once unpaused.
      const waiting = f.call('POST', '/api/v1/claim', {
        token: f.token.worker,
        body: { container: 'http-paused', owner: 'hw', waitMs: 10_000 },
      });
      const u = await f.call('POST', '/api/v1/containers/http-paused/actions/unpause');
      expect(u.status).to.equal(200);
      expect(u.body.paused).to.equal(false);
      const claimed = await waiting;
      expect(claimed.status).to.equal(200);
      expect(claimed.body.task.name).to.equal('one');
      expect((await f.call('POST', '/api/v1/containers/nope/actions/pause')).status).to.equal(404);
    });
  });
  describe('pts pause / unpause (the CLI as a process)', function () {
    this.timeout(120_000);
    const pts = (args: string[]) =>
      runPts(args, { cwd: path.join(__dirname, '..'), env: { MONGODB_URI: db.uri, USER: 'tester' } });

    it('pauses, shows it in pts status, unpauses (idempotent); pts delete of a missing task still fails', async function () {
      const client = createClient({ connection: db.connection });
      const c = await client.getOrCreateTaskContainer('cli-paused');
      await c.addTasks([{ name: 'step' }]);
      const [paused, missing] = await Promise.all([
        pts(['pause', 'cli-paused']),
        pts(['delete', 'cli-paused', 'nope']),
      ]);
      expect(paused.code, paused.stderr).to.equal(0);
      expect(paused.stdout).to.include('paused cli-paused');
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.include('no task named "nope"');
      const s = (await client.summary('cli-paused'))!;
      expect(s.paused).to.equal(true);
      expect(s.pausedBy).to.equal('cli:tester');
      expect(await client.claimNext({ container: 'cli-paused' })).to.equal(null);
      const [again, status, list] = await Promise.all([
        pts(['pause', 'cli-paused']),
        pts(['status', 'cli-paused']),
        pts(['status', '--prefix', 'cli-paused']),
      ]);
      expect(again.stdout).to.include('was already paused');
      expect(status.stdout).to.match(/cli-paused\s+pending paused/);
      expect(list.stdout).to.match(/pending paused/);
      const un = await pts(['unpause', 'cli-paused', '--json']);
      expect(un.code, un.stderr).to.equal(0);
      expect(JSON.parse(un.stdout).paused).to.equal(false);
      expect((await client.claimNext({ container: 'cli-paused' }))!.task.name).to.equal('step');
    });
  });
});
