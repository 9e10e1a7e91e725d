/**
 * Results between steps (issue #14, item 3): a handler's `ctx.inputs`, a lease's `inputs` and
 * the HTTP claim reply's `inputs` are the dependencies' results by name, read at claim time with
 * at most one extra query (none without dependencies), capped by `maxInputsBytes`.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, InputsTooLargeError, ValidationError, type Client } from '../lib';
import { TokenStore } from '../lib/auth';
import { startServer } from '../lib/http/server';
import { CommandCounter, expectConsistent } from './helpers/consistency';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';

describe('inputs: the dependencies’ results at claim time', function () {
  const db = useTestDatabase();
  let client: Client;

  before(async function () {
    client = createClient({ connection: db.connection, workerId: 'w' });
    await client.ensureIndexes();
  });
  after(async function () {
    await client.close();
  });

  it('container.run(): ctx.inputs holds each dependency’s result by name ({} without dependencies, null for a skipped one)', async function () {
    const c = await client.getOrCreateTaskContainer('run-inputs');
    await c.addTasks([
      { name: 'extract' },
      { name: 'lookup' },
      { name: 'optional' },
      { name: 'transform', dependsOn: ['extract', 'lookup', 'optional'] },
      { name: 'load', dependsOn: ['transform'] },
    ]);
    await c.skip('optional');
    const seen: Record<string, unknown> = {};
    const res = await c.run({
      extract: (ctx) => {
        seen.extract = ctx.inputs;
        return { rows: 3, at: new Date('2026-01-02T00:00:00Z') };
      },
      lookup: () => ['x', 'y'],
      transform: (ctx) => {
        seen.transform = ctx.inputs;
        return { rows: (ctx.inputs.extract as { rows: number }).rows * 2 };
      },
      load: (ctx) => {
        seen.load = ctx.inputs;
      },
    });
    expect(res.status).to.equal('succeeded');
    expect(seen.extract).to.deep.equal({});
    expect(seen.transform).to.deep.equal({
      extract: { rows: 3, at: new Date('2026-01-02T00:00:00Z') },
      lookup: ['x', 'y'],
      optional: null,
    });
    expect(Object.keys(seen.transform as object), 'in dependsOn order').to.deep.equal(['extract', 'lookup', 'optional']);
    expect(seen.load).to.deep.equal({ transform: { rows: 6 } });
    expect(Object.isFrozen(seen.transform)).to.equal(true);
  });

  it('claimNext(filter, { includeInputs: true }) fills lease.inputs; without it lease.inputs is null until loadInputs()', async function () {
    const c = await client.getOrCreateTaskContainer('lease-inputs');
    await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }, { name: 'c', dependsOn: ['a'] }]);
    const a = (await client.claimNext({ container: 'lease-inputs' }, { owner: 'w', includeInputs: true }))!;
    expect(a.inputs).to.deep.equal({});
    await a.succeed({ answer: 42 });
    const b = (await client.claimNext({ container: 'lease-inputs', names: ['b'] }, { owner: 'w', includeInputs: true }))!;
    expect(b.inputs).to.deep.equal({ a: { answer: 42 } });
    await b.succeed();
    const cl = (await client.claimNext({ container: 'lease-inputs' }, { owner: 'w' }))!;
    expect(cl.task.name).to.equal('c');
    expect(cl.inputs).to.equal(null);
    expect(await cl.loadInputs()).to.deep.equal({ a: { answer: 42 } });
    expect(cl.inputs).to.deep.equal({ a: { answer: 42 } });
    await cl.succeed();
    let err: unknown = null;
    try {
      await client.claimNext({ container: 'lease-inputs' }, { owner: 'w', includeInputs: 'yes' as never });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(ValidationError);
    expect((err as ValidationError).details.path).to.equal('includeInputs');
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

    it('a claim with inputs costs one extra read projecting only name and result; without dependencies none', async function () {
      const c = await mc.getOrCreateTaskContainer('rt-inputs');
      await c.addTasks([
        { name: 'up1' },
        { name: 'up2' },
        { name: 'down', dependsOn: ['up1', 'up2'] },
        { name: 'free', priority: -1 },
      ]);
      // The first claim also looks the container up; later ones reuse its id.
      const u1 = (await mc.claimNext({ container: 'rt-inputs' }, { owner: 'rt', includeInputs: true }))!;
      counter.reset();
      const u2 = (await mc.claimNext({ container: 'rt-inputs' }, { owner: 'rt', includeInputs: true }))!;
      expect(u2.task.name).to.equal('up2');
      expect(counter.commands.map((x) => [x.name, x.collection]), 'no dependencies: no extra command').to.deep.equal([
        ['findAndModify', 'pts_tasks'],
        ['findAndModify', 'pts_containers'],
      ]);
      await u1.succeed({ n: 1 });
      await u2.succeed({ n: 2 });
      counter.reset();
      const down = (await mc.claimNext({ container: 'rt-inputs' }, { owner: 'rt', includeInputs: true }))!;
      expect(down.task.name).to.equal('down');
      expect(counter.commands.map((x) => [x.name, x.collection])).to.deep.equal([
        ['findAndModify', 'pts_tasks'],
        ['findAndModify', 'pts_containers'],
        ['find', 'pts_tasks'],
      ]);
      expect(counter.commands[2].command.projection).to.deep.equal({ _id: 0, name: 1, result: 1 });
      expect(down.inputs).to.deep.equal({ up1: { n: 1 }, up2: { n: 2 } });
      await down.succeed();
      // container.run(): the same, no extra command for a task without dependencies.
      const inputReads = (): number =>
        counter.commands.filter((x) => x.name === 'find' && (x.command.projection as Record<string, number> | undefined)?.result === 1).length;
      counter.reset();
      await c.run({ free: () => 'ok' });
      expect(inputReads(), 'run(): a task without dependencies').to.equal(0);
      const r = await mc.getOrCreateTaskContainer('rt-run');
      await r.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }]);
      counter.reset();
      let got: unknown = null;
      await r.run({ a: () => 1, b: (ctx) => (got = ctx.inputs) });
      expect(got).to.deep.equal({ a: 1 });
      expect(inputReads(), 'run(): one read for b, none for a').to.equal(1);
    });
  });

  describe('the size cap (maxInputsBytes)', function () {
    let small: Client;
    before(function () {
      small = createClient({ connection: db.connection, workerId: 'cap', maxInputsBytes: 2048 });
    });
    after(async function () {
      await small.close();
    });

    async function bigPipeline(name: string): Promise<void> {
      const c = await small.getOrCreateTaskContainer(name);
      await c.addTasks([{ name: 'p1' }, { name: 'p2' }, { name: 'sum', dependsOn: ['p1', 'p2'], maxRetries: 3 }, { name: 'after', dependsOn: ['sum'] }]);
      for (const n of ['p1', 'p2']) await (await small.claimNext({ container: name, names: [n] }, { owner: 'cap' }))!.succeed('x'.repeat(1200));
    }

    it('rejects the claim with InputsTooLargeError and fails the task for good (no retry, no lease left)', async function () {
      await bigPipeline('cap-lease');
      let err: unknown = null;
      try {
        await small.claimNext({ container: 'cap-lease' }, { owner: 'cap', includeInputs: true });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(InputsTooLargeError);
      const e = err as InputsTooLargeError;
      expect(e.code).to.equal('PTS_INPUTS_TOO_LARGE');
      expect(e.details).to.include({ container: 'cap-lease', task: 'sum', limit: 2048, dependency: 'p2' });
      expect(e.details.bytes).to.be.greaterThan(2048);
      const c = await small.getOrCreateTaskContainer('cap-lease');
      const t = (await c.getTask('sum'))!.toJSON();
      expect(t.state).to.equal('failed');
      expect(t.lease).to.equal(null);
      expect(t.attempts).to.equal(1);
      expect(t.failures.map((f) => [f.code, f.kind])).to.deep.equal([['PTS_INPUTS_TOO_LARGE', 'error']]);
      // Blocked for good: the container ends failed (its dependent can never run).
      expect((await c.summary()).status).to.equal('failed');
      await expectConsistent(c);
      // A claim without inputs reads nothing and so does not check them.
      await c.retry('sum');
      const l = (await small.claimNext({ container: 'cap-lease' }, { owner: 'cap' }))!;
      expect(l.task.name).to.equal('sum');
      await l.release();
    });

    it('container.run(): the handler does not run; the run counts the task failed and goes on', async function () {
      await bigPipeline('cap-run');
      const c = await small.getOrCreateTaskContainer('cap-run');
      const ran: string[] = [];
      const res = await c.run({ sum: () => ran.push('sum'), after: () => ran.push('after') });
      expect(ran).to.deep.equal([]);
      expect(res.failed).to.deep.equal(['sum']);
      expect(res.status).to.equal('failed');
      const t = (await c.getTask('sum'))!.toJSON();
      expect([t.state, t.failures[0].code, t.lease]).to.deep.equal(['failed', 'PTS_INPUTS_TOO_LARGE', null]);
    });

    it('inputs just under the cap pass', async function () {
      const c = await small.getOrCreateTaskContainer('cap-fits');
      await c.addTasks([{ name: 'p' }, { name: 'q', dependsOn: ['p'] }]);
      await (await small.claimNext({ container: 'cap-fits' }, { owner: 'cap' }))!.succeed('y'.repeat(2000));
      const q = (await small.claimNext({ container: 'cap-fits' }, { owner: 'cap', includeInputs: true }))!;
      expect((q.inputs!.p as string).length).to.equal(2000);
    });

    it('refuses a maxInputsBytes that is not an integer from 1024 to 256 MiB', function () {
      for (const v of [0, 1023, 1.5, 256 * 1024 * 1024 + 1, '2048']) {
        expect(() => createClient({ connection: db.connection, maxInputsBytes: v as number }), String(v)).to.throw(ValidationError);
      }
    });
  });

  it('HTTP: includeInputs answers them; a 422 PTS_INPUTS_TOO_LARGE when over the cap (the task failed for good)', async function () {
    const http = createClient({ connection: db.connection, maxInputsBytes: 2048 });
    const tokens = new TokenStore(http);
    const worker = (await tokens.create({ scope: 'worker', name: 'inputs-worker' })).token;
    const server = await startServer({ client: http, auth: { tokens }, dashboard: false, pollMs: 50, horizonMs: 250 });
    const untrack = trackResource(`http server ${server.url}`, () => server.close());
    const claim = async (body: Record<string, unknown>): Promise<{ status: number; body: any }> => { // eslint-disable-line @typescript-eslint/no-explicit-any
      const res = await fetch(`${server.url}/api/v1/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${worker}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    try {
      const c = await http.getOrCreateTaskContainer('http-inputs');
      await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }, { name: 'c', dependsOn: ['a'] }, { name: 'big' }, { name: 'd', dependsOn: ['big'] }]);
      const a = await claim({ container: 'http-inputs', owner: 'h', names: ['a'], includeInputs: true });
      expect(a.status).to.equal(200);
      expect(a.body.inputs).to.deep.equal({});
      await (await http.lease('http-inputs', 'a', a.body.token)).succeed({ rows: [1, 2] });
      const b = await claim({ container: 'http-inputs', owner: 'h', names: ['b'], includeInputs: true });
      expect(b.status).to.equal(200);
      expect(b.body.task.name).to.equal('b');
      expect(b.body.inputs).to.deep.equal({ a: { rows: [1, 2] } });
      const plain = await claim({ container: 'http-inputs', owner: 'h', names: ['c'] });
      expect(plain.status).to.equal(200);
      expect(plain.body).to.not.have.property('inputs');
      expect((await claim({ container: 'http-inputs', owner: 'h', includeInputs: 'yes' })).status).to.equal(400);
      const big = await claim({ container: 'http-inputs', owner: 'h', names: ['big'] });
      await (await http.lease('http-inputs', 'big', big.body.token)).succeed('z'.repeat(3000));
      const d = await claim({ container: 'http-inputs', owner: 'h', names: ['d'], includeInputs: true });
      expect(d.status).to.equal(422);
      expect(d.body.error.code).to.equal('PTS_INPUTS_TOO_LARGE');
      expect(d.body.error.message).to.include('maxInputsBytes');
      const t = (await c.getTask('d'))!.toJSON();
      expect([t.state, t.lease, t.failures[0].code]).to.deep.equal(['failed', null, 'PTS_INPUTS_TOO_LARGE']);
    } finally {
      await server.close();
      untrack();
      await http.close();
    }
  });
});
