/**
 * Hostile input at the library level: every public function, table-driven, with malformed values.
 * Each call must reject with a typed PtsError (checked by `code`) and leave every pts_*
 * collection byte-for-byte unchanged (EJSON dump before and after).
 */
import { expect } from 'chai';
import { createClient, PtsError, type Client, type TaskContainer, type TaskLease } from '../../lib';
import { useTestDatabase } from '../helpers/db';
import { dumpPts } from './helpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
const BIG = 'x'.repeat(20 * 1024 * 1024);
function deep(n: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < n; i++) v = { d: v };
  return v;
}
const cyclic: Record<string, unknown> = {};
cyclic.self = cyclic;

/** Values that are never a valid name. */
const BAD_NAMES: Array<[string, unknown]> = [
  ['undefined', undefined],
  ['null', null],
  ['number', 42],
  ['NaN', NaN],
  ['Infinity', Infinity],
  ['boolean', true],
  ['empty', ''],
  ['blank', '   '],
  ['NUL', 'a\u0000b'],
  ['control char', 'a\nb'],
  ['lone surrogate', 'a\ud800b'],
  ['huge string', 'n'.repeat(1_000_000)],
  ['operator object $ne', { $ne: null }],
  ['operator object $gt', { $gt: '' }],
  ['regex', /.*/],
  ['array', ['a']],
  ['Date', new Date(0)],
  ['function', () => 'a'],
  ['symbol', Symbol('a')],
  ['bigint', BigInt(1)],
];

/** Values that are never valid user data (taskData, checkpoint, result, metadata). */
const BAD_DATA: Array<[string, unknown]> = [
  ['NaN', NaN],
  ['Infinity', { x: -Infinity }],
  ['$ key', { $where: 'sleep(1000)' }],
  ['operator value', { a: { $ne: null } }],
  ['dotted key', { 'a.b': 1 }],
  ['NUL key', { 'a\u0000': 1 }],
  ['__proto__ key', JSON.parse('{"__proto__": {"polluted": true}}')],
  ['20 MB string', { s: BIG }],
  ['20 MB buffer', Buffer.alloc(20 * 1024 * 1024)],
  ['1000-deep nesting', deep(1000)],
  ['cycle', cyclic],
  ['function', { f: () => 1 }],
  ['symbol', { s: Symbol('x') }],
  ['bigint', { b: BigInt(1) }],
  ['Map', new Map([['a', 1]])],
  ['invalid Date', { d: new Date(NaN) }],
  ['lone surrogate', { s: 'a\ud800' }],
];

const BAD_PCT: unknown[] = [NaN, Infinity, -1, 101, '50', null, { $gt: 0 }];
const BAD_COUNT: unknown[] = [NaN, Infinity, -1, 1.5, '2', { $gt: 0 }];

describe('reliability: hostile input', function () {
  this.timeout(180_000);
  const db = useTestDatabase();
  let client: Client;
  let c: TaskContainer;
  let held: TaskLease;

  /** The fixture: a running task (held), a pending one waiting on it, a succeeded one. Rebuilt after a call that changed it. */
  async function setup(): Promise<void> {
    for (const name of ['hostile', 'fresh']) await client.deleteTaskContainer(name);
    c = await client.getOrCreateTaskContainer('hostile');
    await c.addTasks([{ name: 'run' }, { name: 'pend', dependsOn: ['run'] }, { name: 'done' }]);
    held = (await client.claimNext({ container: 'hostile', names: ['run'] }, { owner: 'w' }))!;
    const d = (await client.claimNext({ container: 'hostile', names: ['done'] }, { owner: 'w' }))!;
    await d.succeed({ ok: 1 });
  }

  before(async function () {
    client = createClient({ connection: db.connection, leaseMs: 60_000 });
    await setup();
  });
  after(async function () {
    await client.close();
  });

  function cases(): Array<[string, () => unknown, string]> {
    const V = 'PTS_VALIDATION';
    const out: Array<[string, () => unknown, string]> = [];
    for (const [label, n] of BAD_NAMES) {
      const x = n as any;
      // `undefined` (and for `??`-defaulted options, `null`) means "not given" where a parameter is optional.
      const optional = label === 'undefined';
      const defaulted = label === 'undefined' || label === 'null';
      out.push([`getOrCreateTaskContainer(${label})`, () => client.getOrCreateTaskContainer(x), V]);
      out.push([`getTaskContainer(${label})`, () => client.getTaskContainer(x), V]);
      out.push([`deleteTaskContainer(${label})`, () => client.deleteTaskContainer(x), V]);
      out.push([`summary(${label})`, () => client.summary(x), V]);
      if (!optional)
        out.push([
          `claimNext({container: ${label}})`,
          () => client.claimNext({ container: x }, { owner: 'w' }),
          V,
        ]);
      out.push([`claimNext({names: [${label}]})`, () => client.claimNext({ names: [x] }, { owner: 'w' }), V]);
      if (!optional)
        out.push([`claimNext({key: ${label}})`, () => client.claimNext({ key: x }, { owner: 'w' }), V]);
      if (!defaulted)
        out.push([
          `claimNext(owner ${label})`,
          () => client.claimNext({ container: 'hostile' }, { owner: x }),
          V,
        ]);
      out.push([`lease(${label}, task)`, () => client.lease(x, 'run', held.token), V]);
      out.push([`lease(container, ${label})`, () => client.lease('hostile', x, held.token), V]);
      out.push([`setKeyLimit(${label})`, () => client.setKeyLimit(x, 2), V]);
      if (!optional)
        out.push([`recoverStale({container: ${label}})`, () => client.recoverStale({ container: x }), V]);
      out.push([`addTask(${label})`, () => c.addTask(x, {}), V]);
      out.push([`addTask(dependsOn [${label}])`, () => c.addTask('new', {}, { dependsOn: [x] }), V]);
      if (!defaulted) out.push([`addTask(key ${label})`, () => c.addTask('new', {}, { key: x }), V]);
      out.push([`getTask(${label})`, () => c.getTask(x), V]);
      out.push([`updateTask(${label})`, () => c.updateTask(x, { percentageComplete: 5 }), V]);
      out.push([`deleteTask(${label})`, () => c.deleteTask(x), V]);
      if (!optional) out.push([`retry(${label})`, () => c.retry(x), V]);
      if (!optional) out.push([`cancel(${label})`, () => c.cancel(x), V]);
      out.push([`skip(${label})`, () => c.skip(x), V]);
      if (!optional) out.push([`reset(${label})`, () => c.reset(x), V]);
      if (!defaulted) out.push([`pause({by: ${label}})`, () => c.pause({ by: x }), V]);
    }
    for (const [label, d] of BAD_DATA) {
      const x = d as any;
      out.push([
        `getOrCreateTaskContainer(metadata ${label})`,
        () => client.getOrCreateTaskContainer('fresh', { metadata: x }),
        V,
      ]);
      out.push([`addTask(data ${label})`, () => c.addTask('new', x), V]);
      out.push([
        `addTasks(data ${label})`,
        () => c.addTasks([{ name: 'new1' }, { name: 'new2', data: x }]),
        V,
      ]);
      out.push([`updateTask(processingData ${label})`, () => c.updateTask('pend', { processingData: x }), V]);
      out.push([`updateTask(result ${label})`, () => c.updateTask('pend', { result: x }), V]);
      out.push([`lease.heartbeat(processingData ${label})`, () => held.heartbeat({ processingData: x }), V]);
      out.push([`lease.succeed(${label})`, () => held.succeed(x), V]);
    }
    for (const p of BAD_PCT) {
      const x = p as any;
      out.push([
        `updateTask(percentageComplete ${String(p)})`,
        () => c.updateTask('pend', { percentageComplete: x }),
        V,
      ]);
      out.push([
        `lease.heartbeat(percentageComplete ${String(p)})`,
        () => held.heartbeat({ percentageComplete: x }),
        V,
      ]);
      out.push([
        `lease.fail(progress ${String(p)})`,
        () => held.fail(new Error('x'), { progress: { percentageComplete: x } }),
        V,
      ]);
    }
    for (const n of BAD_COUNT) {
      const x = n as any;
      out.push([`setKeyLimit(k, ${String(n)})`, () => client.setKeyLimit('k', x), V]);
      const fractional = n === 1.5; // a valid positive duration / weight
      if (!fractional)
        out.push([
          `claimNext(leaseMs ${String(n)})`,
          () => client.claimNext({ container: 'hostile' }, { owner: 'w', leaseMs: x }),
          V,
        ]);
      out.push([`lease(token ${String(n)})`, () => client.lease('hostile', 'run', x), V]);
      out.push([
        `recoverStale({limit: ${String(n)}})`,
        () => client.recoverStale({ container: 'hostile', limit: x }),
        V,
      ]);
      if (!fractional)
        out.push([`lease.heartbeat({}, leaseMs ${String(n)})`, () => held.heartbeat({}, x), V]);
      if (!fractional)
        out.push([`addTask(weight ${String(n)})`, () => c.addTask('new', {}, { weight: x }), V]);
      out.push([`addTask(maxRetries ${String(n)})`, () => c.addTask('new', {}, { maxRetries: x }), V]);
      out.push([`addTask(retryDelayMs ${String(n)})`, () => c.addTask('new', {}, { retryDelayMs: x }), V]);
      out.push([`addTask(timeoutMs ${String(n)})`, () => c.addTask('new', {}, { timeoutMs: x }), V]);
      out.push([`addTask(stallMs ${String(n)})`, () => c.addTask('new', {}, { stallMs: x }), V]);
      out.push([`listContainers({limit: ${String(n)}})`, () => client.listContainers({ limit: x }), V]);
      out.push([`listTasks({limit: ${String(n)}})`, () => c.listTasks({ limit: x }), V]);
      out.push([`run(concurrency ${String(n)})`, () => c.run(() => 1, { concurrency: x }), V]);
      if (!fractional) out.push([`run(leaseMs ${String(n)})`, () => c.run(() => 1, { leaseMs: x }), V]);
    }
    const misc: Array<[string, () => unknown, string]> = [
      [
        'createClient({leaseMs: NaN})',
        async () => createClient({ connection: db.connection, leaseMs: NaN }),
        V,
      ],
      [
        'createClient({heartbeatMs: -1})',
        async () => createClient({ connection: db.connection, heartbeatMs: -1 }),
        V,
      ],
      [
        'createClient({collectionPrefix: "$x"})',
        async () => createClient({ connection: db.connection, collectionPrefix: '$x' }),
        V,
      ],
      [
        'createClient({writeConcern: {w: {$ne: 1}}})',
        async () => createClient({ connection: db.connection, writeConcern: { w: { $ne: 1 } as any } }),
        V,
      ],
      [
        'createClient({workerId: {$ne: null}})',
        async () => createClient({ connection: db.connection, workerId: { $ne: null } as any }),
        V,
      ],
      [
        'getOrCreateTaskContainer(failurePolicy $ne)',
        () => client.getOrCreateTaskContainer('fresh', { failurePolicy: { $ne: null } as any }),
        V,
      ],
      [
        'getOrCreateTaskContainer(metadata array)',
        () => client.getOrCreateTaskContainer('fresh', { metadata: [1] as any }),
        V,
      ],
      [
        'listContainers({status: {$ne: null}})',
        () => client.listContainers({ status: { $ne: null } as any }),
        V,
      ],
      [
        'listContainers({namePrefix: {$regex: ".*"}})',
        () => client.listContainers({ namePrefix: { $regex: '.*' } as any }),
        V,
      ],
      ['listContainers({cursor: {$gt: ""}})', () => client.listContainers({ cursor: { $gt: '' } as any }), V],
      ['listContainers({cursor: "garbage"})', () => client.listContainers({ cursor: 'garbage' }), V],
      ['listTasks({state: {$ne: null}})', () => c.listTasks({ state: { $ne: null } as any }), V],
      ['listTasks({state: "bogus"})', () => c.listTasks({ state: 'bogus' as any }), V],
      ['claimNext(null filter)', () => client.claimNext(null as any, { owner: 'w' }), V],
      ['claimNext({names: "run"})', () => client.claimNext({ names: 'run' as any }, { owner: 'w' }), V],
      [
        'claimNext({names: {$ne: null}})',
        () => client.claimNext({ names: { $ne: null } as any }, { owner: 'w' }),
        V,
      ],
      ['lease(stale token)', () => client.lease('hostile', 'run', held.token + 1), 'PTS_LEASE_LOST'],
      ['lease(unknown container)', () => client.lease('nope', 'run', 1), 'PTS_NOT_FOUND'],
      ['addTask(options $set)', () => c.addTask('new', {}, { $set: { state: 'succeeded' } } as any), V],
      ['addTask(backoff bogus)', () => c.addTask('new', {}, { backoff: 'linear' as any }), V],
      ['addTask(dependsOn string)', () => c.addTask('new', {}, { dependsOn: 'run' as any }), V],
      ['addTask(dependsOn unknown)', () => c.addTask('new', {}, { dependsOn: ['nope'] }), V],
      ['addTask(dependsOn itself)', () => c.addTask('new', {}, { dependsOn: ['new'] }), V],
      ['addTasks(not an array)', () => c.addTasks({ name: 'x' } as any), V],
      ['addTasks([null])', () => c.addTasks([null as any]), V],
      [
        'addTasks(cycle)',
        () =>
          c.addTasks([
            { name: 'x', dependsOn: ['y'] },
            { name: 'y', dependsOn: ['x'] },
          ]),
        V,
      ],
      ['addTasks(duplicate names)', () => c.addTasks([{ name: 'x' }, { name: 'x' }]), V],
      [
        'addTasks(__proto__ field)',
        () => c.addTasks([JSON.parse('{"name":"x","__proto__":{"state":"succeeded"}}')]),
        V,
      ],
      ['updateTask(values $set)', () => c.updateTask('pend', { $set: { state: 'succeeded' } } as any), V],
      ['updateTask(values null)', () => c.updateTask('pend', null as any), V],
      ['updateTask(isComplete "yes")', () => c.updateTask('pend', { isComplete: 'yes' as any }), V],
      ['updateTask(statusText NUL)', () => c.updateTask('pend', { statusText: 'a\u0000' }), V],
      ['updateTask(statusText lone surrogate)', () => c.updateTask('pend', { statusText: 'a\ud800' }), V],
      ['updateTask(statusText 1 MB)', () => c.updateTask('pend', { statusText: 's'.repeat(1 << 20) }), V],
      ['updateTask(statusText object)', () => c.updateTask('pend', { statusText: { $set: 1 } as any }), V],
      [
        'updateTask(succeeded task)',
        () => c.updateTask('done', { percentageComplete: 5 }),
        'PTS_INVALID_TRANSITION',
      ],
      ['updateTask(unknown task)', () => c.updateTask('nope', { percentageComplete: 5 }), 'PTS_NOT_FOUND'],
      ['deleteTask(running)', () => c.deleteTask('run'), 'PTS_INVALID_TRANSITION'],
      ['retry(pending)', () => c.retry('pend'), 'PTS_INVALID_TRANSITION'],
      ['skip(succeeded)', () => c.skip('done'), 'PTS_INVALID_TRANSITION'],
      ['reset(running)', () => c.reset('run'), 'PTS_INVALID_TRANSITION'],
      ['run(null handlers)', () => c.run(null as any), V],
      ['run(handler not a function)', () => c.run({ run: 1 } as any), V],
      ['run(missing handler)', () => c.run({ other: () => 1 }), V],
      ['lease.heartbeat(statusText lone surrogate)', () => held.heartbeat({ statusText: 'a\udfff' }), V],
      ['lease.heartbeat(statusText number)', () => held.heartbeat({ statusText: 5 as any }), V],
      ['lease.fail(retryable "no")', () => held.fail(new Error('x'), { retryable: 'no' as any }), V],
      [
        'lease.fail(progress processingData $ key)',
        () => held.fail(new Error('x'), { progress: { processingData: { $x: 1 } } }),
        V,
      ],
      ['pause(options "x")', () => c.pause('x' as any), V],
      ['pause({who})', () => c.pause({ who: 'x' } as any), V],
      ['run(whenPaused "later")', () => c.run(() => 1, { whenPaused: 'later' as any }), V],
      ['recoverStale("x")', () => client.recoverStale('x' as any), V],
      ['recoverStale({limit: 1e12})', () => client.recoverStale({ container: 'hostile', limit: 1e12 }), V],
    ];
    return [...out, ...misc];
  }

  it('rejects every malformed call with a typed PtsError and changes nothing', async function () {
    const table = cases();
    const failures: string[] = [];
    let tried = 0;
    let dump = await dumpPts(db.connection);
    for (const [label, call, code] of table) {
      tried++;
      let err: unknown = null;
      try {
        await call();
      } catch (e) {
        err = e;
      }
      const after = await dumpPts(db.connection);
      if (!(err instanceof PtsError))
        failures.push(
          `${label}: ${err ? `threw ${(err as Error).name}: ${String((err as Error).message).slice(0, 160)}` : 'was accepted'}`,
        );
      else if (err.code !== code)
        failures.push(`${label}: code ${err.code} instead of ${code} (${err.message.slice(0, 120)})`);
      if (after !== dump) {
        failures.push(`${label}: CHANGED THE DATABASE`);
        await setup(); // so one accepted call does not cascade into the next cases
        dump = await dumpPts(db.connection);
      }
    }
    console.log(
      `[reliability] hostile: ${tried} malformed calls over every public function; ${tried - failures.length} rejected with the right PtsError code and no change; ${failures.length} problems`,
    );
    for (const f of failures) console.log(`[reliability] hostile problem: ${f}`);
    expect(Object.prototype).to.not.have.property('polluted');
    expect(failures, failures.join('\n')).to.deep.equal([]);
  });

  it('rejects lone surrogates in data keys everywhere user data is accepted', async function () {
    const x = { ['k\udc00']: 1 } as any;
    const calls: Array<[string, () => unknown]> = [
      ['getOrCreateTaskContainer(metadata)', () => client.getOrCreateTaskContainer('fresh', { metadata: x })],
      ['addTask(data)', () => c.addTask('new', x)],
      ['addTasks(data)', () => c.addTasks([{ name: 'new1' }, { name: 'new2', data: x }])],
      ['updateTask(processingData)', () => c.updateTask('pend', { processingData: x })],
      ['updateTask(result)', () => c.updateTask('pend', { result: x })],
      ['lease.heartbeat(processingData)', () => held.heartbeat({ processingData: x })],
      ['lease.succeed', () => held.succeed(x)],
    ];
    const before = await dumpPts(db.connection);
    for (const [label, call] of calls) {
      let err: unknown = null;
      try {
        await call();
      } catch (e) {
        err = e;
      }
      expect(err, label).to.be.instanceOf(PtsError);
      expect((err as PtsError).code, label).to.equal('PTS_VALIDATION');
      expect(await dumpPts(db.connection), `${label} changed the database`).to.equal(before);
    }
  });

  it('stores a `constructor` key as plain data without touching any prototype', async function () {
    const data = { constructor: { prototype: { polluted: true } }, toString: 'x' };
    const t = await c.addTask('ctor', data);
    expect(t.taskData()).to.deep.equal(data);
    const again = (await c.getTask('ctor'))!;
    expect(again.taskData()).to.deep.equal(data);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
  });
});
