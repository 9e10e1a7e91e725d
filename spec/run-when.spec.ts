/**
 * Cleanup steps (`TaskSpec.runWhen`, lib/run-when.ts): the pure rule, then against the real
 * database — through `claimNext`/`TaskLease` with a ManualClock, through `container.run()` with
 * both failure policies — the container's final status, retries of a failed dependency, the
 * crash between a dependency's failure and its cleanup's unblock (repaired by the sweep), the
 * round trips of a failure, and refused input.
 */
import { spawn as spawnProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import mongoose from 'mongoose';
import {
  ManualClock,
  ValidationError,
  createClient,
  deriveContainerStatus,
  runWhenVerdict,
  type Client,
  type PtsEventMap,
  type TaskContainer,
  type TaskLease,
} from '../lib';
import { blockedCauses, initialWaitingOn, releasable, UNDECIDED, verdict, type RunWhen } from '../lib/run-when';
import { CommandCounter, expectConsistent } from './helpers/consistency';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';
import { Out } from '../lib/cli/output';
import { taskLines, taskTable } from '../lib/cli/render';
import { startFixture, type HttpFixture } from './http/support';

describe('runWhen: the rule (lib/run-when.ts, no database)', function () {
  it('verdict: succeeded waits for success, always for any final state, failed for a failure', function () {
    const cases: Array<[RunWhen, Parameters<typeof verdict>[1], string]> = [
      ['succeeded', ['succeeded', 'skipped'], 'run'],
      ['succeeded', ['succeeded', 'running'], 'wait'],
      ['succeeded', ['failed', 'running'], 'blocked'],
      ['succeeded', ['cancelled'], 'blocked'],
      ['always', ['succeeded', 'open'], 'wait'],
      ['always', ['succeeded', 'pending'], 'wait'],
      ['always', ['failed', 'cancelled'], 'run'],
      ['always', ['succeeded', 'skipped'], 'run'],
      ['failed', ['failed', 'running'], 'wait'],
      ['failed', ['failed', 'succeeded'], 'run'],
      ['failed', ['succeeded', 'skipped'], 'skip'],
      ['failed', ['cancelled', 'succeeded'], 'skip'],
    ];
    for (const [rw, outcomes, want] of cases) expect(verdict(rw, outcomes), `${rw} ${outcomes.join(',')}`).to.equal(want);
    expect(runWhenVerdict).to.equal(verdict);
  });

  it('the container status still reports the real failure after a cleanup step succeeded (deriveContainerStatus)', function () {
    const counts = { pending: 0, running: 0, succeeded: 3, failed: 1, skipped: 1, cancelled: 0 };
    expect(deriveContainerStatus(counts, 'running')).to.equal('failed');
    expect(deriveContainerStatus({ ...counts, failed: 0, cancelled: 1 }, 'running')).to.equal('cancelled');
    // a skipped 'failed' step counts as done
    expect(deriveContainerStatus({ ...counts, failed: 0 }, 'running')).to.equal('succeeded');
  });

  it('initialWaitingOn: the marker only for a failed step none of whose dependencies failed', function () {
    const states = new Map([
      ['a', 'failed' as const],
      ['b', 'succeeded' as const],
    ]);
    expect(initialWaitingOn('succeeded', ['a', 'b', 'c'], states)).to.deep.equal(['a', 'c']);
    expect(initialWaitingOn('always', ['a', 'b', 'c'], states)).to.deep.equal(['c']);
    expect(initialWaitingOn('failed', ['a', 'b', 'c'], states)).to.deep.equal(['c']);
    expect(initialWaitingOn('failed', ['b', 'c'], states)).to.deep.equal(['c', UNDECIDED]);
    expect(initialWaitingOn('failed', ['b'], states)).to.deep.equal([UNDECIDED]);
  });

  it('blockedCauses: transitive, a failure wins over a cancellation, a cleanup step is never blocked', function () {
    const pending = [
      { name: 'b', runWhen: 'succeeded' as const, waitingOn: ['a'] },
      { name: 'c', runWhen: 'succeeded' as const, waitingOn: ['b', 'x'] },
      { name: 'd', runWhen: 'succeeded' as const, waitingOn: ['x'] },
      { name: 'e', runWhen: 'always' as const, waitingOn: ['c'] },
      { name: 'f', runWhen: 'succeeded' as const, waitingOn: ['e'] },
    ];
    const states = new Map([
      ['a', 'failed' as const],
      ['x', 'cancelled' as const],
      ['b', 'pending' as const],
      ['c', 'pending' as const],
      ['e', 'pending' as const],
    ]);
    const causes = blockedCauses(pending, states);
    expect(Object.fromEntries(causes)).to.deep.equal({ b: 'failed', c: 'failed', d: 'cancelled' });
    expect(releasable(pending.map((p) => ({ ...p, dependsOn: p.waitingOn })), states).map((r) => [r.name, r.verdict])).to.deep.equal([['e', 'run']]);
    // halted (fail-fast): every pending 'succeeded' step is blocked by a failure
    expect(blockedCauses([{ name: 'r', runWhen: 'succeeded', waitingOn: [] }], new Map(), true).get('r')).to.equal('failed');
  });
});

describe('runWhen: cleanup steps against the database', function () {
  this.timeout(60_000);
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let clock: ManualClock;
  let seq = 0;

  before(async function () {
    conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    client = createClient({ connection: conn, clock, leaseMs: 60_000, workerId: 'rw' });
    await client.ensureIndexes();
  });
  after(async function () {
    await client?.close();
    await conn?.close();
  });

  const raw = () => conn.collection('pts_tasks');

  async function claim(c: TaskContainer, name: string): Promise<TaskLease> {
    const l = await client.claimNext({ container: c.name(), names: [name] }, { owner: 'w' });
    expect(l, `claim ${name}`).to.not.equal(null);
    return l!;
  }
  async function state(c: TaskContainer, name: string): Promise<string | undefined> {
    return (await c.getTask(name))?.state();
  }
  async function waiting(c: TaskContainer, name: string): Promise<string[]> {
    return (await c.getTask(name))!.toJSON().waitingOn;
  }
  async function container(tasks: Parameters<TaskContainer['addTasks']>[0], failurePolicy: 'continue' | 'fail-fast' = 'continue'): Promise<TaskContainer> {
    const c = await client.getOrCreateTaskContainer(`rw ${++seq}`, { failurePolicy });
    await c.addTasks(tasks);
    return c;
  }

  it("'always' runs once every dependency is final, after a failure too; the container still ends failed", async function () {
    const c = await container([
      { name: 'a', maxRetries: 0 },
      { name: 'b' },
      { name: 'cleanup', dependsOn: ['a', 'b'], runWhen: 'always' },
    ]);
    expect((await c.getTask('cleanup'))!.toJSON().runWhen).to.equal('always');
    expect((await c.getTask('a'))!.toJSON().runWhen).to.equal('succeeded');
    await (await claim(c, 'a')).fail(new Error('boom'));
    expect(await state(c, 'a')).to.equal('failed');
    expect(await waiting(c, 'cleanup')).to.deep.equal(['b']);
    expect(await client.claimNext({ container: c.name(), names: ['cleanup'] }, { owner: 'w' })).to.equal(null);
    await (await claim(c, 'b')).succeed();
    expect(await waiting(c, 'cleanup')).to.deep.equal([]);
    const l = await claim(c, 'cleanup');
    await l.succeed({ released: true });
    const s = await c.summary();
    expect(s.status).to.equal('failed');
    expect(s.counts).to.include({ failed: 1, succeeded: 2, pending: 0 });
    await expectConsistent(c);
  });

  it("'failed' runs only after a failure; without one it is skipped (bypass, task:skipped)", async function () {
    const events: Array<PtsEventMap['task:skipped']> = [];
    const on = (e: PtsEventMap['task:skipped']) => events.push(e);
    client.on('task:skipped', on);
    try {
      const ok = await container([{ name: 'a' }, { name: 'b' }, { name: 'report', dependsOn: ['a', 'b'], runWhen: 'failed' }]);
      expect(await waiting(ok, 'report'), 'the marker is not shown').to.deep.equal(['a', 'b']);
      await (await claim(ok, 'a')).succeed();
      expect(await state(ok, 'report')).to.equal('pending');
      await (await claim(ok, 'b')).succeed();
      expect(await state(ok, 'report')).to.equal('skipped');
      expect(events.map((e) => `${e.container}/${e.task.name}`)).to.deep.equal([`${ok.name()}/report`]);
      expect((await ok.summary()).status).to.equal('succeeded');
      await expectConsistent(ok);

      // Added after its dependencies all ended without a failure: skipped at once, with its event.
      await ok.addTasks([{ name: 'late-report', dependsOn: ['a'], runWhen: 'failed' }]);
      expect(await state(ok, 'late-report')).to.equal('skipped');
      expect(events.map((e) => e.task.name)).to.deep.equal(['report', 'late-report']);

      const bad = await container([{ name: 'a', maxRetries: 0 }, { name: 'b' }, { name: 'report', dependsOn: ['a', 'b'], runWhen: 'failed' }]);
      await (await claim(bad, 'a')).fail(new Error('boom'));
      expect(await waiting(bad, 'report'), 'decided to run, still waits for b').to.deep.equal(['b']);
      await (await claim(bad, 'b')).succeed();
      await (await claim(bad, 'report')).succeed();
      expect((await bad.summary()).status).to.equal('failed');
      await expectConsistent(bad);
    } finally {
      client.off('task:skipped', on);
    }
  });

  it('cancel by name of the step a cleanup step waits behind releases it at once (nothing else can move)', async function () {
    const c = await container([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }, { name: 'unlock', dependsOn: ['b'], runWhen: 'always' }]);
    await c.cancel('a');
    expect(await waiting(c, 'unlock'), 'b can never run: released').to.deep.equal([]);
    await (await claim(c, 'unlock')).succeed();
    expect((await c.summary()).status).to.equal('cancelled');
  });

  it('a cancelled dependency: always runs, failed is skipped (cancelling is not failing), the container ends cancelled', async function () {
    const c = await container([
      { name: 'a' },
      { name: 'always', dependsOn: ['a'], runWhen: 'always' },
      { name: 'onfail', dependsOn: ['a'], runWhen: 'failed' },
      { name: 'next', dependsOn: ['a'] },
    ]);
    await c.cancel('a');
    expect(await state(c, 'onfail')).to.equal('skipped');
    expect(await waiting(c, 'always')).to.deep.equal([]);
    expect(await waiting(c, 'next')).to.deep.equal(['a']);
    await (await claim(c, 'always')).succeed();
    await client.recoverStale({ container: c.name() });
    const s = await c.summary();
    expect(s.counts).to.include({ cancelled: 1, succeeded: 1, skipped: 1, pending: 1 });
    expect(s.status).to.equal('cancelled');
  });

  it('a retried dependency is waited on again by pending cleanup steps; a failed step re-decides', async function () {
    const c = await container([
      { name: 'a', maxRetries: 0 },
      { name: 'always', dependsOn: ['a'], runWhen: 'always' },
      { name: 'onfail', dependsOn: ['a'], runWhen: 'failed' },
    ]);
    await (await claim(c, 'a')).fail(new Error('boom'));
    expect(await waiting(c, 'always')).to.deep.equal([]);
    expect(await waiting(c, 'onfail')).to.deep.equal([]);
    await c.retry('a');
    expect(await waiting(c, 'always')).to.deep.equal(['a']);
    expect(await waiting(c, 'onfail')).to.deep.equal(['a']);
    expect((await raw().findOne({ container: c.name(), name: 'onfail' }))!.waitingOn).to.include(UNDECIDED);
    await (await claim(c, 'a')).succeed();
    expect(await state(c, 'onfail'), 'the retry succeeded: nothing failed').to.equal('skipped');
    expect(await waiting(c, 'always')).to.deep.equal([]);
    await (await claim(c, 'always')).succeed();
    expect((await c.summary()).status).to.equal('succeeded');
    await expectConsistent(c);
  });

  it('markSucceeded or skip of a failed dependency: a pending failure step behind it is re-decided (skipped)', async function () {
    const c = await container([{ name: 'a', maxRetries: 0 }, { name: 'report', dependsOn: ['a'], runWhen: 'failed' }, { name: 'unlock', dependsOn: ['a'], runWhen: 'always' }]);
    await (await claim(c, 'a')).fail(new Error('boom'));
    expect(await waiting(c, 'report'), 'decided to run').to.deep.equal([]);
    await c.markSucceeded('a', { fixed: 'by hand' });
    expect(await state(c, 'report'), 'nothing failed any more').to.equal('skipped');
    expect(await waiting(c, 'unlock')).to.deep.equal([]);
    await expectConsistent(c);
    // the same for a skip of the failed dependency
    const d = await container([{ name: 'a', maxRetries: 0 }, { name: 'report', dependsOn: ['a'], runWhen: 'failed' }]);
    await (await claim(d, 'a')).fail(new Error('boom'));
    await d.skip('a');
    expect(await state(d, 'report')).to.equal('skipped');
  });

  it('reset of a cleanup step waits by its rule; reset of all gives a failed step its marker back', async function () {
    const c = await container([
      { name: 'a', maxRetries: 0 },
      { name: 'always', dependsOn: ['a'], runWhen: 'always' },
      { name: 'onfail', dependsOn: ['a'], runWhen: 'failed' },
    ]);
    await (await claim(c, 'a')).fail(new Error('boom'));
    await (await claim(c, 'always')).succeed();
    await (await claim(c, 'onfail')).succeed();
    await c.reset('always');
    expect(await waiting(c, 'always'), 'a is final: nothing to wait on').to.deep.equal([]);
    await c.reset('onfail');
    expect(await waiting(c, 'onfail'), 'a failed: decided to run').to.deep.equal([]);
    await c.reset();
    expect(await waiting(c, 'onfail')).to.deep.equal(['a']);
    expect((await raw().findOne({ container: c.name(), name: 'onfail' }))!.waitingOn).to.deep.equal(['a', UNDECIDED]);
    await expectConsistent(c);
  });

  it('workers elsewhere (claimNext): the last running task succeeding releases a cleanup step behind a blocked one', async function () {
    const c = await container([
      { name: 'a', maxRetries: 0 },
      { name: 'b' },
      { name: 'x', dependsOn: ['a'] },
      { name: 'cleanup', dependsOn: ['x', 'b'], runWhen: 'always' },
    ]);
    const a = await claim(c, 'a');
    const b = await claim(c, 'b');
    await a.fail(new Error('boom'));
    expect(await waiting(c, 'cleanup'), 'b still runs: nothing decided yet').to.deep.equal(['x', 'b']);
    await b.succeed();
    expect(await waiting(c, 'cleanup'), 'x can never run: released').to.deep.equal([]);
    await (await claim(c, 'cleanup')).succeed();
    await client.recoverStale({ container: c.name() });
    const s = await c.summary();
    expect(s.status).to.equal('failed');
    expect(s.counts).to.include({ failed: 1, succeeded: 2, pending: 1 });
  });

  it('a failed step behind a step blocked only by a cancellation is bypassed when the container is stuck, with its event', async function () {
    const c = await container([{ name: 'a' }, { name: 'x', dependsOn: ['a'] }, { name: 'e' }, { name: 'report', dependsOn: ['x'], runWhen: 'failed' }]);
    const skipped: string[] = [];
    const on = (ev: PtsEventMap['task:skipped']) => skipped.push(ev.task.name);
    client.on('task:skipped', on);
    try {
      const e = await claim(c, 'e');
      await c.cancel('a');
      expect(await state(c, 'report')).to.equal('pending');
      await e.succeed();
      expect(await state(c, 'report'), 'x can never run, and only a cancellation holds it: nothing failed').to.equal('skipped');
      expect(skipped).to.deep.equal(['report']);
      expect((await c.summary()).status).to.equal('cancelled');
    } finally {
      client.off('task:skipped', on);
    }
  });

  it('fan-out: a parent whose spawned child failed counts as failed for the cleanup steps behind it', async function () {
    const c = await container([
      { name: 'split' },
      { name: 'unlock', dependsOn: ['split'], runWhen: 'always' },
      { name: 'report', dependsOn: ['split'], runWhen: 'failed' },
    ]);
    const p = await claim(c, 'split');
    await p.spawn([{ name: 'kid', maxRetries: 0 }]);
    await p.succeed();
    expect(await waiting(c, 'report'), 'the parent waits for its child').to.deep.equal(['split']);
    await (await claim(c, 'kid')).fail(new Error('child boom'));
    expect(await waiting(c, 'unlock')).to.deep.equal([]);
    expect(await waiting(c, 'report'), 'decided to run: the child failed').to.deep.equal([]);
    expect(await state(c, 'report')).to.equal('pending');
  });

  it('crash between a failure and the cleanup unblock: the sweep repairs it (and decides a stranded failed step)', async function () {
    const c = await container([
      { name: 'a', maxRetries: 0 },
      { name: 'b' },
      { name: 'always', dependsOn: ['a'], runWhen: 'always' },
      { name: 'onfail', dependsOn: ['b'], runWhen: 'failed' },
    ]);
    await (await claim(c, 'a')).fail(new Error('boom'));
    await (await claim(c, 'b')).succeed();
    // The state a process leaves when it dies right after the task write: the failure (and the
    // success) stored, the cleanup steps' waitingOn never updated.
    await raw().updateOne({ container: c.name(), name: 'always' }, { $set: { waitingOn: ['a'] } });
    // (onfail was bypassed when b succeeded: put it back as if the process died before the bypass;
    // the sweep also repairs the counters.)
    await raw().updateOne({ container: c.name(), name: 'onfail' }, { $set: { state: 'pending', waitingOn: [UNDECIDED], endedAt: null } });
    expect(await client.claimNext({ container: c.name(), names: ['always'] }, { owner: 'w' })).to.equal(null);
    const report = await client.recoverStale({ container: c.name() });
    expect(report.unblocked).to.be.at.least(2);
    expect(await waiting(c, 'always')).to.deep.equal([]);
    expect(await state(c, 'onfail')).to.equal('skipped');
    await (await claim(c, 'always')).succeed();
    expect((await c.summary()).status).to.equal('failed');
  });

  it('real crash: the worker holding the dependency is SIGKILLed; its lease expires to failed and the cleanup step runs', async function () {
    this.timeout(120_000);
    const name = `rw crash ${++seq}`;
    const c = await client.getOrCreateTaskContainer(name);
    await c.addTasks([{ name: 'a', maxRetries: 0 }, { name: 'unlock', dependsOn: ['a'], runWhen: 'always' }]);
    const marker = path.join(os.tmpdir(), `pts-run-when-${process.pid}-${seq}`);
    const child = spawnProcess(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'run-when-worker.ts'), db.uri, name, 'a', marker], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
    const untrack = trackResource('run-when crash worker', () => child.kill('SIGKILL'));
    try {
      for (let i = 0; !fs.existsSync(marker); i++) {
        if (i > 1200) throw new Error(`the worker never claimed; stderr: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(fs.readFileSync(marker, 'utf8')).to.equal('claimed');
      child.kill('SIGKILL');
      expect(await exited).to.equal('SIGKILL');
    } finally {
      untrack();
      fs.rmSync(marker, { force: true });
    }
    expect(await state(c, 'a')).to.equal('running');
    expect(await waiting(c, 'unlock')).to.deep.equal(['a']);
    // The dead worker's lease (taken on the real clock) runs out: the test clock jumps past it and
    // the sweep fails a for good.
    clock.set(Math.max(clock.now().getTime(), Date.now()) + 61_000);
    const report = await client.recoverStale({ container: name });
    expect(report.recovered.map((r) => [r.task, r.state])).to.deep.equal([['a', 'failed']]);
    expect(await waiting(c, 'unlock')).to.deep.equal([]);
    const ran: string[] = [];
    const res = await c.run(async (ctx) => void ran.push(ctx.name), { pollIntervalMs: 20 });
    expect(ran).to.deep.equal(['unlock']);
    expect(res.status).to.equal('failed');
  });

  it('round trips: a failure without cleanup dependents writes nothing more; with them, one updateMany on the waitingOn index', async function () {
    const counter = new CommandCounter(conn.getClient() as never);
    try {
      const failOnce = async (c: TaskContainer): Promise<Array<{ name: string; command: Record<string, unknown> }>> => {
        const l = await claim(c, 'a');
        counter.reset();
        await l.fail(new Error('boom'));
        return counter.commands.filter((x) => x.collection === 'pts_tasks');
      };
      // A stuck container without cleanup steps: the fail write, then finalizeIfBlocked's reads as before (no extra read).
      const stuck = await failOnce(await container([{ name: 'a', maxRetries: 0 }, { name: 'x', dependsOn: ['a'] }]));
      expect(stuck.map((x) => x.name)).to.deep.equal(['findAndModify', 'find', 'find', 'find']);
      // 'y' keeps both containers movable, so the finalize check stops at its first read.
      const plain = await failOnce(await container([{ name: 'a', maxRetries: 0 }, { name: 'x', dependsOn: ['a'] }, { name: 'y' }]));
      const withCleanup = await failOnce(await container([{ name: 'a', maxRetries: 0 }, { name: 'x', dependsOn: ['a'], runWhen: 'always' }, { name: 'y' }]));
      const extra = withCleanup.length - plain.length;
      expect(extra, `${plain.map((x) => x.name).join(',')} vs ${withCleanup.map((x) => x.name).join(',')}`).to.equal(1);
      const pull = withCleanup.find((x) => x.name === 'update' && JSON.stringify(x.command).includes('runWhen'));
      expect(pull, 'the pull names the failed task in its filter').to.not.equal(undefined);
      expect(JSON.stringify(pull!.command)).to.include('"waitingOn":"a"');
    } finally {
      counter.stop();
    }
  });

  it('refuses a bad runWhen with a ValidationError and writes nothing', async function () {
    const c = await client.getOrCreateTaskContainer(`rw bad ${++seq}`);
    for (const spec of [
      { name: 'x', dependsOn: [], runWhen: 'sometimes' },
      { name: 'x', runWhen: 'failed' },
      { name: 'x', runWhen: 'always' },
      { name: 'x', runWhen: 3 },
    ]) {
      let err: unknown;
      try {
        await c.addTasks([{ name: 'd' }, spec as never]);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(spec)).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
      expect((err as ValidationError).details?.path).to.match(/runWhen$/);
    }
    expect(await c.getTasks()).to.have.length(0);
  });

  describe('HTTP (TaskSpec.runWhen over the worker protocol)', function () {
    let f: HttpFixture;
    before(async function () {
      f = await startFixture(db);
    });
    after(async function () {
      await f?.close();
    });

    it('accepts runWhen, shows it on task records, and a failure over /fail releases the cleanup step for /claim', async function () {
      expect((await f.call('PUT', '/api/v1/containers/rw-http', { body: {} })).status).to.equal(201);
      const add = await f.call('POST', '/api/v1/containers/rw-http/tasks', {
        body: { tasks: [{ name: 'a', maxRetries: 0 }, { name: 'unlock', dependsOn: ['a'], runWhen: 'always' }] },
      });
      expect(add.status).to.equal(200);
      expect(add.body.tasks.map((t: { runWhen: string }) => t.runWhen)).to.deep.equal(['succeeded', 'always']);
      const w = { token: f.token.worker };
      const c1 = await f.call('POST', '/api/v1/claim', { ...w, body: { container: 'rw-http', owner: 'hw' } });
      expect(c1.body.task.name).to.equal('a');
      const fail = await f.call('POST', '/api/v1/containers/rw-http/tasks/a/fail', { ...w, body: { token: c1.body.token, error: { message: 'boom' } } });
      expect(fail.status).to.equal(200);
      const c2 = await f.call('POST', '/api/v1/claim', { ...w, body: { container: 'rw-http', owner: 'hw' } });
      expect(c2.body.task.name).to.equal('unlock');
      expect(c2.body.task.runWhen).to.equal('always');
      await f.call('POST', '/api/v1/containers/rw-http/tasks/unlock/succeed', { ...w, body: { token: c2.body.token } });
      expect((await f.call('GET', '/api/v1/containers/rw-http', { token: f.token.read })).body.status).to.equal('failed');
    });

    it('refuses a bad runWhen with 400 and writes nothing', async function () {
      await f.call('PUT', '/api/v1/containers/rw-http-bad', { body: {} });
      for (const task of [
        { name: 'x', dependsOn: ['d'], runWhen: 'sometimes' },
        { name: 'x', runWhen: 'failed' },
      ]) {
        const r = await f.call('POST', '/api/v1/containers/rw-http-bad/tasks', { body: { tasks: [{ name: 'd' }, task] } });
        expect(r.status, JSON.stringify(task)).to.equal(400);
        expect(r.body.error.code).to.equal('PTS_VALIDATION');
      }
      const list = await f.call('GET', '/api/v1/containers/rw-http-bad/tasks', { token: f.token.read });
      expect(list.body.items, JSON.stringify(list.body)).to.deep.equal([]);
    });
  });

  it('CLI: the task line and the status table show the badge of a cleanup step', async function () {
    const c = await container([{ name: 'a' }, { name: 'unlock', dependsOn: ['a'], runWhen: 'always' }, { name: 'report', dependsOn: ['a'], runWhen: 'failed' }]);
    const tasks = (await c.getTasks()).map((t) => t.toJSON());
    let text = '';
    const out = new Out({ write: (s: string) => ((text += s), true), isTTY: false } as unknown as NodeJS.WriteStream);
    const lines = taskLines(out, tasks);
    expect(lines[0]).to.not.include('[');
    expect(lines[1]).to.include('[always]');
    expect(lines[2]).to.include('[on failure]');
    taskTable(out, tasks);
    const rows = text.trim().split('\n');
    expect(rows[0]).to.match(/\bRUNS\b/);
    expect(rows[1]).to.include('on success');
    expect(rows[2]).to.include('always');
    expect(rows[3]).to.include('on failure');
  });

  describe('container.run()', function () {
    let live: Client;
    before(function () {
      live = createClient({ connection: conn, leaseMs: 5000, workerId: 'rw-run' });
    });

    it("'continue': a cleanup step behind a step blocked by a failure runs before the run finishes; status failed", async function () {
      const c = await live.getOrCreateTaskContainer(`rw run ${++seq}`);
      await c.addTasks([
        { name: 'a', maxRetries: 0 },
        { name: 'b', dependsOn: ['a'] },
        { name: 'cleanup', dependsOn: ['b'], runWhen: 'always' },
        { name: 'report', dependsOn: ['b'], runWhen: 'failed' },
      ]);
      const ran: string[] = [];
      const res = await c.run(
        async (ctx) => {
          ran.push(ctx.name);
          if (ctx.name === 'a') throw new Error('boom');
        },
        { pollIntervalMs: 20 },
      );
      expect(ran.sort()).to.deep.equal(['a', 'cleanup', 'report']);
      expect(res.status).to.equal('failed');
      expect((await c.getTask('b'))!.state()).to.equal('pending');
      await expectConsistent(c);
    });

    it("'fail-fast': stops claiming steps but still runs the cleanup steps, then fails the container", async function () {
      const c = await live.getOrCreateTaskContainer(`rw fail-fast ${++seq}`, { failurePolicy: 'fail-fast' });
      await c.addTasks([
        { name: 'bad', maxRetries: 0 },
        { name: 'later', dependsOn: ['bad'] },
        { name: 'other' },
        { name: 'more', dependsOn: ['other'] },
        { name: 'cleanup', dependsOn: ['later', 'more'], runWhen: 'always' },
        { name: 'notify', dependsOn: ['bad'], runWhen: 'failed' },
      ]);
      const ran: string[] = [];
      const res = await c.run(
        async (ctx) => {
          ran.push(ctx.name);
          if (ctx.name === 'bad') throw new Error('boom');
        },
        { concurrency: 1, pollIntervalMs: 20 },
      );
      expect(ran[0]).to.equal('bad');
      expect(ran).to.include.members(['cleanup', 'notify']);
      expect(ran).to.not.include('later');
      expect(ran).to.not.include('more');
      expect(res.status).to.equal('failed');
      expect((await c.getTask('cleanup'))!.state()).to.equal('succeeded');
    });

    it('all steps succeed: the failure step is skipped, the always step runs, status succeeded', async function () {
      const c = await live.getOrCreateTaskContainer(`rw happy ${++seq}`);
      await c.addTasks([
        { name: 'a' },
        { name: 'cleanup', dependsOn: ['a'], runWhen: 'always' },
        { name: 'report', dependsOn: ['a'], runWhen: 'failed' },
      ]);
      const ran: string[] = [];
      const res = await c.run(async (ctx) => void ran.push(ctx.name), { pollIntervalMs: 20 });
      expect(ran).to.deep.equal(['a', 'cleanup']);
      expect(res.status).to.equal('succeeded');
      expect((await c.getTask('report'))!.state()).to.equal('skipped');
    });
  });
});
