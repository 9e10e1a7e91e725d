import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, PtsError, ValidationError, type Client } from '../lib';
import { checkDependencies, resolveTaskSpec, validateData, validateName, validatePercentage } from '../lib/validation';
import { useTestDatabase } from './helpers/db';

function rejects(fn: () => unknown, path?: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ValidationError);
    expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
    if (path) expect(String((err as ValidationError).details.path)).to.include(path);
    return;
  }
  expect.fail('accepted');
}

describe('validation', function () {
  describe('names', function () {
    it('accepts ordinary names with spaces, dots, slashes and unicode', function () {
      for (const n of ['nightly import', 'epf.v2/2026-11-27', 'Schritt 1 → prüfen', '数据导入', 'a'.repeat(512), '🚀 launch']) {
        expect(validateName(n, 'name')).to.equal(n);
      }
    });
    it('rejects empty, blank, too long, control characters, lone surrogates and non-strings', function () {
      for (const n of ['', '   ', '\t\n', 'a'.repeat(513), 'a\u0000b', 'line\nbreak', 'bell\u0007', 'x\ud800', 42, null, undefined, {}, ['a'], { $ne: null }]) {
        rejects(() => validateName(n, 'name'), 'name');
      }
    });
  });

  describe('percentages', function () {
    it('accepts 0..100 and rejects NaN, infinities, out of range and non-numbers', function () {
      for (const p of [0, 0.5, 42, 100]) expect(validatePercentage(p)).to.equal(p);
      for (const p of [NaN, Infinity, -Infinity, -0.001, 100.0001, '50', null, undefined, {}, true]) rejects(() => validatePercentage(p));
    });
  });

  describe('data', function () {
    it('accepts JSON-like values, dates and buffers', function () {
      const v = { a: [1, 'two', { three: true }], when: new Date(0), bytes: Buffer.from('x'), nested: { 'key with spaces': null } };
      expect(validateData(v, 'data')).to.equal(v);
      expect(validateData(undefined, 'data')).to.equal(null);
    });
    it('rejects keys MongoDB cannot store as given, prototype keys, cycles, depth, size and odd types', function () {
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      let deep: unknown = 1;
      for (let i = 0; i < 100; i++) deep = { d: deep };
      const cases: Array<[unknown, string]> = [
        [{ $set: 1 }, 'data.$set'],
        [{ 'a.b': 1 }, 'data.a.b'],
        [{ ok: { $where: 'x' } }, 'data.ok.$where'],
        [JSON.parse('{"__proto__": {"polluted": true}}'), 'data.__proto__'],
        [{ 'nul\u0000key': 1 }, 'data'],
        [cyclic, 'data.self'],
        [deep, 'data'],
        [{ big: 'x'.repeat(15 * 1024 * 1024) }, 'data'],
        [{ f: () => 1 }, 'data.f'],
        [{ n: NaN }, 'data.n'],
        [{ b: BigInt(1) }, 'data.b'],
        [{ s: Symbol('s') }, 'data.s'],
        [new Map(), 'data'],
        [{ d: new Date(NaN) }, 'data.d'],
        [{ text: 'bad \udc00 surrogate' }, 'data.text'],
      ];
      for (const [v, path] of cases) rejects(() => validateData(v, 'data'), path);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });

    it('measures the size as BSON: 6 MiB of ASCII is accepted, and a refusal names the measured size', function () {
      expect(() => validateData({ text: 'x'.repeat(6 * 1024 * 1024) }, 'data')).to.not.throw();
      const numbers = new Array(2_000_000).fill(0);
      const bytes = mongoose.mongo.BSON.calculateObjectSize({ v: numbers }) - 8;
      expect(() => validateData(numbers, 'data')).to.throw(ValidationError, `data is ${bytes} bytes once encoded as BSON`);
    });

    it('refuses arrays inside arrays only where the server cannot store them', function () {
      const v = { a: [{ b: [1] }, [2]] };
      expect(validateData(v, 'data')).to.equal(v);
      expect(validateData(v, 'data', { nestedArrays: true })).to.equal(v);
      expect(validateData({ a: [{ b: [1] }] }, 'data', { nestedArrays: false })).to.deep.equal({ a: [{ b: [1] }] });
      rejects(() => validateData(v, 'data', { nestedArrays: false }), 'data.a[1]');
      rejects(() => validateData([[]], 'data', { nestedArrays: false }), 'data[0]');
    });
  });

  describe('task specs and dependencies', function () {
    it('applies defaults and rejects unknown fields and bad options', function () {
      expect(resolveTaskSpec({ name: 'a' })).to.deep.include({ weight: 1, maxRetries: 3, retryDelayMs: 30_000, backoff: 'exponential', key: null, dependsOn: [] });
      for (const s of [
        { name: 'a', extra: 1 },
        { name: 'a', weight: 0 },
        { name: 'a', weight: -1 },
        { name: 'a', maxRetries: 1.5 },
        { name: 'a', retryDelayMs: -1 },
        { name: 'a', backoff: 'linear' },
        { name: 'a', dependsOn: 'b' },
        { name: 'a', dependsOn: ['b', 'b'] },
        { name: 'a', dependsOn: ['a'] },
        'a',
        null,
      ]) {
        rejects(() => resolveTaskSpec(s));
      }
    });
    it('rejects unknown dependencies and cycles, and orders a batch topologically', function () {
      const r = (name: string, dependsOn: string[] = []) => resolveTaskSpec({ name, dependsOn });
      rejects(() => checkDependencies([r('a', ['ghost'])], new Set()), 'dependsOn');
      try {
        checkDependencies([r('a', ['c']), r('b', ['a']), r('c', ['b'])], new Set());
        expect.fail('cycle accepted');
      } catch (err) {
        expect((err as ValidationError).details.cycle).to.deep.equal(['a', 'c', 'b', 'a']);
      }
      const ordered = checkDependencies([r('d', ['c', 'x']), r('c', ['b']), r('b')], new Set(['x']));
      expect(ordered.map((t) => t.name)).to.deep.equal(['b', 'c', 'd']);
    });
  });

  describe('through the API: a rejected call leaves the database unchanged', function () {
    const db = useTestDatabase();
    let client: Client;
    before(function () {
      client = createClient({ connection: db.connection });
    });

    async function dump(): Promise<string> {
      const out: Record<string, unknown[]> = {};
      for (const name of ['pts_containers', 'pts_tasks', 'pts_key_slots', 'pts_key_limits']) {
        out[name] = await db.connection.collection(name).find().sort({ _id: 1 }).toArray();
      }
      return JSON.stringify(out);
    }

    it('bad names, data, percentages, dependencies and oversize payloads', async function () {
      const c = await client.getOrCreateTaskContainer('guarded');
      await c.addTasks([{ name: 'existing' }]);
      const before = await dump();
      const attempts: Array<() => Promise<unknown>> = [
        () => client.getOrCreateTaskContainer(''),
        () => client.getOrCreateTaskContainer('x'.repeat(513)),
        () => client.getOrCreateTaskContainer({ $ne: null } as never),
        () => client.getOrCreateTaskContainer('ok', { failurePolicy: 'sometimes' as never }),
        () => c.addTask('   ', null),
        () => c.addTask('bad data', { $inc: 1 }),
        () => c.addTask('dotted', { 'a.b': 1 }),
        () => c.addTask('huge', { blob: 'x'.repeat(16 * 1024 * 1024) }),
        () => c.addTasks([{ name: 'fine' }, { name: 'bad', dependsOn: ['ghost'] }]),
        () => c.addTasks([{ name: 'p', dependsOn: ['q'] }, { name: 'q', dependsOn: ['p'] }]),
        () => c.addTasks([{ name: 'dup' }, { name: 'dup' }]),
        () => c.updateTask('existing', { percentageComplete: NaN }),
        () => c.updateTask('existing', { percentageComplete: 101 }),
        () => c.updateTask('existing', { percentageComplete: '50' as never }),
        () => c.updateTask('existing', { statusText: 'a\u0000b' }),
        () => c.updateTask('existing', { unknown: 1 } as never),
        () => c.updateTask('existing', { processingData: { $set: 1 } }),
        () => client.listContainers({ status: 'bogus' as never }),
        () => client.listContainers({ limit: 0 }),
        () => c.listTasks({ cursor: '{"$gt":""}' }),
        () => client.claimNext({ container: 'guarded' }, { owner: '', leaseMs: 1000 }),
        () => client.claimNext({ container: 'guarded' }, { owner: 'w', leaseMs: -5 }),
        () => client.setKeyLimit('k', -1),
        () => client.recoverStale({ limit: 1.5 }),
      ];
      for (const [i, fn] of attempts.entries()) {
        try {
          await fn();
          expect.fail(`attempt ${i} was accepted`);
        } catch (err) {
          expect(err, `attempt ${i}: ${(err as Error).message}`).to.be.instanceOf(PtsError);
          expect((err as PtsError).code, `attempt ${i}`).to.equal('PTS_VALIDATION');
        }
      }
      expect(await dump()).to.equal(before);
    });
  });
});
