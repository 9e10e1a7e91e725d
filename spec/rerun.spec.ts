/**
 * Re-run from a step (`container.rerun`) and "mark succeeded with this result"
 * (`container.markSucceeded`), against the real database: the plan on a diamond with an
 * independent branch, a dry run that only reads (command monitoring), an apply that resets exactly
 * the plan and leaves every other task byte-for-byte alone, a running task in the plan (its worker
 * loses the lease), claims racing the re-run, counters consistent after each, and the HTTP route
 * and CLI command over the same calls.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { BSON, type Document } from 'mongodb';
import mongoose from 'mongoose';
import {
  InvalidTransitionError,
  LeaseLostError,
  ManualClock,
  NotFoundError,
  ValidationError,
  createClient,
  type Client,
  type PtsEventName,
  type TaskContainer,
  type TaskLease,
} from '../lib';
import { CommandCounter, expectConsistent } from './helpers/consistency';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';
import { startFixture, type HttpFixture } from './http/support';

const ROOT = path.join(__dirname, '..');

/** `pts …` as a real process against the spec's database. */
function pts(uri: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'lib', 'cli', 'main.ts'), ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', MONGODB_URI: uri, PTS_CONNECT_TIMEOUT_MS: '1500' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const untrack = trackResource(`pts ${args.join(' ')}`, () => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      untrack();
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 *   A ──► B ──► D ──► Z
 *   └───► C ──┘       ▲
 *   X ──► Y ──────────┘      (Z depends on D and on the independent branch's Y)
 *   P ──► Q                  (a branch nothing of the diamond touches)
 */
const GRAPH = [
  { name: 'A' },
  { name: 'B', dependsOn: ['A'] },
  { name: 'C', dependsOn: ['A'] },
  { name: 'D', dependsOn: ['B', 'C'] },
  { name: 'X' },
  { name: 'Y', dependsOn: ['X'] },
  { name: 'Z', dependsOn: ['D', 'Y'] },
  { name: 'P' },
  { name: 'Q', dependsOn: ['P'] },
];
const NAMES = GRAPH.map((t) => t.name);

describe('rerun from a step, mark succeeded', function () {
  this.timeout(60_000);
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let clock: ManualClock;
  let counter: CommandCounter;
  let seq = 0;
  let events: Array<{ event: PtsEventName; task: string | null }> = [];

  before(async function () {
    conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    clock = new ManualClock(Date.parse('2026-06-01T00:00:00Z'));
    client = createClient({ connection: conn, clock, leaseMs: 60_000, workerId: 'rerun-spec' });
    await client.ensureIndexes();
    counter = new CommandCounter(conn.getClient() as never);
    for (const e of ['task:reset', 'task:succeeded', 'container:status'] as const) {
      client.on(e, (p: unknown) => {
        const t = (p as { task?: { name: string } }).task;
        events.push({ event: e, task: t ? t.name : null });
      });
    }
  });
  after(async function () {
    counter.stop();
    await client?.close();
    await conn?.close();
  });

  const raw = (container: string, name: string): Promise<Document | null> =>
    conn.collection('pts_tasks').findOne({ container, name });
  const bytes = (d: Document | null): string => Buffer.from(BSON.serialize(d!)).toString('hex');

  async function fresh(label: string, specs: Array<{ name: string; dependsOn?: string[] }> = GRAPH): Promise<TaskContainer> {
    const c = await client.getOrCreateTaskContainer(`${label} #${++seq}`);
    await c.addTasks(specs.map((s) => ({ ...s, maxRetries: 0, data: { n: s.name } })));
    return c;
  }

  const claim = (c: TaskContainer, names?: string[]): Promise<TaskLease | null> =>
    client.claimNext({ container: c.name(), ...(names ? { names } : {}) }, { owner: 'w' });

  /** Claims and succeeds ready tasks until none is left; the names in the order they ran. */
  async function drain(c: TaskContainer): Promise<string[]> {
    const ran: string[] = [];
    for (let l = await claim(c); l; l = await claim(c)) {
      ran.push(l.task.name);
      await l.succeed({ ran: l.task.name });
    }
    return ran;
  }

  async function states(c: TaskContainer): Promise<Record<string, string>> {
    return Object.fromEntries((await c.getTasks()).map((t) => [t.name(), t.state()]));
  }

  describe('the plan', function () {
    it('is the step and everything that depends on it, transitively, in dependency order; the rest is kept', async function () {
      const c = await fresh('plan');
      await drain(c);
      const fromA = await c.rerun('A', { dryRun: true });
      expect(fromA.step).to.equal('A');
      expect(fromA.dryRun).to.equal(true);
      expect(fromA.downstream).to.equal(true);
      expect([...fromA.reset].sort()).to.deep.equal(['A', 'B', 'C', 'D', 'Z']);
      expect(fromA.reset[0]).to.equal('A');
      const at = (n: string) => fromA.reset.indexOf(n);
      expect(at('B')).to.be.lessThan(at('D'));
      expect(at('C')).to.be.lessThan(at('D'));
      expect(at('D')).to.be.lessThan(at('Z'));
      expect(fromA.kept).to.deep.equal(['X', 'Y', 'P', 'Q']);
      expect(fromA.interrupted).to.deep.equal([]);

      const fromB = await c.rerun('B', { dryRun: true });
      expect(fromB.reset).to.deep.equal(['B', 'D', 'Z']);
      expect(fromB.kept).to.deep.equal(['A', 'C', 'X', 'Y', 'P', 'Q']);

      const fromY = await c.rerun('Y', { dryRun: true });
      expect(fromY.reset).to.deep.equal(['Y', 'Z']);

      const onlyB = await c.rerun('B', { downstream: false, dryRun: true });
      expect(onlyB.reset).to.deep.equal(['B']);
      expect(onlyB.kept).to.deep.equal(NAMES.filter((n) => n !== 'B'));
    });

    it('a dry run is one read and writes nothing', async function () {
      const c = await fresh('dry run');
      await drain(c);
      const before = new Map<string, string>();
      for (const n of NAMES) before.set(n, bytes(await raw(c.name(), n)));
      const summary = await c.summary();
      events = [];
      counter.reset();
      const plan = await c.rerun('B', { dryRun: true });
      expect(counter.commands.map((x) => [x.name, x.collection])).to.deep.equal([['find', 'pts_tasks']]);
      expect(plan.reset).to.deep.equal(['B', 'D', 'Z']);
      for (const n of NAMES) expect(bytes(await raw(c.name(), n)), `task ${n} changed`).to.equal(before.get(n));
      expect((await c.summary()).status).to.equal(summary.status);
      expect(events).to.deep.equal([]);
    });

    it('an unknown step, bad options: typed errors and nothing written', async function () {
      const c = await fresh('refusals');
      await drain(c);
      const before = bytes(await raw(c.name(), 'B'));
      counter.reset();
      const unknown = await c.rerun('nope').catch((e: unknown) => e);
      expect(unknown).to.be.instanceOf(NotFoundError);
      expect((unknown as NotFoundError).details).to.include({ task: 'nope', op: 'rerun' });
      expect(counter.names().filter((n) => n !== 'find'), 'writes after an unknown step').to.deep.equal([]);
      for (const bad of [{ dryRun: 'yes' }, { downstream: 1 }, { down: true }, null]) {
        const err = await c.rerun('B', bad as never).catch((e: unknown) => e);
        expect(err, JSON.stringify(bad)).to.be.instanceOf(ValidationError);
      }
      expect(await c.rerun('' as never).catch((e: unknown) => e)).to.be.instanceOf(ValidationError);
      expect(bytes(await raw(c.name(), 'B'))).to.equal(before);
      expect((await c.summary()).status).to.equal('succeeded');
    });
  });

  describe('applying it', function () {
    it('resets exactly the plan (one write per task, one counter write), waits again, runs only the plan again', async function () {
      const c = await fresh('apply');
      await drain(c);
      expect((await c.summary()).status).to.equal('succeeded');
      const kept = new Map<string, string>();
      for (const n of ['A', 'C', 'X', 'Y', 'P', 'Q']) kept.set(n, bytes(await raw(c.name(), n)));
      events = [];
      counter.reset();
      const plan = await c.rerun('B');
      const writes = counter.commands.filter((x) => x.name !== 'find');
      expect(writes.filter((x) => x.collection === 'pts_tasks').map((x) => x.name), 'task writes').to.deep.equal([
        'findAndModify',
        'findAndModify',
        'findAndModify',
      ]);
      // the counter $inc, then the status change it implies (succeeded → running)
      expect(writes.filter((x) => x.collection === 'pts_containers').map((x) => x.name)).to.deep.equal(['findAndModify', 'findAndModify']);
      expect(plan).to.deep.equal({ step: 'B', downstream: true, dryRun: false, reset: ['B', 'D', 'Z'], interrupted: [], kept: ['A', 'C', 'X', 'Y', 'P', 'Q'] });
      for (const [n, b] of kept) expect(bytes(await raw(c.name(), n)), `kept task ${n} changed`).to.equal(b);
      const st = await states(c);
      expect(st).to.deep.equal({ A: 'succeeded', B: 'pending', C: 'succeeded', D: 'pending', X: 'succeeded', Y: 'succeeded', Z: 'pending', P: 'succeeded', Q: 'succeeded' });
      const rec = async (n: string) => (await c.getTask(n))!.toJSON();
      expect((await rec('B')).waitingOn).to.deep.equal([]);
      expect((await rec('D')).waitingOn).to.deep.equal(['B']);
      expect((await rec('Z')).waitingOn).to.deep.equal(['D']);
      expect((await rec('D')).result).to.equal(null);
      expect((await rec('D')).percentageComplete).to.equal(0);
      expect(events.filter((e) => e.event === 'task:reset').map((e) => e.task)).to.deep.equal(['B', 'D', 'Z']);
      expect(events.filter((e) => e.event === 'container:status')).to.have.length(1);
      const s = await c.summary();
      expect(s.status).to.equal('running');
      await expectConsistent(c);

      expect(await drain(c), 'only the plan runs again, in dependency order').to.deep.equal(['B', 'D', 'Z']);
      expect((await c.summary()).status).to.equal('succeeded');
      await expectConsistent(c);
    });

    it('downstream: false resets just the step; its dependents keep their state', async function () {
      const c = await fresh('only the step');
      await drain(c);
      const plan = await c.rerun('C', { downstream: false });
      expect(plan.reset).to.deep.equal(['C']);
      expect((await states(c)).C).to.equal('pending');
      expect((await states(c)).D).to.equal('succeeded');
      await expectConsistent(c);
      expect(await drain(c)).to.deep.equal(['C']);
    });

    it('resets tasks whatever their state: failed, cancelled, skipped, pending; a failed container runs again', async function () {
      const c = await fresh('any state');
      const a = (await claim(c, ['A']))!;
      await a.succeed('a');
      await (await claim(c, ['B']))!.fail(new Error('broken')); // maxRetries 0: failed for good
      await c.skip('C');
      await c.cancel('P');
      await drain(c); // X, Y run; D, Z stay pending behind B
      await client.recoverStale({ container: c.name() }); // finalizes: blocked by B
      expect((await c.summary()).status).to.equal('failed');
      const plan = await c.rerun('A');
      expect(plan.reset).to.deep.equal(['A', 'B', 'C', 'D', 'Z']);
      const st = await states(c);
      for (const n of plan.reset) expect(st[n], n).to.equal('pending');
      expect(st.P).to.equal('cancelled');
      expect((await c.getTask('B'))!.toJSON().failures, 'failure history kept').to.have.length(1);
      expect((await c.summary()).status).to.equal('running');
      await expectConsistent(c);
      expect(await drain(c)).to.deep.equal(['A', 'B', 'C', 'D', 'Z']);
    });

    it("keeps a cleanup step's run condition: an 'always' step waits only on what holds it back", async function () {
      const c = await client.getOrCreateTaskContainer(`cleanup #${++seq}`);
      await c.addTasks([
        { name: 'F', maxRetries: 0 },
        { name: 'S' },
        { name: 'K', dependsOn: ['F', 'S'], runWhen: 'always' },
      ]);
      await (await claim(c, ['F']))!.fail(new Error('broken'));
      await drain(c); // S, then K (always: F is final)
      expect((await states(c)).K).to.equal('succeeded');
      const plan = await c.rerun('S');
      expect(plan.reset).to.deep.equal(['S', 'K']);
      // F failed and is not re-run: it does not hold back an 'always' step; S does, until it reruns.
      expect((await c.getTask('K'))!.toJSON().waitingOn).to.deep.equal(['S']);
      await expectConsistent(c);
      expect(await drain(c)).to.deep.equal(['S', 'K']);
    });

    it('a dependency outside the plan whose spawned children are not done still holds the planned task back', async function () {
      const c = await client.getOrCreateTaskContainer(`spawned #${++seq}`);
      await c.addTasks([{ name: 'P' }, { name: 'S' }, { name: 'D', dependsOn: ['P', 'S'] }]);
      const p = (await claim(c, ['P']))!;
      await p.spawn([{ name: 'P-child' }]);
      await p.succeed('p');
      await (await claim(c, ['S']))!.succeed('s');
      expect((await c.getTask('D'))!.toJSON().waitingOn, 'held back by the open child').to.deep.equal(['P']);
      const plan = await c.rerun('S');
      expect(plan.reset).to.deep.equal(['S', 'D']);
      expect(plan.kept).to.include.members(['P', 'P-child']);
      expect([...(await c.getTask('D'))!.toJSON().waitingOn].sort()).to.deep.equal(['P', 'S']);
      await expectConsistent(c);
      const ran = await drain(c);
      expect(ran.indexOf('D'), 'D runs last, after the child').to.equal(ran.length - 1);
      expect([...ran].sort()).to.deep.equal(['D', 'P-child', 'S']);
    });

    it('interrupts a running task of the plan: its worker loses the lease, nothing half-applied', async function () {
      const c = await fresh('running');
      await (await claim(c, ['A']))!.succeed('a');
      await (await claim(c, ['B']))!.succeed('b');
      const cLease = (await claim(c, ['C']))!; // C running
      expect((await c.rerun('B', { dryRun: true })).interrupted).to.deep.equal([]);
      const planA = await c.rerun('A', { dryRun: true });
      expect(planA.interrupted).to.deep.equal(['C']);
      const plan = await c.rerun('A');
      expect(plan.interrupted).to.deep.equal(['C']);
      const cNow = (await c.getTask('C'))!.toJSON();
      expect(cNow.state).to.equal('pending');
      expect(cNow.lease).to.equal(null);
      expect(cNow.waitingOn).to.deep.equal(['A']);
      expect(await cLease.heartbeat().catch((e: unknown) => e)).to.be.instanceOf(LeaseLostError);
      expect(await cLease.succeed('late').catch((e: unknown) => e)).to.be.instanceOf(LeaseLostError);
      expect((await c.getTask('C'))!.toJSON().result).to.equal(null);
      const s = await c.summary();
      expect(s.counts.running).to.equal(0);
      await expectConsistent(c);
      const ran = await drain(c);
      expect([...ran].sort()).to.deep.equal(['A', 'B', 'C', 'D', 'P', 'Q', 'X', 'Y', 'Z']);
      expect(ran.indexOf('A')).to.be.lessThan(ran.indexOf('C'));
      expect((await c.getTask('C'))!.toJSON().result).to.deep.equal({ ran: 'C' });
      expect((await c.summary()).status).to.equal('succeeded');
    });

    it('claims racing the re-run: each planned task ends either reset (its old lease lost) or claimed afresh, never half', async function () {
      for (let round = 0; round < 12; round++) {
        const c = await fresh(`race ${round}`, [{ name: 'S' }, { name: 'T', dependsOn: ['S'] }, { name: 'U', dependsOn: ['T'] }, { name: 'V' }]);
        // Round by round a different starting point: S pending (ready), running, or succeeded.
        const early = round % 3 === 1 ? await claim(c, ['S']) : null;
        if (round % 3 === 2) await drain(c);
        const claims: Array<Promise<TaskLease | null>> = [];
        const rerun = c.rerun('S');
        for (let i = 0; i < 3; i++) claims.push(claim(c));
        const [plan, ...leases] = await Promise.all([rerun, ...claims]);
        expect(plan.reset).to.deep.equal(['S', 'T', 'U']);
        const all = [early, ...leases].filter((l): l is TaskLease => l !== null);
        for (const name of ['S', 'T', 'U']) {
          const t = (await c.getTask(name))!.toJSON();
          const mine = all.filter((l) => l.task.name === name);
          if (t.state === 'pending') {
            expect(t.lease, `${name} pending without a lease`).to.equal(null);
            for (const l of mine) expect(await l.heartbeat().catch((e: unknown) => e), `${name}: old lease still valid`).to.be.instanceOf(LeaseLostError);
          } else {
            expect(t.state, `${name} (round ${round})`).to.equal('running');
            expect(name, 'only the step is ready right after a re-run').to.equal('S');
            const holder = mine.filter((l) => l.token === t.lease!.token);
            expect(holder, `${name}: exactly one current lease`).to.have.length(1);
            await holder[0].heartbeat(); // current: accepted
            expect(t.attempts, 'claimed after the reset: a fresh budget').to.equal(1);
            for (const l of mine.filter((x) => x !== holder[0])) expect(await l.heartbeat().catch((e: unknown) => e)).to.be.instanceOf(LeaseLostError);
          }
        }
        expect((await c.getTask('T'))!.toJSON().waitingOn).to.deep.equal(['S']);
        expect((await c.getTask('U'))!.toJSON().waitingOn).to.deep.equal(['T']);
        await expectConsistent(c);
        for (const l of all) await l.release().catch(() => undefined);
        const ran = await drain(c);
        expect(ran.filter((n) => n !== 'V')).to.deep.equal(['S', 'T', 'U']);
        expect((await c.summary()).status).to.equal('succeeded');
      }
    });
  });

  describe('a step that finishes its new run while the plan is still being written', function () {
    it('leaves no dependent waiting on it (the last look pulls it)', async function () {
      const fanOut = Array.from({ length: 40 }, (_, i) => ({ name: `T${i}`, dependsOn: ['S'] }));
      const c = await fresh('finishes early', [{ name: 'S' }, ...fanOut]);
      await drain(c);
      // A worker that takes S the moment the re-run makes it pending, and finishes it at once,
      // while the re-run still has the 40 dependents to write.
      let rerunDone = false;
      let ranAgain = false;
      const worker = (async () => {
        while (!rerunDone) {
          const l = await claim(c, ['S']);
          if (l) {
            await l.succeed('new run');
            ranAgain = true;
            return;
          }
        }
      })();
      counter.reset();
      const plan = await c.rerun('S');
      rerunDone = true;
      await worker;
      expect(plan.reset).to.have.length(41);
      const pulls = counter.commands.filter((x) => x.name === 'update' && JSON.stringify(x.command).includes('$pullAll'));
      const s = (await c.getTask('S'))!.toJSON();
      if (ranAgain) expect(s.state).to.equal('succeeded');
      for (const t of fanOut) {
        const rec = (await c.getTask(t.name))!.toJSON();
        expect(rec.state, t.name).to.equal('pending');
        if (s.state === 'succeeded') expect(rec.waitingOn, `${t.name} waits on a succeeded S`).to.deep.equal([]);
        else expect(rec.waitingOn, t.name).to.deep.equal(['S']);
      }
      // The race this is about happened (S's new run ended before the re-run did); the repair is one write at most.
      expect(ranAgain, 'the worker ran S again during the re-run').to.equal(true);
      expect(pulls.length, 'the last look: one pull at most').to.be.at.most(1);
      await expectConsistent(c);
      expect((await drain(c)).sort()).to.deep.equal(fanOut.map((t) => t.name).sort());
    });
  });

  describe('mark succeeded with this result', function () {
    it('from failed: stores the result, unblocks the dependents, reopens a failed container (one task write)', async function () {
      const c = await fresh('mark');
      await (await claim(c, ['A']))!.succeed('a');
      await (await claim(c, ['B']))!.fail(new Error('broken'));
      await drain(c);
      await client.recoverStale({ container: c.name() });
      expect((await c.summary()).status).to.equal('failed');
      expect((await c.getTask('D'))!.toJSON().waitingOn).to.deep.equal(['B']);
      expect((await c.getTask('B'))!.toJSON().allowedActions).to.include('markSucceeded');
      events = [];
      counter.reset();
      const t = await c.markSucceeded('B', { fixedBy: 'hand', rows: 3 });
      expect(counter.commands.filter((x) => x.collection === 'pts_tasks' && x.name === 'findAndModify')).to.have.length(1);
      expect(t.state()).to.equal('succeeded');
      const rec = t.toJSON();
      expect(rec.result).to.deep.equal({ fixedBy: 'hand', rows: 3 });
      expect(rec.percentageComplete).to.equal(100);
      expect(rec.allowedActions).to.not.include('markSucceeded');
      expect(events.filter((e) => e.event === 'task:succeeded').map((e) => e.task)).to.deep.equal(['B']);
      expect((await c.getTask('D'))!.toJSON().waitingOn).to.deep.equal([]);
      expect((await c.summary()).status).to.equal('running');
      await expectConsistent(c);
      expect(await drain(c)).to.deep.equal(['D', 'Z']);
      expect((await c.summary()).status).to.equal('succeeded');
    });

    it('from pending, cancelled and skipped; refused while running or succeeded, and for bad results, with nothing written', async function () {
      const c = await fresh('mark states', [{ name: 'p' }, { name: 'c' }, { name: 's' }, { name: 'r' }, { name: 'd' }]);
      await c.cancel('c');
      await c.skip('s');
      const r = (await claim(c, ['r']))!;
      await (await claim(c, ['d']))!.succeed('done');
      for (const n of ['p', 'c', 's']) expect((await c.markSucceeded(n, { n })).toJSON().result, n).to.deep.equal({ n });
      for (const n of ['r', 'd', 'p']) {
        const before = bytes(await raw(c.name(), n));
        const err = await c.markSucceeded(n, 'again').catch((e: unknown) => e);
        expect(err, n).to.be.instanceOf(InvalidTransitionError);
        expect((err as InvalidTransitionError).details).to.include({ task: n, op: 'markSucceeded' });
        expect(bytes(await raw(c.name(), n)), `${n} changed`).to.equal(before);
      }
      await r.heartbeat(); // the running task's lease is untouched
      const fresh2 = await client.getOrCreateTaskContainer(`mark bad #${++seq}`);
      await fresh2.addTasks([{ name: 'f' }]);
      await fresh2.cancel('f');
      const before = bytes(await raw(fresh2.name(), 'f'));
      for (const bad of [{ $set: 1 }, { 'a.b': 1 }, '\ud800']) {
        const err = await fresh2.markSucceeded('f', bad).catch((e: unknown) => e);
        expect(err, JSON.stringify(bad)).to.be.instanceOf(ValidationError);
      }
      expect(await fresh2.markSucceeded('nope', 1).catch((e: unknown) => e)).to.be.instanceOf(NotFoundError);
      expect(bytes(await raw(fresh2.name(), 'f'))).to.equal(before);
      await expectConsistent(c);
      await expectConsistent(fresh2);
    });
  });

  describe('HTTP and CLI', function () {
    let f: HttpFixture;
    before(async function () {
      f = await startFixture(db);
    });
    after(async function () {
      await f?.close();
    });

    it('POST …/actions/rerun: the plan with dryRun, applied without; admin scope; 404 and 400', async function () {
      const c = await fresh('http rerun');
      await drain(c);
      const url = `/api/v1/containers/${encodeURIComponent(c.name())}/actions/rerun`;
      const dry = await f.call('POST', url, { body: { task: 'B', dryRun: true } });
      expect(dry.status).to.equal(200);
      expect(dry.body).to.deep.equal({ step: 'B', downstream: true, dryRun: true, reset: ['B', 'D', 'Z'], interrupted: [], kept: ['A', 'C', 'X', 'Y', 'P', 'Q'] });
      expect((await states(c)).B).to.equal('succeeded');
      expect((await f.call('POST', url, { body: { task: 'B' }, token: f.token.read })).status).to.equal(403);
      expect((await f.call('POST', url, { body: { task: 'B' }, token: f.token.worker })).status).to.equal(403);
      expect((await f.call('POST', url, { body: { task: 'nope' } })).status).to.equal(404);
      expect((await f.call('POST', url, { body: { task: 'B', dryRun: 'yes' } })).status).to.equal(400);
      expect((await f.call('POST', url, { body: {} })).status).to.equal(400);
      expect((await states(c)).B).to.equal('succeeded');
      const applied = await f.call('POST', url, { body: { task: 'B', downstream: false } });
      expect(applied.status).to.equal(200);
      expect(applied.body.reset).to.deep.equal(['B']);
      expect(applied.body.dryRun).to.equal(false);
      expect((await states(c)).B).to.equal('pending');
      await expectConsistent(c);
    });

    it('POST …/tasks/:task/mark-succeeded with a result; allowedActions offers it only where the table does', async function () {
      const c = await fresh('http mark');
      await c.cancel('A');
      const base = `/api/v1/containers/${encodeURIComponent(c.name())}/tasks`;
      const one = await f.call('GET', `${base}/A`, { token: f.token.read });
      expect(one.body.allowedActions).to.include('markSucceeded');
      expect((await f.call('POST', `${base}/A/mark-succeeded`, { body: { result: 1 }, token: f.token.read })).status).to.equal(403);
      const r = await f.call('POST', `${base}/A/mark-succeeded`, { body: { result: { fixed: true } } });
      expect(r.status).to.equal(200);
      expect(r.body.task.state).to.equal('succeeded');
      expect(r.body.task.result).to.deep.equal({ fixed: true });
      expect(r.body.task.allowedActions).to.not.include('markSucceeded');
      const again = await f.call('POST', `${base}/A/mark-succeeded`, { body: {} });
      expect(again.status).to.equal(409);
      expect(again.body.error.code).to.equal('PTS_INVALID_TRANSITION');
      expect((await f.call('POST', `${base}/B/mark-succeeded`)).status, 'no body: result null').to.equal(200);
      expect((await c.getTask('B'))!.toJSON().result).to.equal(null);
      expect((await f.call('POST', `${base}/nope/mark-succeeded`, { body: {} })).status).to.equal(404);
      await expectConsistent(c);
    });

    it('pts rerun --from STEP [--dry-run] and pts mark-succeeded --result JSON', async function () {
      const c = await fresh('cli');
      await drain(c);
      const dry = await pts(db.uri, ['rerun', c.name(), '--from', 'B', '--dry-run', '--json']);
      expect(dry.code, dry.stderr).to.equal(0);
      const plan = JSON.parse(dry.stdout);
      expect(plan).to.include({ container: c.name(), step: 'B', dryRun: true });
      expect(plan.reset).to.deep.equal(['B', 'D', 'Z']);
      expect((await states(c)).B).to.equal('succeeded');
      const text = await pts(db.uri, ['rerun', c.name(), '--from', 'B']);
      expect(text.code, text.stderr).to.equal(0);
      expect(text.stdout).to.include('reset 3 tasks').and.include('B, D, Z').and.include('kept 6 tasks');
      expect((await states(c)).Z).to.equal('pending');
      const unknown = await pts(db.uri, ['rerun', c.name(), '--from', 'nope']);
      expect(unknown.code).to.equal(1);
      expect((await pts(db.uri, ['rerun', c.name()])).code, 'missing --from').to.equal(2);

      const bad = await pts(db.uri, ['mark-succeeded', c.name(), 'B', '--result', '{oops']);
      expect(bad.code).to.equal(2);
      const mark = await pts(db.uri, ['mark-succeeded', c.name(), 'B', '--result', '{"rows": 3}', '--json']);
      expect(mark.code, mark.stderr).to.equal(0);
      expect(JSON.parse(mark.stdout).result).to.deep.equal({ rows: 3 });
      const refused = await pts(db.uri, ['mark-succeeded', c.name(), 'B']);
      expect(refused.code, 'already succeeded').to.equal(1);
      expect(refused.stderr).to.include('markSucceeded');
      await expectConsistent(c);
    });
  });
});
